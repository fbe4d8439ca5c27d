//! The suppression list and the last contact of each address: what a campaign checks
//! before each message (SPEC §7.2). Addresses are compared as stored: callers pass them
//! through [`crate::suppress::normalise_email`] first.

use async_trait::async_trait;

use super::{StoreError, StoreResult};
use crate::suppress::{Contact, Suppression, SuppressionReason};

/// Addresses one lookup statement (or command) carries; longer lists are split.
pub const LOOKUP_CHUNK: usize = 500;

/// Where suppressions and contacts are kept: one row (or hash field) per address.
///
/// Promises every backend keeps (and the conformance suite checks):
/// - an address is suppressed once: a second `suppress` keeps the first entry (its reason,
///   note and time) and answers `false`;
/// - `suppressions` pages by address, ascending, strictly after `after`;
/// - `suppressed` and `last_contacts` take lists of any length (split internally) and
///   answer only the addresses found, in no promised order;
/// - a contact keeps the latest `at` per address: recording an older one changes nothing.
#[async_trait]
pub trait Suppressions: Send + Sync {
    /// Suppresses `s.email`; `true` when it was not suppressed before (an existing entry
    /// is kept as it is).
    async fn suppress(&self, s: &Suppression) -> StoreResult<bool>;

    /// Lifts a suppression; `false` when there was none.
    async fn unsuppress(&self, email: &str) -> StoreResult<bool>;

    /// Up to `limit` suppressions (at most 10,000) by address, ascending, those after
    /// `after` when given.
    async fn suppressions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Suppression>>;

    /// The suppressions among `emails`.
    async fn suppressed(&self, emails: &[String]) -> StoreResult<Vec<Suppression>>;

    /// Records that `c.job_id` wrote to `c.email` at `c.at`, unless a later contact is
    /// stored.
    async fn record_contact(&self, c: &Contact) -> StoreResult<()>;

    /// The last contact of each of `emails` that has one.
    async fn last_contacts(&self, emails: &[String]) -> StoreResult<Vec<Contact>>;
}

/// The most suppressions one page holds.
pub(crate) const MAX_PAGE: usize = 10_000;

/// A stored reason back as the enum.
pub(crate) fn stored_reason(reason: &str) -> StoreResult<SuppressionReason> {
    SuppressionReason::parse(reason)
        .ok_or_else(|| StoreError::Backend(format!("unknown suppression reason `{reason}`")))
}
