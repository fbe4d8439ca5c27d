//! Shared rate limits, suppressions and contacts on Redis, under the global hash tag (one
//! slot): a hash per resource and a set of resources; the suppressions in one hash
//! (address → JSON entry) with a zset of addresses read by lex for paging; the contacts in
//! one hash (address → `<at ms>\n<job id>`). Each write is one script: the rate limit's a
//! compare-and-set on `version`, the contact's a keep-the-latest.

use std::sync::OnceLock;

use async_trait::async_trait;
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::job::{from_millis, to_millis};
use crate::limits::RateLimit;
use crate::store::*;
use crate::suppress::{Contact, Suppression};

fn script(cell: &'static OnceLock<Script>, source: &'static str) -> &'static Script {
    cell.get_or_init(|| Script::new(source))
}

static PUT: OnceLock<Script> = OnceLock::new();
static SUPPRESS: OnceLock<Script> = OnceLock::new();
static UNSUPPRESS: OnceLock<Script> = OnceLock::new();
static CONTACT: OnceLock<Script> = OnceLock::new();

/// An optional number as a script argument: `''` for none.
fn arg<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

type LimitFields = (
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

impl RedisStore {
    fn rate_limit_key(&self, resource: &str) -> String {
        self.global(&format!("ratelimit:{resource}"))
    }

    async fn read_rate_limits(&self, resources: &[String]) -> StoreResult<Vec<RateLimit>> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for resource in resources {
            pipe.cmd("HMGET")
                .arg(self.rate_limit_key(resource))
                .arg("limit")
                .arg("remaining")
                .arg("reset_at")
                .arg("blocked_until")
                .arg("version")
                .arg("updated_at");
        }
        let rows: Vec<LimitFields> = pipe.query_async(&mut self.conn()).await?;
        let mut out = Vec::with_capacity(rows.len());
        for (resource, (limit, remaining, reset_at, blocked_until, version, updated_at)) in
            resources.iter().zip(rows)
        {
            // No version: no such resource (or a listed one whose hash is gone).
            let Some(version) = version else { continue };
            out.push(RateLimit {
                resource: resource.clone(),
                limit: count_from_db(limit),
                remaining: count_from_db(remaining),
                reset_at: reset_at.map(from_millis),
                blocked_until: blocked_until.map(from_millis),
                version,
                updated_at: from_millis(updated_at.unwrap_or_default()),
            });
        }
        Ok(out)
    }

    fn suppressions_key(&self) -> String {
        self.global("supp")
    }

    fn suppression_index_key(&self) -> String {
        self.global("supp:idx")
    }

    fn contacts_key(&self) -> String {
        self.global("contacts")
    }

    /// The stored values of `field`s of `hash`, [`LOOKUP_CHUNK`] a command.
    async fn hash_lookup(
        &self,
        hash: String,
        fields: &[String],
    ) -> StoreResult<Vec<(String, String)>> {
        let mut found = Vec::new();
        for chunk in fields.chunks(LOOKUP_CHUNK) {
            // HMGET always (redis-rs's `hget` sends HGET for one field, answering a scalar).
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(&hash)
                .arg(chunk)
                .query_async(&mut self.conn())
                .await?;
            found.extend(
                chunk
                    .iter()
                    .zip(values)
                    .filter_map(|(field, value)| Some((field.clone(), value?))),
            );
        }
        Ok(found)
    }
}

fn suppression_from_json(json: &str) -> StoreResult<Suppression> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("a stored suppression does not parse: {e}")))
}

fn contact_from_stored(email: String, stored: &str) -> StoreResult<Contact> {
    let broken = || StoreError::Backend(format!("the stored contact of `{email}` does not parse"));
    let (at, job_id) = stored.split_once('\n').ok_or_else(broken)?;
    let at: i64 = at.parse().map_err(|_| broken())?;
    let job_id = job_id.parse().map_err(|_| broken())?;
    Ok(Contact {
        email,
        job_id,
        at: from_millis(at),
    })
}

#[async_trait]
impl RateLimits for RedisStore {
    async fn rate_limit(&self, resource: &str) -> StoreResult<Option<RateLimit>> {
        Ok(self.read_rate_limits(&[resource.to_string()]).await?.pop())
    }

    async fn put_rate_limit(&self, limit: &RateLimit, expected: Option<i64>) -> StoreResult<bool> {
        let written: i64 = script(&PUT, include_str!("lua/rate_limit_put.lua"))
            .key(self.rate_limit_key(&limit.resource))
            .key(self.global("ratelimits"))
            .arg(arg(expected))
            .arg(&limit.resource)
            .arg(arg(count_to_db(limit.limit)))
            .arg(arg(count_to_db(limit.remaining)))
            .arg(arg(limit.reset_at.map(to_millis)))
            .arg(arg(limit.blocked_until.map(to_millis)))
            .arg(to_millis(limit.updated_at))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(written == 1)
    }

    async fn rate_limits(&self) -> StoreResult<Vec<RateLimit>> {
        let mut resources: Vec<String> = self.conn().smembers(self.global("ratelimits")).await?;
        resources.sort();
        self.read_rate_limits(&resources).await
    }
}

#[async_trait]
impl Suppressions for RedisStore {
    async fn suppress(&self, s: &Suppression) -> StoreResult<bool> {
        // Refused alike on every backend (PostgreSQL cannot hold U+0000).
        refuse_nul_text("email", &s.email)?;
        refuse_nul_text("note", s.note.as_deref().unwrap_or_default())?;
        let json = serde_json::to_string(s)
            .map_err(|e| StoreError::Backend(format!("suppression: {e}")))?;
        let added: i64 = script(&SUPPRESS, include_str!("lua/suppress.lua"))
            .key(self.suppressions_key())
            .key(self.suppression_index_key())
            .arg(&s.email)
            .arg(json)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(added == 1)
    }

    async fn unsuppress(&self, email: &str) -> StoreResult<bool> {
        let removed: i64 = script(&UNSUPPRESS, include_str!("lua/unsuppress.lua"))
            .key(self.suppressions_key())
            .key(self.suppression_index_key())
            .arg(email)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(removed == 1)
    }

    async fn suppressions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Suppression>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let emails: Vec<String> = self
            .conn()
            .zrangebylex_limit(
                self.suppression_index_key(),
                start,
                "+",
                0,
                limit.min(MAX_PAGE) as isize,
            )
            .await?;
        let found = self.hash_lookup(self.suppressions_key(), &emails).await?;
        // Removed between the two reads: left out.
        found
            .iter()
            .map(|(_, json)| suppression_from_json(json))
            .collect()
    }

    async fn suppressed(&self, emails: &[String]) -> StoreResult<Vec<Suppression>> {
        let found = self.hash_lookup(self.suppressions_key(), emails).await?;
        found
            .iter()
            .map(|(_, json)| suppression_from_json(json))
            .collect()
    }

    async fn record_contact(&self, c: &Contact) -> StoreResult<()> {
        refuse_nul_text("email", &c.email)?;
        let at = to_millis(c.at);
        let _: i64 = script(&CONTACT, include_str!("lua/contact.lua"))
            .key(self.contacts_key())
            .arg(&c.email)
            .arg(at)
            .arg(format!("{at}\n{}", c.job_id))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn last_contacts(&self, emails: &[String]) -> StoreResult<Vec<Contact>> {
        let found = self.hash_lookup(self.contacts_key(), emails).await?;
        found
            .into_iter()
            .map(|(email, stored)| contact_from_stored(email, &stored))
            .collect()
    }
}
