//! The upload records in `fileTable`, behind a trait so handlers can be tested without a
//! database. [`MySqlRepo`] is the real one (prepared statements only), [`MemoryRepo`] the
//! one the unit tests use.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sqlx::mysql::MySqlPool;
use sqlx::Row;

use crate::db::Database;
use crate::privacy::mask_email;
use crate::Result;

/// Status values of an upload.
pub mod status {
    /// Recorded by file_upload; the file has not reached S3 yet.
    pub const WAITING: &str = "WAITING";
    /// The presigned upload ended without a file.
    pub const EXPIRED: &str = "EXPIRED";
    pub const UPLOADED: &str = "UPLOADED";
    pub const TRANSCRIBING: &str = "TRANSCRIBING";
    pub const TRANSCRIBED: &str = "TRANSCRIBED";
    pub const FAILED: &str = "FAILED";
}

/// The longest failure reason stored, in characters (the column is VARCHAR(1024), which
/// MySQL counts in characters).
pub const MAX_REASON_CHARS: usize = 1000;

/// A new upload, as file_upload records it. `Debug` masks the address.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUpload {
    pub upload_id: String,
    pub email: String,
    pub filename: String,
    pub language: String,
    pub audio_key: String,
    /// The caller's address as API Gateway saw it (`requestContext.identity.sourceIp`).
    pub source_ip: Option<String>,
    /// The direct-to-S3 upload the row waits for; `None` records the file as already stored.
    pub ticket: Option<Ticket>,
}

/// What file_upload promised the uploader: the file's declared size and type, the hash of
/// the token that reads the upload's status, and when the presigned upload ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub declared_bytes: u64,
    pub content_type: String,
    /// SHA-256 (hex) of the status token; the token itself is never stored.
    pub token_hash: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
    /// S3's id of the multipart upload, for files sent in parts.
    pub multipart_id: Option<String>,
}

/// How many uploads an hour the service takes from one e-mail address and from one source IP:
/// each upload starts a paid Transcribe job and mails its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub per_address_per_hour: u32,
    pub per_ip_per_hour: u32,
}

/// Whether [`UploadRepo::insert_within`] recorded the upload, or which quota it is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Recorded,
    OverAddressQuota,
    OverIpQuota,
}

/// An upload as stored. `Debug` masks the address.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    pub upload_id: String,
    pub email: String,
    pub filename: String,
    pub language: String,
    pub audio_key: String,
    pub job_name: Option<String>,
    pub status: String,
    pub failure_reason: Option<String>,
    pub text_key: Option<String>,
    pub emailed: bool,
}

impl std::fmt::Debug for NewUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUpload")
            .field("upload_id", &self.upload_id)
            .field("email", &mask_email(&self.email))
            .field("filename", &self.filename)
            .field("language", &self.language)
            .field("audio_key", &self.audio_key)
            .field("source_ip", &self.source_ip)
            .field("ticket", &self.ticket)
            .finish()
    }
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("upload_id", &self.upload_id)
            .field("email", &mask_email(&self.email))
            .field("filename", &self.filename)
            .field("language", &self.language)
            .field("audio_key", &self.audio_key)
            .field("job_name", &self.job_name)
            .field("status", &self.status)
            .field("failure_reason", &self.failure_reason)
            .field("text_key", &self.text_key)
            .field("emailed", &self.emailed)
            .finish()
    }
}

