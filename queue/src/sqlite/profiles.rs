//! Profiles, résumés, sealed sessions and the applications ledger on SQLite: a row per
//! profile, résumé, (user, site) session and (user, posting) entry, and a version row per
//! user that each claim's insert compares and bumps in the same `BEGIN IMMEDIATE`
//! transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Row;

use super::SqliteStore;
use crate::application::{Application, ApplicationCounts, Outcome, Tally};
use crate::job::{from_millis, to_millis};
use crate::profile::{Profile, Resume, ResumeInfo, SealedSession, SessionInfo, StoredProfile};
use crate::store::*;

type DbRow = sqlx::sqlite::SqliteRow;

/// The profile as stored JSON; refused when a text holds U+0000 (as on every backend).
fn profile_json(profile: &Profile) -> StoreResult<String> {
    let value =
        serde_json::to_value(profile).map_err(|e| StoreError::Backend(format!("profile: {e}")))?;
    refuse_nul("profile", &value)?;
    Ok(value.to_string())
}

fn profile_from_row(row: &DbRow) -> StoreResult<StoredProfile> {
    let json: String = row.try_get("profile")?;
    Ok(StoredProfile {
        user_id: row.try_get("user_id")?,
        profile: serde_json::from_str(&json)
            .map_err(|e| StoreError::Backend(format!("a stored profile does not parse: {e}")))?,
        created_at: from_millis(row.try_get("created_at")?),
        updated_at: from_millis(row.try_get("updated_at")?),
    })
}

fn application_from_row(row: &DbRow) -> StoreResult<Application> {
    Ok(Application {
        user_id: row.try_get("user_id")?,
        posting_key: row.try_get("posting_key")?,
        job_id: row.try_get("job_id")?,
        outcome: stored_outcome(row.try_get("outcome")?)?,
        counted: row.try_get("counted")?,
        claimed_at: from_millis(row.try_get("claimed_at")?),
        settled_at: row
            .try_get::<Option<i64>, _>("settled_at")?
            .map(from_millis),
    })
}

