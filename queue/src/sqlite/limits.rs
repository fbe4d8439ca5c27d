//! Shared rate limits, suppressions and contacts on SQLite: one row per resource or
//! address. A rate limit's write is a compare-and-set on `version`; a batched lookup binds
//! its addresses as one JSON array (`json_each`), [`LOOKUP_CHUNK`] at a time.

use async_trait::async_trait;
use sqlx::Row;

use super::SqliteStore;
use crate::job::{from_millis, to_millis};
use crate::limits::RateLimit;
use crate::store::*;
use crate::suppress::{Contact, Suppression};

fn rate_limit_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<RateLimit> {
    Ok(RateLimit {
        resource: row.try_get("resource")?,
        limit: count_from_db(row.try_get("rate_limit")?),
        remaining: count_from_db(row.try_get("remaining")?),
        reset_at: row.try_get::<Option<i64>, _>("reset_at")?.map(from_millis),
        blocked_until: row
            .try_get::<Option<i64>, _>("blocked_until")?
            .map(from_millis),
        version: row.try_get("version")?,
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

fn suppression_from_row(row: &sqlx::sqlite::SqliteRow) -> StoreResult<Suppression> {
    Ok(Suppression {
        email: row.try_get("email")?,
        reason: stored_reason(row.try_get("reason")?)?,
        note: row.try_get("note")?,
        created_at: from_millis(row.try_get("created_at")?),
    })
}

/// The addresses of a lookup that a store can hold (none holds U+0000), in chunks, each a
/// JSON array.
fn lookup_chunks(emails: &[String]) -> impl Iterator<Item = String> + '_ {
    emails.chunks(LOOKUP_CHUNK).map(|chunk| {
        let storable: Vec<&String> = chunk.iter().filter(|e| !e.contains('\0')).collect();
        serde_json::to_string(&storable).unwrap_or_else(|_| "[]".into())
    })
}

#[async_trait]
impl RateLimits for SqliteStore {
    async fn rate_limit(&self, resource: &str) -> StoreResult<Option<RateLimit>> {
        let row = sqlx::query(include_str!("sql/rate_limit.sql"))
            .bind(resource)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(rate_limit_from_row).transpose()
    }

    async fn put_rate_limit(&self, limit: &RateLimit, expected: Option<i64>) -> StoreResult<bool> {
        refuse_nul_text("resource", &limit.resource)?;
        let sql = match expected {
            None => include_str!("sql/insert_rate_limit.sql"),
            Some(_) => include_str!("sql/replace_rate_limit.sql"),
        };
        let mut query = sqlx::query(sql)
            .bind(&limit.resource)
            .bind(count_to_db(limit.limit))
            .bind(count_to_db(limit.remaining))
            .bind(limit.reset_at.map(to_millis))
            .bind(limit.blocked_until.map(to_millis))
            .bind(to_millis(limit.updated_at));
        if let Some(expected) = expected {
            query = query.bind(expected);
        }
        let done = query.execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn rate_limits(&self) -> StoreResult<Vec<RateLimit>> {
        let rows = sqlx::query(include_str!("sql/rate_limits.sql"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(rate_limit_from_row).collect()
    }
}

#[async_trait]
impl Suppressions for SqliteStore {
    async fn suppress(&self, s: &Suppression) -> StoreResult<bool> {
        refuse_nul_text("email", &s.email)?;
        refuse_nul_text("note", s.note.as_deref().unwrap_or_default())?;
        let done = sqlx::query(include_str!("sql/suppress.sql"))
            .bind(&s.email)
            .bind(s.reason.as_str())
            .bind(&s.note)
            .bind(to_millis(s.created_at))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn unsuppress(&self, email: &str) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/unsuppress.sql"))
            .bind(email)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn suppressions(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Suppression>> {
        let rows = sqlx::query(include_str!("sql/suppressions.sql"))
            .bind(after.unwrap_or_default())
            .bind(limit.min(MAX_PAGE) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(suppression_from_row).collect()
    }

    async fn suppressed(&self, emails: &[String]) -> StoreResult<Vec<Suppression>> {
        let mut found = Vec::new();
        for chunk in lookup_chunks(emails) {
            let rows = sqlx::query(include_str!("sql/suppressed.sql"))
                .bind(chunk)
                .fetch_all(&self.reader)
                .await?;
            for row in &rows {
                found.push(suppression_from_row(row)?);
            }
        }
        Ok(found)
    }

    async fn record_contact(&self, c: &Contact) -> StoreResult<()> {
        refuse_nul_text("email", &c.email)?;
        sqlx::query(include_str!("sql/record_contact.sql"))
            .bind(&c.email)
            .bind(c.job_id)
            .bind(to_millis(c.at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn last_contacts(&self, emails: &[String]) -> StoreResult<Vec<Contact>> {
        let mut found = Vec::new();
        for chunk in lookup_chunks(emails) {
            let rows = sqlx::query(include_str!("sql/last_contacts.sql"))
                .bind(chunk)
                .fetch_all(&self.reader)
                .await?;
            for row in &rows {
                found.push(Contact {
                    email: row.try_get("email")?,
                    job_id: row.try_get("job_id")?,
                    at: from_millis(row.try_get("at")?),
                });
            }
        }
        Ok(found)
    }
}