#[async_trait]
pub trait UploadRepo: Send + Sync {
    /// Records a new upload.
    async fn insert(&self, upload: &NewUpload) -> Result<()>;
    /// Records a new upload unless its address or its source IP already made `quota`'s
    /// number of uploads in the last hour; a refused upload writes nothing.
    async fn insert_within(&self, upload: &NewUpload, quota: &Quota) -> Result<Admission>;
    /// Removes an upload (file_upload's rollback when the S3 write fails).
    async fn delete(&self, upload_id: &str) -> Result<()>;
    async fn find(&self, upload_id: &str) -> Result<Option<Upload>>;
    async fn find_by_job(&self, job_name: &str) -> Result<Option<Upload>>;
    /// Records the Transcribe job of an upload. Idempotent.
    async fn set_job(&self, upload_id: &str, job_name: &str) -> Result<bool>;
    /// Records that the text was written. Returns false when no row has that job.
    async fn set_transcribed(&self, job_name: &str, text_key: &str) -> Result<bool>;
    /// Records a failed job. Returns false when no row has that job.
    async fn set_failed(&self, job_name: &str, reason: &str) -> Result<bool>;
    /// Claims the right to mail: true exactly once per upload (conditional UPDATE).
    async fn claim_email(&self, upload_id: &str) -> Result<bool>;
    /// Gives the claim back after a failed send, so a retry can mail.
    async fn release_email(&self, upload_id: &str) -> Result<()>;
    /// The finished uploads of an address (transcribed or failed) not mailed yet: what
    /// waited for the address's confirmation. Oldest first.
    async fn unmailed(&self, email: &str) -> Result<Vec<Upload>>;
    /// The ticket of a direct-to-S3 upload.
    async fn ticket(&self, upload_id: &str) -> Result<Option<Ticket>>;
    /// Records S3's multipart upload id of a waiting upload.
    async fn set_multipart(&self, upload_id: &str, multipart_id: &str) -> Result<bool>;
    /// The file arrived: a waiting (or expired: the upload began in time) upload becomes
    /// UPLOADED. False when the upload is in no such state.
    async fn set_uploaded(&self, upload_id: &str) -> Result<bool>;
    /// Marks an upload whose file has not been taken yet (WAITING or EXPIRED) FAILED: its file
    /// was refused, or the uploader gave up. False in any other state: a file that arrived
    /// (UPLOADED, taken by audio_transcribe) is transcribed even if the page gives up late.
    async fn fail_upload(&self, upload_id: &str, reason: &str) -> Result<bool>;
    /// Waiting uploads whose presigned upload ended become EXPIRED; returns how many.
    async fn expire_waiting(&self) -> Result<u64>;
}

/// The first `n` characters of `s` (MySQL's VARCHAR(n) counts characters).
pub fn truncate_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The status a new row starts in: waiting for its file when it has a ticket.
fn initial_status(u: &NewUpload) -> &'static str {
    if u.ticket.is_some() {
        status::WAITING
    } else {
        status::UPLOADED
    }
}

/// `fileTable` in MySQL / MariaDB. Every statement goes through [`Database::run`], so a
/// password rotated by RDS is picked up without a cold start.
#[derive(Clone)]
pub struct MySqlRepo {
    db: Database,
}

const SELECT: &str = "SELECT upload_id, email, filename, language, audio_key, job_name, status, \
     failure_reason, text_key, CAST(emailed_at IS NOT NULL AS SIGNED) AS emailed FROM fileTable";

impl MySqlRepo {
    /// A repository on a pool whose credentials never change (local target, tests).
    pub fn new(pool: MySqlPool) -> Self {
        MySqlRepo {
            db: Database::new(pool),
        }
    }

    /// A repository that re-reads the secret when the database refuses the password.
    pub fn with_database(db: Database) -> Self {
        MySqlRepo { db }
    }