#[async_trait]
impl Profiles for SqliteStore {
    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Profile,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        refuse_nul_text("user_id", user_id)?;
        let json = profile_json(profile)?;
        let mut tx = self.begin().await?;
        let created = sqlx::query(include_str!("sql/insert_profile.sql"))
            .bind(user_id)
            .bind(&json)
            .bind(to_millis(now))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if !created {
            sqlx::query(include_str!("sql/update_profile.sql"))
                .bind(user_id)
                .bind(&json)
                .bind(to_millis(now))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    async fn profile(&self, user_id: &str) -> StoreResult<Option<StoredProfile>> {
        let row = sqlx::query(include_str!("sql/profile.sql"))
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(profile_from_row).transpose()
    }

    async fn delete_profile(&self, user_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let deleted = sqlx::query(include_str!("sql/delete_profile.sql"))
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        for sql in [
            include_str!("sql/delete_profile_resume.sql"),
            include_str!("sql/delete_profile_sessions.sql"),
        ] {
            sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    async fn put_resume(&self, user_id: &str, resume: &Resume) -> StoreResult<()> {
        refuse_nul_text("user_id", user_id)?;
        refuse_nul_text("filename", &resume.info.filename)?;
        refuse_nul_text("content_type", &resume.info.content_type)?;
        sqlx::query(include_str!("sql/put_resume.sql"))
            .bind(user_id)
            .bind(&resume.info.filename)
            .bind(&resume.info.content_type)
            .bind(&resume.data)
            .bind(to_millis(resume.info.uploaded_at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn resume_file(&self, user_id: &str) -> StoreResult<Option<Resume>> {
        let row = sqlx::query(include_str!("sql/resume.sql"))
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let data: Vec<u8> = row.try_get("data")?;
        Ok(Some(Resume {
            info: ResumeInfo {
                filename: row.try_get("filename")?,
                content_type: row.try_get("content_type")?,
                bytes: data.len() as u64,
                uploaded_at: from_millis(row.try_get("uploaded_at")?),
            },
            data,
        }))
    }

    async fn resume_info(&self, user_id: &str) -> StoreResult<Option<ResumeInfo>> {
        let row = sqlx::query(include_str!("sql/resume_info.sql"))
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(ResumeInfo {
            filename: row.try_get("filename")?,
            content_type: row.try_get("content_type")?,
            bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
            uploaded_at: from_millis(row.try_get("uploaded_at")?),
        }))
    }

    async fn put_session(&self, session: &SealedSession) -> StoreResult<()> {
        refuse_nul_text("user_id", &session.user_id)?;
        refuse_nul_text("site", &session.site)?;
        sqlx::query(include_str!("sql/put_session.sql"))
            .bind(&session.user_id)
            .bind(&session.site)
            .bind(&session.blob)
            .bind(to_millis(session.updated_at))
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn session(&self, user_id: &str, site: &str) -> StoreResult<Option<SealedSession>> {
        let row = sqlx::query(include_str!("sql/session.sql"))
            .bind(user_id)
            .bind(site)
            .fetch_optional(&self.reader)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(SealedSession {
            user_id: user_id.to_string(),
            site: site.to_string(),
            blob: row.try_get("blob")?,
            updated_at: from_millis(row.try_get("updated_at")?),
        }))
    }

    async fn sessions(&self, user_id: &str) -> StoreResult<Vec<SessionInfo>> {
        let rows = sqlx::query(include_str!("sql/sessions.sql"))
            .bind(user_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SessionInfo {
                    site: row.try_get("site")?,
                    updated_at: from_millis(row.try_get("updated_at")?),
                })
            })
            .collect()
    }

    async fn delete_session(&self, user_id: &str, site: &str) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/delete_session.sql"))
            .bind(user_id)
            .bind(site)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl Applications for SqliteStore {
    async fn application(
        &self,
        user_id: &str,
        posting_key: &str,
    ) -> StoreResult<Option<Application>> {
        let row = sqlx::query(include_str!("sql/application.sql"))
            .bind(user_id)
            .bind(posting_key)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(application_from_row).transpose()
    }

    async fn application_tally(
        &self,
        user_id: &str,
        day: (DateTime<Utc>, DateTime<Utc>),
        month: (DateTime<Utc>, DateTime<Utc>),
    ) -> StoreResult<Tally> {
        // One statement: one snapshot.
        let row = sqlx::query(include_str!("sql/application_tally.sql"))
            .bind(user_id)
            .bind(to_millis(day.0))
            .bind(to_millis(day.1))
            .bind(to_millis(month.0))
            .bind(to_millis(month.1))
            .fetch_one(&self.reader)
            .await?;
        Ok(Tally {
            version: row.try_get::<Option<i64>, _>("version")?.unwrap_or(0),
            counts: ApplicationCounts {
                day: stored_count(row.try_get("day")?),
                month: stored_count(row.try_get("month")?),
            },
        })
    }

    async fn insert_application(
        &self,
        entry: &Application,
        expected: i64,
    ) -> StoreResult<Inserted> {
        refuse_nul_text("user_id", &entry.user_id)?;
        refuse_nul_text("posting_key", &entry.posting_key)?;
        let mut tx = self.begin().await?;
        let bumped = if expected == 0 {
            sqlx::query(include_str!("sql/first_application_version.sql"))
                .bind(&entry.user_id)
                .execute(&mut *tx)
                .await?
        } else {
            sqlx::query(include_str!("sql/bump_application_version.sql"))
                .bind(&entry.user_id)
                .bind(expected)
                .execute(&mut *tx)
                .await?
        };
        if bumped.rows_affected() != 1 {
            return Ok(Inserted::Moved);
        }
        let inserted = sqlx::query(include_str!("sql/insert_application.sql"))
            .bind(&entry.user_id)
            .bind(&entry.posting_key)
            .bind(entry.job_id)
            .bind(entry.outcome.as_str())
            .bind(entry.counted)
            .bind(to_millis(entry.claimed_at))
            .bind(entry.settled_at.map(to_millis))
            .execute(&mut *tx)
            .await?;
        if inserted.rows_affected() != 1 {
            // Dropped without a commit: the version bump is rolled back.
            return Ok(Inserted::Exists);
        }
        tx.commit().await?;
        Ok(Inserted::Inserted)
    }

    async fn replace_application(
        &self,
        entry: &Application,
        expected: Outcome,
    ) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/replace_application.sql"))
            .bind(&entry.user_id)
            .bind(&entry.posting_key)
            .bind(entry.outcome.as_str())
            .bind(entry.counted)
            .bind(entry.settled_at.map(to_millis))
            .bind(expected.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_application(
        &self,
        user_id: &str,
        posting_key: &str,
        expected: Outcome,
    ) -> StoreResult<bool> {
        let done = sqlx::query(include_str!("sql/remove_application.sql"))
            .bind(user_id)
            .bind(posting_key)
            .bind(expected.as_str())
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn applications(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Application>> {
        let rows = sqlx::query(include_str!("sql/applications.sql"))
            .bind(user_id)
            .bind(after.unwrap_or_default())
            .bind(limit.min(MAX_APPLICATIONS_PAGE) as i64)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(application_from_row).collect()
    }
}
