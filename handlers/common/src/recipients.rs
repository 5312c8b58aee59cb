//! Recipient confirmation (double opt-in): the service mails a transcript only to an address
//! that confirmed it wants them. The first result for an address sends a confirmation mail
//! with a link; its token is single-use and expires; only the token's SHA-256 is stored, so
//! a copy of the database cannot confirm anything.
//!
//! `recipients` holds one row per address: the digest of the link that is out, its expiry,
//! and when the address was confirmed. The digest stays after confirmation, so a link used
//! twice is told apart from one never issued.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::repo::MySqlRepo;
use crate::Result;

/// Whether an address may be mailed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Confirmed,
    /// Not confirmed; a link that has not expired is out.
    LinkOut,
    /// Not confirmed, and no valid link is out (never asked, or the link expired).
    Unasked,
}

/// What following a link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The address is confirmed now.
    Confirmed {
        email: String,
    },
    /// The link confirmed its address before: a link works once.
    AlreadyUsed,
    Expired,
    /// No link with this token was issued (or a newer one replaced it).
    Unknown,
}

/// A link's secret: 64 lowercase hex characters (244 random bits from two v4 UUIDs).
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Whether `s` has the shape of a token (checked before any database read).
pub fn is_token(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What is stored of a token.
pub fn token_digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[async_trait]
pub trait RecipientRepo: Send + Sync {
    async fn consent(&self, email: &str) -> Result<Consent>;
    /// Makes `digest` the address's link, valid for `valid_for`, unless the address is
    /// confirmed or a link that has not expired is out. True when this link is the one out.
    async fn issue_link(&self, email: &str, digest: &str, valid_for: Duration) -> Result<bool>;
    /// Takes back a link whose mail could not be sent, so that a retry sends a new one.
    async fn withdraw_link(&self, email: &str, digest: &str) -> Result<()>;
    /// Confirms the address of a valid link (once).
    async fn redeem(&self, digest: &str) -> Result<Redeemed>;
}

#[async_trait]
impl RecipientRepo for MySqlRepo {
    async fn consent(&self, email: &str) -> Result<Consent> {
        let row: Option<(i64, i64)> = self
            .database()
            .run(|pool| async move {
                sqlx::query_as(
                    "SELECT CAST(confirmed_at IS NOT NULL AS SIGNED), \
                     CAST(COALESCE(token_expires_at > CURRENT_TIMESTAMP, 0) AS SIGNED) \
                     FROM recipients WHERE email = ?",
                )
                .bind(email)
                .fetch_optional(&pool)
                .await
            })
            .await?;
        Ok(match row {
            Some((1, _)) => Consent::Confirmed,
            Some((_, 1)) => Consent::LinkOut,
            _ => Consent::Unasked,
        })
    }

    async fn issue_link(&self, email: &str, digest: &str, valid_for: Duration) -> Result<bool> {
        // Two statements, each harmless alone: a run stopped between them leaves a row with
        // no link, which the next result for the address fills.
        self.database()
            .run(|pool| async move {
                sqlx::query(
                    "INSERT INTO recipients (email) VALUES (?) \
                     ON DUPLICATE KEY UPDATE email = email",
                )
                .bind(email)
                .execute(&pool)
                .await
            })
            .await?;
        let seconds = valid_for.as_secs();
        let replaced = self
            .database()
            .run(|pool| async move {
                sqlx::query(
                    "UPDATE recipients SET token_hash = ?, \
                     token_expires_at = CURRENT_TIMESTAMP + INTERVAL ? SECOND \
                     WHERE email = ? AND confirmed_at IS NULL \
                     AND (token_expires_at IS NULL OR token_expires_at <= CURRENT_TIMESTAMP)",
                )
                .bind(digest)
                .bind(seconds)
                .bind(email)
                .execute(&pool)
                .await
            })
            .await?
            .rows_affected();
        Ok(replaced == 1)
    }

    async fn withdraw_link(&self, email: &str, digest: &str) -> Result<()> {
        self.database()
            .run(|pool| async move {
                sqlx::query(
                    "UPDATE recipients SET token_hash = NULL, token_expires_at = NULL \
                     WHERE email = ? AND token_hash = ? AND confirmed_at IS NULL",
                )
                .bind(email)
                .bind(digest)
                .execute(&pool)
                .await
            })
            .await?;
        Ok(())
    }

    async fn redeem(&self, digest: &str) -> Result<Redeemed> {
        // One conditional UPDATE: two clicks racing confirm once.
        let confirmed = self
            .database()
            .run(|pool| async move {
                sqlx::query(
                    "UPDATE recipients SET confirmed_at = CURRENT_TIMESTAMP \
                     WHERE token_hash = ? AND confirmed_at IS NULL \
                     AND token_expires_at > CURRENT_TIMESTAMP",
                )
                .bind(digest)
                .execute(&pool)
                .await
            })
            .await?
            .rows_affected();
        let row: Option<(String, i64, i64)> = self
            .database()
            .run(|pool| async move {
                sqlx::query_as(
                    "SELECT email, CAST(confirmed_at IS NOT NULL AS SIGNED), \
                     CAST(COALESCE(token_expires_at > CURRENT_TIMESTAMP, 0) AS SIGNED) \
                     FROM recipients WHERE token_hash = ?",
                )
                .bind(digest)
                .fetch_optional(&pool)
                .await
            })
            .await?;
        Ok(match row {
            None => Redeemed::Unknown,
            Some((email, _, _)) if confirmed == 1 => Redeemed::Confirmed { email },
            Some((_, 1, _)) => Redeemed::AlreadyUsed,
            Some(_) => Redeemed::Expired,
        })
    }
}

/// One address in [`MemoryRecipients`].
#[derive(Debug, Clone, Default)]
struct Row {
    digest: Option<String>,
    expires: Option<SystemTime>,
    confirmed: bool,
}

/// In-memory recipients for unit tests. Addresses compare case-insensitively, as the
/// table's collation does.
#[derive(Default)]
pub struct MemoryRecipients {
    rows: Mutex<HashMap<String, Row>>,
}

impl MemoryRecipients {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks an address confirmed (a test's starting point).
    pub fn confirm(&self, email: &str) {
        self.rows
            .lock()
            .unwrap()
            .entry(email.to_lowercase())
            .or_default()
            .confirmed = true;
    }

    /// Lets every link that is out expire.
    pub fn expire_links(&self) {
        let past = SystemTime::now() - Duration::from_secs(1);
        for row in self.rows.lock().unwrap().values_mut() {
            if row.expires.is_some() {
                row.expires = Some(past);
            }
        }
    }

    fn valid(row: &Row) -> bool {
        row.expires.is_some_and(|e| e > SystemTime::now())
    }
}

#[async_trait]
impl RecipientRepo for MemoryRecipients {
    async fn consent(&self, email: &str) -> Result<Consent> {
        let rows = self.rows.lock().unwrap();
        Ok(match rows.get(&email.to_lowercase()) {
            Some(r) if r.confirmed => Consent::Confirmed,
            Some(r) if Self::valid(r) => Consent::LinkOut,
            _ => Consent::Unasked,
        })
    }

    async fn issue_link(&self, email: &str, digest: &str, valid_for: Duration) -> Result<bool> {
        let mut rows = self.rows.lock().unwrap();
        let row = rows.entry(email.to_lowercase()).or_default();
        if row.confirmed || Self::valid(row) {
            return Ok(false);
        }
        row.digest = Some(digest.to_owned());
        row.expires = Some(SystemTime::now() + valid_for);
        Ok(true)
    }

    async fn withdraw_link(&self, email: &str, digest: &str) -> Result<()> {
        let mut rows = self.rows.lock().unwrap();
        if let Some(row) = rows.get_mut(&email.to_lowercase()) {
            if !row.confirmed && row.digest.as_deref() == Some(digest) {
                row.digest = None;
                row.expires = None;
            }
        }
        Ok(())
    }

    async fn redeem(&self, digest: &str) -> Result<Redeemed> {
        let mut rows = self.rows.lock().unwrap();
        let Some((email, row)) = rows
            .iter_mut()
            .find(|(_, r)| r.digest.as_deref() == Some(digest))
        else {
            return Ok(Redeemed::Unknown);
        };
        Ok(if row.confirmed {
            Redeemed::AlreadyUsed
        } else if Self::valid(row) {
            row.confirmed = true;
            Redeemed::Confirmed {
                email: email.clone(),
            }
        } else {
            Redeemed::Expired
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_only_their_digest_is_kept() {
        let a = new_token();
        let b = new_token();
        assert!(is_token(&a) && is_token(&b), "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(token_digest(&a).len(), 64);
        assert_ne!(token_digest(&a), a);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert!(!is_token(&a.to_uppercase()));
        assert!(!is_token(&a[1..]));
        assert!(!is_token(&format!("{}g", &a[1..])));
    }

    #[tokio::test]
    async fn a_link_confirms_once_and_not_after_it_expired() {
        let repo = MemoryRecipients::new();
        let hour = Duration::from_secs(3600);
        assert_eq!(
            repo.consent("A@example.com").await.unwrap(),
            Consent::Unasked
        );
        assert!(repo.issue_link("a@example.com", "d1", hour).await.unwrap());
        // One link at a time: a second result for the address sends no second mail.
        assert!(!repo.issue_link("A@example.com", "d2", hour).await.unwrap());
        assert_eq!(
            repo.consent("a@example.com").await.unwrap(),
            Consent::LinkOut
        );
        assert_eq!(repo.redeem("d2").await.unwrap(), Redeemed::Unknown);
        assert_eq!(
            repo.redeem("d1").await.unwrap(),
            Redeemed::Confirmed {
                email: "a@example.com".into()
            }
        );
        assert_eq!(repo.redeem("d1").await.unwrap(), Redeemed::AlreadyUsed);
        assert_eq!(
            repo.consent("a@example.com").await.unwrap(),
            Consent::Confirmed
        );

        assert!(repo.issue_link("b@example.com", "e1", hour).await.unwrap());
        repo.expire_links();
        assert_eq!(repo.redeem("e1").await.unwrap(), Redeemed::Expired);
        assert_eq!(
            repo.consent("b@example.com").await.unwrap(),
            Consent::Unasked
        );
        // An expired link is replaced; the old one is then unknown.
        assert!(repo.issue_link("b@example.com", "e2", hour).await.unwrap());
        assert_eq!(repo.redeem("e1").await.unwrap(), Redeemed::Unknown);
        // A link whose mail failed is taken back.
        repo.withdraw_link("b@example.com", "e2").await.unwrap();
        assert_eq!(
            repo.consent("b@example.com").await.unwrap(),
            Consent::Unasked
        );
    }
}
