//! `apply`: SPEC §7.3.

pub mod tier1;
