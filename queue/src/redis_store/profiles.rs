//! Profiles, résumés, sealed sessions and the applications ledger on Redis, under the
//! global hash tag (one slot; see `keys.rs`): a hash per profile and per résumé, two hashes
//! per user's sessions (site → blob, site → time), and per user's ledger a hash of entries
//! (posting → `<outcome>\n<counted 1|0>\n<claimed ms>\n<settled ms or ''>\n<job id>`), a
//! zset of postings read by lex (paging), a zset of counted postings by claim time (the
//! counts) and a version string. Multi-key writes are MULTI blocks or one script.

use std::sync::OnceLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::{AsyncCommands, Script};

use super::RedisStore;
use crate::application::{Application, ApplicationCounts, Outcome, Tally};
use crate::job::{from_millis, to_millis};
use crate::profile::{Profile, Resume, ResumeInfo, SealedSession, SessionInfo, StoredProfile};
use crate::store::*;

static INSERT: OnceLock<Script> = OnceLock::new();
static REPLACE: OnceLock<Script> = OnceLock::new();
static REMOVE: OnceLock<Script> = OnceLock::new();

fn script(cell: &'static OnceLock<Script>, source: &'static str) -> &'static Script {
    cell.get_or_init(|| Script::new(source))
}

impl RedisStore {
    fn profile_key(&self, user_id: &str) -> String {
        self.global(&format!("profile:{user_id}"))
    }
    fn resume_key(&self, user_id: &str) -> String {
        self.global(&format!("resume:{user_id}"))
    }
    fn sessions_key(&self, user_id: &str) -> String {
        self.global(&format!("sess:{user_id}"))
    }
    fn session_times_key(&self, user_id: &str) -> String {
        self.global(&format!("sessat:{user_id}"))
    }
    fn apps_key(&self, user_id: &str) -> String {
        self.global(&format!("apps:{user_id}"))
    }
    fn apps_index_key(&self, user_id: &str) -> String {
        self.global(&format!("appsidx:{user_id}"))
    }
    fn apps_counted_key(&self, user_id: &str) -> String {
        self.global(&format!("appscount:{user_id}"))
    }
    fn apps_version_key(&self, user_id: &str) -> String {
        self.global(&format!("appsver:{user_id}"))
    }
}

/// An entry as stored (the user and posting are its key and field).
fn encode(entry: &Application) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        entry.outcome.as_str(),
        u8::from(entry.counted),
        to_millis(entry.claimed_at),
        entry
            .settled_at
            .map(|t| to_millis(t).to_string())
            .unwrap_or_default(),
        entry.job_id
    )
}

fn decode(user_id: &str, posting_key: String, stored: &str) -> StoreResult<Application> {
    let broken = || {
        StoreError::Backend(format!(
            "the stored application `{posting_key}` of `{user_id}` does not parse"
        ))
    };
    let mut parts = stored.split('\n');
    let mut next = || parts.next().ok_or_else(broken);
    let outcome = stored_outcome(next()?)?;
    let counted = next()? == "1";
    let claimed_at: i64 = next()?.parse().map_err(|_| broken())?;
    let settled_at = match next()? {
        "" => None,
        ms => Some(from_millis(ms.parse().map_err(|_| broken())?)),
    };
    let job_id = next()?.parse().map_err(|_| broken())?;
    Ok(Application {
        user_id: user_id.to_string(),
        posting_key,
        job_id,
        outcome,
        counted,
        claimed_at: from_millis(claimed_at),
        settled_at,
    })
}

fn millis_field(value: Option<i64>) -> DateTime<Utc> {
    from_millis(value.unwrap_or_default())
}

#[async_trait]
impl Profiles for RedisStore {
    async fn put_profile(
        &self,
        user_id: &str,
        profile: &Profile,
        now: DateTime<Utc>,
    ) -> StoreResult<bool> {
        refuse_nul_text("user_id", user_id)?;
        let value = serde_json::to_value(profile)
            .map_err(|e| StoreError::Backend(format!("profile: {e}")))?;
        refuse_nul("profile", &value)?;
        let key = self.profile_key(user_id);
        let now = to_millis(now);
        let (created,): (i64,) = redis::pipe()
            .atomic()
            .hset_nx(&key, "created_at", now)
            .hset_multiple(
                &key,
                &[
                    ("profile", value.to_string()),
                    ("updated_at", now.to_string()),
                ],
            )
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(created == 1)
    }

