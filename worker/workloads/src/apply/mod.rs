//! `apply`: SPEC §7.3, job applications for one user. The pure core: postings from the
//! boards ([`boards`]) in one schema ([`posting`]), deduplicated ([`dedup`]) and scored
//! against a profile ([`score`]); then the applications themselves through the hosted forms
//! in a real browser ([`tier1`]).

pub mod answer;
pub mod boards;
pub mod config;
pub mod dedup;
pub mod kind;
pub mod posting;
pub mod report;
pub mod score;
pub mod text;
pub mod tier1;
