//! Password hashing with argon2id (OWASP's first choice; the crate's
//! defaults are OWASP's minimum: 19 MiB, 2 passes, 1 lane).
//!
//! Hashing is deliberately expensive, so it runs on the blocking pool and
//! at most a few at a time: a burst of logins queues instead of taking
//! every core and tens of megabytes each. The queue is bounded in time: a
//! request that cannot start hashing within [`QUEUE_WAIT`] is answered
//! 503, so a flood of logins cannot build a backlog that every later
//! request waits behind.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::Semaphore;

/// Hashes running at once.
const CONCURRENT_HASHES: usize = 4;

/// Longest a request waits for its turn to hash.
pub const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password hashing was interrupted")]
    Interrupted,
    /// Too many hashes waiting; the request may be retried.
    #[error("the server is busy checking passwords; retry")]
    Busy,
}

/// Hashes and verifies passwords.
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the
    /// username does not exist, so a wrong username takes as long as a
    /// wrong password and response times do not reveal who has an account.
    decoy: String,
}

impl Hasher {
    pub fn new() -> Result<Self, HashError> {
        let mut random = [0u8; 16];
        getrandom::fill(&mut random).map_err(|e| HashError::Hash(e.to_string()))?;
        let decoy = hash_now(&format!("{random:?}"))?;
        Ok(Hasher {
            permits: Arc::new(Semaphore::new(CONCURRENT_HASHES)),
            decoy,
        })
    }

    /// Waits for a hashing slot, at most [`QUEUE_WAIT`].
    async fn turn(&self) -> Result<tokio::sync::SemaphorePermit<'_>, HashError> {
        match tokio::time::timeout(QUEUE_WAIT, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(HashError::Interrupted),
            Err(_) => Err(HashError::Busy),
        }
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) to store.
    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self.turn().await?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|_| HashError::Interrupted)?
    }

    /// Whether `password` matches `stored`; with no stored hash (no such
    /// user) it checks against the decoy and answers false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> Result<bool, HashError> {
        let _permit = self.turn().await?;
        let exists = stored.is_some();
        let stored = stored.unwrap_or(&self.decoy).to_owned();
        let password = password.to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&stored).is_ok_and(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
        })
        .await
        .unwrap_or(false);
        Ok(exists && matched)
    }
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_salted_and_verify() {
        let h = Hasher::new().unwrap();
        let a = h.hash("correct horse").await.unwrap();
        let b = h.hash("correct horse").await.unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "every hash has its own salt");
        assert!(!a.contains("correct horse"));
        assert!(h.verify("correct horse", Some(&a)).await.unwrap());
        assert!(!h.verify("correct hors", Some(&a)).await.unwrap());
        assert!(!h
            .verify("correct horse", Some("not a phc string"))
            .await
            .unwrap());
        assert!(
            !h.verify("correct horse", None).await.unwrap(),
            "no user never verifies"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_cannot_get_a_turn_is_told_busy() {
        let h = Hasher::new().unwrap();
        let _all: Vec<_> = (0..CONCURRENT_HASHES)
            .map(|_| h.permits.try_acquire().unwrap())
            .collect();
        let waited = h.verify("correct horse", None).await;
        assert!(matches!(waited, Err(HashError::Busy)), "{waited:?}");
    }
}