    async fn profile(&self, user_id: &str) -> StoreResult<Option<StoredProfile>> {
        let (json, created_at, updated_at): (Option<String>, Option<i64>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(self.profile_key(user_id))
                .arg("profile")
                .arg("created_at")
                .arg("updated_at")
                .query_async(&mut self.conn())
                .await?;
        let Some(json) = json else { return Ok(None) };
        Ok(Some(StoredProfile {
            user_id: user_id.to_string(),
            profile: serde_json::from_str(&json).map_err(|e| {
                StoreError::Backend(format!("a stored profile does not parse: {e}"))
            })?,
            created_at: millis_field(created_at),
            updated_at: millis_field(updated_at),
        }))
    }

    async fn delete_profile(&self, user_id: &str) -> StoreResult<bool> {
        let (deleted,): (i64,) = redis::pipe()
            .atomic()
            .del(self.profile_key(user_id))
            .del(&[
                self.resume_key(user_id),
                self.sessions_key(user_id),
                self.session_times_key(user_id),
            ])
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(deleted == 1)
    }

    async fn put_resume(&self, user_id: &str, resume: &Resume) -> StoreResult<()> {
        refuse_nul_text("user_id", user_id)?;
        refuse_nul_text("filename", &resume.info.filename)?;
        refuse_nul_text("content_type", &resume.info.content_type)?;
        // One HSET: the four fields change at once.
        let _: i64 = redis::cmd("HSET")
            .arg(self.resume_key(user_id))
            .arg("filename")
            .arg(&resume.info.filename)
            .arg("content_type")
            .arg(&resume.info.content_type)
            .arg("data")
            .arg(&resume.data[..])
            .arg("uploaded_at")
            .arg(to_millis(resume.info.uploaded_at))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn resume_file(&self, user_id: &str) -> StoreResult<Option<Resume>> {
        let (filename, content_type, data, uploaded_at): (
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            Option<i64>,
        ) = redis::cmd("HMGET")
            .arg(self.resume_key(user_id))
            .arg("filename")
            .arg("content_type")
            .arg("data")
            .arg("uploaded_at")
            .query_async(&mut self.conn())
            .await?;
        let (Some(filename), Some(content_type), Some(data)) = (filename, content_type, data)
        else {
            return Ok(None);
        };
        Ok(Some(Resume {
            info: ResumeInfo {
                filename,
                content_type,
                bytes: data.len() as u64,
                uploaded_at: millis_field(uploaded_at),
            },
            data,
        }))
    }

    async fn resume_info(&self, user_id: &str) -> StoreResult<Option<ResumeInfo>> {
        let key = self.resume_key(user_id);
        let ((filename, content_type, uploaded_at), bytes): (
            (Option<String>, Option<String>, Option<i64>),
            i64,
        ) = redis::pipe()
            .cmd("HMGET")
            .arg(&key)
            .arg("filename")
            .arg("content_type")
            .arg("uploaded_at")
            .cmd("HSTRLEN")
            .arg(&key)
            .arg("data")
            .query_async(&mut self.conn())
            .await?;
        let (Some(filename), Some(content_type)) = (filename, content_type) else {
            return Ok(None);
        };
        Ok(Some(ResumeInfo {
            filename,
            content_type,
            bytes: u64::try_from(bytes).unwrap_or(0),
            uploaded_at: millis_field(uploaded_at),
        }))
    }

    async fn put_session(&self, session: &SealedSession) -> StoreResult<()> {
        refuse_nul_text("user_id", &session.user_id)?;
        refuse_nul_text("site", &session.site)?;
        let () = redis::pipe()
            .atomic()
            .hset(
                self.sessions_key(&session.user_id),
                &session.site,
                &session.blob[..],
            )
            .ignore()
            .hset(
                self.session_times_key(&session.user_id),
                &session.site,
                to_millis(session.updated_at),
            )
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    async fn session(&self, user_id: &str, site: &str) -> StoreResult<Option<SealedSession>> {
        let (blob, at): (Option<Vec<u8>>, Option<i64>) = redis::pipe()
            .atomic()
            .hget(self.sessions_key(user_id), site)
            .hget(self.session_times_key(user_id), site)
            .query_async(&mut self.conn())
            .await?;
        Ok(blob.map(|blob| SealedSession {
            user_id: user_id.to_string(),
            site: site.to_string(),
            blob,
            updated_at: millis_field(at),
        }))
    }

    async fn sessions(&self, user_id: &str) -> StoreResult<Vec<SessionInfo>> {
        let times: std::collections::BTreeMap<String, i64> =
            self.conn().hgetall(self.session_times_key(user_id)).await?;
        Ok(times
            .into_iter()
            .map(|(site, at)| SessionInfo {
                site,
                updated_at: from_millis(at),
            })
            .collect())
    }

    async fn delete_session(&self, user_id: &str, site: &str) -> StoreResult<bool> {
        let (deleted,): (i64,) = redis::pipe()
            .atomic()
            .hdel(self.sessions_key(user_id), site)
            .hdel(self.session_times_key(user_id), site)
            .ignore()
            .query_async(&mut self.conn())
            .await?;
        Ok(deleted == 1)
    }
}

#[async_trait]
impl Applications for RedisStore {
    async fn application(
        &self,
        user_id: &str,
        posting_key: &str,
    ) -> StoreResult<Option<Application>> {
        let stored: Option<String> = self
            .conn()
            .hget(self.apps_key(user_id), posting_key)
            .await?;
        stored
            .map(|s| decode(user_id, posting_key.to_string(), &s))
            .transpose()
    }

    async fn application_tally(
        &self,
        user_id: &str,
        day: (DateTime<Utc>, DateTime<Utc>),
        month: (DateTime<Utc>, DateTime<Utc>),
    ) -> StoreResult<Tally> {
        let counted = self.apps_counted_key(user_id);
        // MULTI: one snapshot of the version and both counts.
        let (version, day, month): (Option<i64>, i64, i64) = redis::pipe()
            .atomic()
            .get(self.apps_version_key(user_id))
            .zcount(&counted, to_millis(day.0), format!("({}", to_millis(day.1)))
            .zcount(
                &counted,
                to_millis(month.0),
                format!("({}", to_millis(month.1)),
            )
            .query_async(&mut self.conn())
            .await?;
        Ok(Tally {
            version: version.unwrap_or(0),
            counts: ApplicationCounts {
                day: stored_count(day),
                month: stored_count(month),
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
        let user = &entry.user_id;
        let answer: i64 = script(&INSERT, include_str!("lua/application_insert.lua"))
            .key(self.apps_version_key(user))
            .key(self.apps_key(user))
            .key(self.apps_index_key(user))
            .key(self.apps_counted_key(user))
            .arg(expected)
            .arg(&entry.posting_key)
            .arg(encode(entry))
            .arg(to_millis(entry.claimed_at))
            .arg(u8::from(entry.counted))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match answer {
            1 => Inserted::Inserted,
            2 => Inserted::Exists,
            _ => Inserted::Moved,
        })
    }

    async fn replace_application(
        &self,
        entry: &Application,
        expected: Outcome,
    ) -> StoreResult<bool> {
        let user = &entry.user_id;
        let written: i64 = script(&REPLACE, include_str!("lua/application_replace.lua"))
            .key(self.apps_key(user))
            .key(self.apps_counted_key(user))
            .arg(&entry.posting_key)
            .arg(expected.as_str())
            .arg(encode(entry))
            .arg(u8::from(entry.counted))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(written == 1)
    }

    async fn remove_application(
        &self,
        user_id: &str,
        posting_key: &str,
        expected: Outcome,
    ) -> StoreResult<bool> {
        let removed: i64 = script(&REMOVE, include_str!("lua/application_remove.lua"))
            .key(self.apps_key(user_id))
            .key(self.apps_index_key(user_id))
            .key(self.apps_counted_key(user_id))
            .arg(posting_key)
            .arg(expected.as_str())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(removed == 1)
    }

    async fn applications(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<Application>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let start = after.map_or_else(|| "-".to_string(), |a| format!("({a}"));
        let postings: Vec<String> = self
            .conn()
            .zrangebylex_limit(
                self.apps_index_key(user_id),
                start,
                "+",
                0,
                limit.min(MAX_APPLICATIONS_PAGE) as isize,
            )
            .await?;
        if postings.is_empty() {
            return Ok(Vec::new());
        }
        let stored: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.apps_key(user_id))
            .arg(&postings)
            .query_async(&mut self.conn())
            .await?;
        postings
            .into_iter()
            .zip(stored)
            // Released between the two reads: left out.
            .filter_map(|(posting, s)| Some(decode(user_id, posting, &s?)))
            .collect()
    }
}