    pub fn pool(&self) -> &MySqlPool {
        self.db.pool()
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    fn row(r: &sqlx::mysql::MySqlRow) -> Result<Upload> {
        Ok(Upload {
            upload_id: r.try_get("upload_id")?,
            email: r.try_get("email")?,
            filename: r.try_get("filename")?,
            language: r.try_get("language")?,
            audio_key: r.try_get("audio_key")?,
            job_name: r.try_get("job_name")?,
            status: r.try_get("status")?,
            failure_reason: r.try_get("failure_reason")?,
            text_key: r.try_get("text_key")?,
            emailed: r.try_get::<i64, _>("emailed")? != 0,
        })
    }

    async fn affected(&self, sql: &'static str, binds: &[&str]) -> Result<u64> {
        self.db
            .run(|pool| async move {
                let mut q = sqlx::query(sql);
                for b in binds {
                    q = q.bind(*b);
                }
                Ok(q.execute(&pool).await?.rows_affected())
            })
            .await
    }

    async fn select_one(&self, filter: &'static str, value: &str) -> Result<Option<Upload>> {
        let row = self
            .db
            .run(|pool| async move {
                sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE {filter} = ?")))
                    .bind(value)
                    .fetch_optional(&pool)
                    .await
            })
            .await?;
        row.as_ref().map(Self::row).transpose()
    }
}

#[async_trait]
impl UploadRepo for MySqlRepo {
    async fn insert(&self, u: &NewUpload) -> Result<()> {
        self.db
            .run(|pool| async move {
                let t = u.ticket.as_ref();
                sqlx::query(
                    "INSERT INTO fileTable \
                     (upload_id, email, filename, language, time, audio_key, status, source_ip, \
                      declared_bytes, content_type, token_hash, expires_at, multipart_id) \
                     VALUES (?, ?, ?, ?, CURRENT_TIMESTAMP, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?), ?)",
                )
                .bind(&u.upload_id)
                .bind(&u.email)
                .bind(&u.filename)
                .bind(&u.language)
                .bind(&u.audio_key)
                .bind(initial_status(u))
                .bind(&u.source_ip)
                .bind(t.map(|t| t.declared_bytes))
                .bind(t.map(|t| t.content_type.as_str()))
                .bind(t.map(|t| t.token_hash.as_str()))
                .bind(t.map(|t| t.expires_at))
                .bind(t.and_then(|t| t.multipart_id.as_deref()))
                .execute(&pool)
                .await
            })
            .await?;
        Ok(())
    }

    async fn insert_within(&self, u: &NewUpload, quota: &Quota) -> Result<Admission> {
        // One statement: the counts and the insert cannot be split by a crash, and a refused
        // upload writes nothing. Two uploads racing may both pass at the limit's edge; a
        // quota off by the concurrency is what it is for (spending), not a hard cap.
        let inserted = self
            .db
            .run(|pool| async move {
                let t = u.ticket.as_ref();
                sqlx::query(
                    "INSERT INTO fileTable \
                     (upload_id, email, filename, language, time, audio_key, status, source_ip, \
                      declared_bytes, content_type, token_hash, expires_at, multipart_id) \
                     SELECT ?, ?, ?, ?, CURRENT_TIMESTAMP, ?, ?, ?, ?, ?, ?, FROM_UNIXTIME(?), ? \
                     FROM DUAL \
                     WHERE (SELECT COUNT(*) FROM fileTable \
                            WHERE email = ? AND time > CURRENT_TIMESTAMP - INTERVAL 1 HOUR) < ? \
                       AND (? IS NULL OR (SELECT COUNT(*) FROM fileTable \
                            WHERE source_ip = ? AND time > CURRENT_TIMESTAMP - INTERVAL 1 HOUR) < ?)",
                )
                .bind(&u.upload_id)
                .bind(&u.email)
                .bind(&u.filename)
                .bind(&u.language)
                .bind(&u.audio_key)
                .bind(initial_status(u))
                .bind(&u.source_ip)
                .bind(t.map(|t| t.declared_bytes))
                .bind(t.map(|t| t.content_type.as_str()))
                .bind(t.map(|t| t.token_hash.as_str()))
                .bind(t.map(|t| t.expires_at))
                .bind(t.and_then(|t| t.multipart_id.as_deref()))
                .bind(&u.email)
                .bind(quota.per_address_per_hour)
                .bind(&u.source_ip)
                .bind(&u.source_ip)
                .bind(quota.per_ip_per_hour)
                .execute(&pool)
                .await
            })
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(Admission::Recorded);
        }
        let by_address: i64 = self
            .db
            .run(|pool| async move {
                sqlx::query_scalar(
                    "SELECT COUNT(*) FROM fileTable \
                     WHERE email = ? AND time > CURRENT_TIMESTAMP - INTERVAL 1 HOUR",
                )
                .bind(&u.email)
                .fetch_one(&pool)
                .await
            })
            .await?;
        Ok(if by_address >= i64::from(quota.per_address_per_hour) {
            Admission::OverAddressQuota
        } else {
            Admission::OverIpQuota
        })
    }

