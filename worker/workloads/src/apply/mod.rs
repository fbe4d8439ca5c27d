//! `apply`: SPEC §7.3, job applications for one user. The pure core: postings from the
//! boards ([`boards`]) in one schema ([`posting`]), deduplicated ([`dedup`]) and scored
//! against a profile ([`score`]).

pub mod boards;
pub mod dedup;
pub mod posting;
pub mod score;
pub mod text;