    async fn delete(&self, upload_id: &str) -> Result<()> {
        self.affected("DELETE FROM fileTable WHERE upload_id = ?", &[upload_id])
            .await?;
        Ok(())
    }

    async fn find(&self, upload_id: &str) -> Result<Option<Upload>> {
        self.select_one("upload_id", upload_id).await
    }

    async fn find_by_job(&self, job_name: &str) -> Result<Option<Upload>> {
        self.select_one("job_name", job_name).await
    }

    async fn set_job(&self, upload_id: &str, job_name: &str) -> Result<bool> {
        // A job starts only for a file that arrived (UPLOADED); the status of a row still
        // WAITING (a test's or an older file_upload's) moves on too.
        let n = self
            .affected(
                "UPDATE fileTable SET job_name = ?, \
                 status = IF(status IN ('UPLOADED', 'WAITING'), 'TRANSCRIBING', status) \
                 WHERE upload_id = ? AND (job_name IS NULL OR job_name = ?)",
                &[job_name, upload_id, job_name],
            )
            .await?;
        Ok(n > 0)
    }

    async fn set_transcribed(&self, job_name: &str, text_key: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET status = 'TRANSCRIBED', text_key = ?, failure_reason = NULL \
                 WHERE job_name = ?",
                &[text_key, job_name],
            )
            .await?;
        Ok(n > 0 || self.find_by_job(job_name).await?.is_some())
    }

    async fn set_failed(&self, job_name: &str, reason: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET status = 'FAILED', failure_reason = ? WHERE job_name = ?",
                &[truncate_chars(reason, MAX_REASON_CHARS), job_name],
            )
            .await?;
        Ok(n > 0 || self.find_by_job(job_name).await?.is_some())
    }

    async fn claim_email(&self, upload_id: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET emailed_at = CURRENT_TIMESTAMP \
                 WHERE upload_id = ? AND emailed_at IS NULL",
                &[upload_id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn release_email(&self, upload_id: &str) -> Result<()> {
        self.affected(
            "UPDATE fileTable SET emailed_at = NULL WHERE upload_id = ?",
            &[upload_id],
        )
        .await?;
        Ok(())
    }

    async fn unmailed(&self, email: &str) -> Result<Vec<Upload>> {
        let rows = self
            .db
            .run(|pool| async move {
                sqlx::query(
                    "SELECT upload_id, email, filename, language, audio_key, job_name, status, \
                     failure_reason, text_key, CAST(emailed_at IS NOT NULL AS SIGNED) AS emailed \
                     FROM fileTable WHERE email = ? AND emailed_at IS NULL \
                     AND status IN ('TRANSCRIBED', 'FAILED') ORDER BY id",
                )
                .bind(email)
                .fetch_all(&pool)
                .await
            })
            .await?;
        rows.iter().map(Self::row).collect()
    }

    async fn ticket(&self, upload_id: &str) -> Result<Option<Ticket>> {
        let row = self
            .db
            .run(|pool| async move {
                sqlx::query(
                    "SELECT declared_bytes, content_type, token_hash, \
                     CAST(UNIX_TIMESTAMP(expires_at) AS SIGNED) AS expires_at, multipart_id \
                     FROM fileTable WHERE upload_id = ? AND token_hash IS NOT NULL",
                )
                .bind(upload_id)
                .fetch_optional(&pool)
                .await
            })
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some(Ticket {
            declared_bytes: r.try_get::<Option<u64>, _>("declared_bytes")?.unwrap_or(0),
            content_type: r
                .try_get::<Option<String>, _>("content_type")?
                .unwrap_or_default(),
            token_hash: r.try_get("token_hash")?,
            expires_at: r.try_get::<Option<i64>, _>("expires_at")?.unwrap_or(0),
            multipart_id: r.try_get("multipart_id")?,
        }))
    }

    async fn set_multipart(&self, upload_id: &str, multipart_id: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET multipart_id = ? WHERE upload_id = ? AND status = 'WAITING'",
                &[multipart_id, upload_id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn set_uploaded(&self, upload_id: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET status = 'UPLOADED' \
                 WHERE upload_id = ? AND status IN ('WAITING', 'EXPIRED', 'UPLOADED')",
                &[upload_id],
            )
            .await?;
        Ok(n > 0
            || self
                .find(upload_id)
                .await?
                .is_some_and(|u| u.status == status::UPLOADED))
    }

    async fn fail_upload(&self, upload_id: &str, reason: &str) -> Result<bool> {
        let n = self
            .affected(
                "UPDATE fileTable SET status = 'FAILED', failure_reason = ? \
                 WHERE upload_id = ? AND job_name IS NULL \
                 AND status IN ('WAITING', 'EXPIRED')",
                &[truncate_chars(reason, MAX_REASON_CHARS), upload_id],
            )
            .await?;
        Ok(n == 1)
    }

    async fn expire_waiting(&self) -> Result<u64> {
        self.affected(
            "UPDATE fileTable SET status = 'EXPIRED' \
             WHERE status = 'WAITING' AND expires_at < CURRENT_TIMESTAMP",
            &[],
        )
        .await
    }
}

/// An in-memory repository for unit tests.
#[derive(Default)]
pub struct MemoryRepo {
    rows: Mutex<HashMap<String, Upload>>,
    /// Source IPs by upload id (not part of [`Upload`]: only the quotas read them).
    source_ips: Mutex<HashMap<String, String>>,
    tickets: Mutex<HashMap<String, Ticket>>,
    /// When set, every call fails with a database error (to test error paths).
    pub fail: std::sync::atomic::AtomicBool,
}

impl MemoryRepo {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(rows: impl IntoIterator<Item = Upload>) -> Self {
        let repo = Self::default();
        {
            let mut map = repo.rows.lock().unwrap();
            for r in rows {
                map.insert(r.upload_id.clone(), r);
            }
        }
        repo
    }

    pub fn all(&self) -> Vec<Upload> {
        self.rows.lock().unwrap().values().cloned().collect()
    }

    fn check(&self) -> Result<()> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            Err(sqlx::Error::PoolTimedOut.into())
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl UploadRepo for MemoryRepo {
    /// Counts every row as made in the last hour (a unit test's rows are).
    async fn insert_within(&self, u: &NewUpload, quota: &Quota) -> Result<Admission> {
        self.check()?;
        let (by_address, by_ip) = {
            let rows = self.rows.lock().unwrap();
            let by_address = rows
                .values()
                .filter(|r| r.email.eq_ignore_ascii_case(&u.email))
                .count();
            let ips = self.source_ips.lock().unwrap();
            let by_ip = u
                .source_ip
                .as_ref()
                .map_or(0, |ip| ips.values().filter(|other| *other == ip).count());
            (by_address, by_ip)
        };
        if by_address >= quota.per_address_per_hour as usize {
            return Ok(Admission::OverAddressQuota);
        }
        if by_ip >= quota.per_ip_per_hour as usize {
            return Ok(Admission::OverIpQuota);
        }
        self.insert(u).await?;
        Ok(Admission::Recorded)
    }

    async fn insert(&self, u: &NewUpload) -> Result<()> {
        self.check()?;
        if let Some(ip) = &u.source_ip {
            self.source_ips
                .lock()
                .unwrap()
                .insert(u.upload_id.clone(), ip.clone());
        }
        if let Some(t) = &u.ticket {
            self.tickets
                .lock()
                .unwrap()
                .insert(u.upload_id.clone(), t.clone());
        }
        self.rows.lock().unwrap().insert(
            u.upload_id.clone(),
            Upload {
                upload_id: u.upload_id.clone(),
                email: u.email.clone(),
                filename: u.filename.clone(),
                language: u.language.clone(),
                audio_key: u.audio_key.clone(),
                job_name: None,
                status: initial_status(u).into(),
                failure_reason: None,
                text_key: None,
                emailed: false,
            },
        );
        Ok(())
    }

    async fn delete(&self, upload_id: &str) -> Result<()> {
        self.check()?;
        self.rows.lock().unwrap().remove(upload_id);
        self.source_ips.lock().unwrap().remove(upload_id);
        self.tickets.lock().unwrap().remove(upload_id);
        Ok(())
    }

    async fn find(&self, upload_id: &str) -> Result<Option<Upload>> {
        self.check()?;
        Ok(self.rows.lock().unwrap().get(upload_id).cloned())
    }

    async fn find_by_job(&self, job_name: &str) -> Result<Option<Upload>> {
        self.check()?;
        Ok(self
            .rows
            .lock()
            .unwrap()
            .values()
            .find(|u| u.job_name.as_deref() == Some(job_name))
            .cloned())
    }

    async fn set_job(&self, upload_id: &str, job_name: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(upload_id) {
            Some(u) if u.job_name.is_none() || u.job_name.as_deref() == Some(job_name) => {
                u.job_name = Some(job_name.into());
                if u.status == status::UPLOADED || u.status == status::WAITING {
                    u.status = status::TRANSCRIBING.into();
                }
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_transcribed(&self, job_name: &str, text_key: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows
            .values_mut()
            .find(|u| u.job_name.as_deref() == Some(job_name))
        {
            Some(u) => {
                u.status = status::TRANSCRIBED.into();
                u.text_key = Some(text_key.into());
                u.failure_reason = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_failed(&self, job_name: &str, reason: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows
            .values_mut()
            .find(|u| u.job_name.as_deref() == Some(job_name))
        {
            Some(u) => {
                u.status = status::FAILED.into();
                u.failure_reason = Some(truncate_chars(reason, MAX_REASON_CHARS).into());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn claim_email(&self, upload_id: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(upload_id) {
            Some(u) if !u.emailed => {
                u.emailed = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_email(&self, upload_id: &str) -> Result<()> {
        self.check()?;
        if let Some(u) = self.rows.lock().unwrap().get_mut(upload_id) {
            u.emailed = false;
        }
        Ok(())
    }

    async fn unmailed(&self, email: &str) -> Result<Vec<Upload>> {
        self.check()?;
        let mut found: Vec<Upload> = self
            .rows
            .lock()
            .unwrap()
            .values()
            .filter(|u| {
                u.email.eq_ignore_ascii_case(email)
                    && !u.emailed
                    && (u.status == status::TRANSCRIBED || u.status == status::FAILED)
            })
            .cloned()
            .collect();
        found.sort_by(|a, b| a.upload_id.cmp(&b.upload_id));
        Ok(found)
    }

    async fn ticket(&self, upload_id: &str) -> Result<Option<Ticket>> {
        self.check()?;
        Ok(self.tickets.lock().unwrap().get(upload_id).cloned())
    }

    async fn set_multipart(&self, upload_id: &str, multipart_id: &str) -> Result<bool> {
        self.check()?;
        let waiting = self
            .find(upload_id)
            .await?
            .is_some_and(|u| u.status == status::WAITING);
        let mut tickets = self.tickets.lock().unwrap();
        match tickets.get_mut(upload_id) {
            Some(t) if waiting => {
                t.multipart_id = Some(multipart_id.into());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn set_uploaded(&self, upload_id: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(upload_id) {
            Some(u)
                if [status::WAITING, status::EXPIRED, status::UPLOADED]
                    .contains(&u.status.as_str()) =>
            {
                u.status = status::UPLOADED.into();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn fail_upload(&self, upload_id: &str, reason: &str) -> Result<bool> {
        self.check()?;
        let mut rows = self.rows.lock().unwrap();
        match rows.get_mut(upload_id) {
            Some(u)
                if u.job_name.is_none()
                    && [status::WAITING, status::EXPIRED].contains(&u.status.as_str()) =>
            {
                u.status = status::FAILED.into();
                u.failure_reason = Some(truncate_chars(reason, MAX_REASON_CHARS).into());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn expire_waiting(&self) -> Result<u64> {
        self.check()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let tickets = self.tickets.lock().unwrap();
        let mut n = 0;
        for u in self.rows.lock().unwrap().values_mut() {
            let ended = tickets
                .get(&u.upload_id)
                .is_some_and(|t| t.expires_at < now);
            if u.status == status::WAITING && ended {
                u.status = status::EXPIRED.into();
                n += 1;
            }
        }
        Ok(n)
    }
}
