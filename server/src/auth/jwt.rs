//! Access tokens: HS256 JWTs with `sub` (the account id), `name`, `sid`
//! (the session), `auth_time` (when that session signed in), `iat` and
//! `exp`. A token never outlives its session's maximum length: `exp` is
//! at most `auth_time` plus that length, however often it is refreshed.
//!
//! The algorithm is pinned: a header naming anything but HS256 (`none`,
//! `RS256` signed with our secret read as a public key, …) is refused
//! before the signature is looked at. `exp` is required and must be a
//! number; jsonwebtoken >= 10.3 also refuses a string-typed `exp`, which
//! older versions silently skipped.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Clock skew tolerated between the instance that issued a token and the
/// one checking it. jsonwebtoken's default is 60 s; a minute of extra life
/// for every stolen token is more than skew needs.
pub const LEEWAY_SECS: u64 = 5;
/// Shortest secret accepted from configuration: HS256 wants at least as
/// many bytes as its output.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest token we bother to parse. Ours are about 200 bytes.
const MAX_TOKEN_BYTES: usize = 4096;
/// Name of the generated secret in the data directory.
const SECRET_FILE: &str = "jwt-secret";

/// What our tokens carry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The account id, as a string (JWT subjects are strings).
    pub sub: String,
    /// The username when the token was issued, for display only: identity
    /// is checked against the database by `sub`.
    pub name: String,
    /// The session the token belongs to (see `store::SessionStore`).
    /// Tokens from before sessions existed have none and are refused.
    #[serde(default)]
    pub sid: String,
    /// When the session signed in with the password (Unix seconds, as in
    /// OpenID Connect): refreshing keeps it.
    #[serde(default)]
    pub auth_time: i64,
    pub iat: i64,
    pub exp: i64,
}

impl Claims {
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

/// Why a token was refused. The variants' texts are what clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

/// A freshly issued token.
pub struct Issued {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub expires_in: u64,
}

/// Signing and checking keys, and how long tokens and sessions live.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
    max_session: Duration,
}

/// The session a token is issued for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRef {
    pub id: String,
    /// When it signed in (Unix seconds).
    pub started_at: i64,
}

impl Keys {
    pub fn new(secret: &[u8], ttl: Duration, max_session: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        // We never issue `nbf`, but a token that carries one must honour it.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Keys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
            max_session,
        }
    }

    /// How long a session may last from its sign-in.
    pub fn max_session(&self) -> Duration {
        self.max_session
    }

    /// When a session that signed in at `started_at` ends (Unix seconds).
    pub fn session_end(&self, started_at: i64) -> i64 {
        started_at.saturating_add(self.max_session.as_secs() as i64)
    }

    /// Signs a token for an account's session: good for the token
    /// lifetime, or until the session's maximum length, whichever is
    /// sooner. `None` when the session has already reached it.
    pub fn issue(
        &self,
        user_id: i64,
        username: &str,
        session: &SessionRef,
    ) -> Result<Option<Issued>, jsonwebtoken::errors::Error> {
        let now = Utc::now();
        let exp = (now.timestamp() + self.ttl.as_secs().max(1) as i64)
            .min(self.session_end(session.started_at));
        if exp <= now.timestamp() {
            return Ok(None);
        }
        let ttl = (exp - now.timestamp()) as u64;
        let claims = Claims {
            sub: user_id.to_string(),
            name: username.to_owned(),
            sid: session.id.clone(),
            auth_time: session.started_at,
            iat: now.timestamp(),
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(Some(Issued {
            token,
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or(now),
            expires_in: ttl,
        }))
    }

    /// Checks signature, algorithm and expiry, and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) if matches!(e.kind(), ErrorKind::ExpiredSignature) => Err(TokenError::Expired),
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

/// Why no secret could be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the configured JWT secret is shorter than {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("the secret file {path} is unreadable or too short: {reason}")]
    BadFile { path: String, reason: String },
    #[error("could not create the secret file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the system random source failed: {0}")]
    Random(String),
}

/// The signing secret: the configured one, or the one in the data
/// directory, created with fresh random bytes on first start so tokens
/// survive restarts. There is no built-in default: a secret in the source
/// would be everybody's secret.
pub fn load_secret(configured: Option<&str>, data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    if let Some(secret) = configured {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort);
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let path = data_dir.join(SECRET_FILE);
    let shown = path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = text.trim();
            if text.len() < MIN_SECRET_BYTES * 2 {
                return Err(SecretError::BadFile {
                    path: shown,
                    reason: "fewer than 64 hex digits".into(),
                });
            }
            return Ok(text.as_bytes().to_vec());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(SecretError::BadFile {
                path: shown,
                reason: e.to_string(),
            })
        }
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| SecretError::Random(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, &hex).map_err(|source| SecretError::Write {
        path: shown.clone(),
        source,
    })?;
    tracing::info!(path = %shown, "generated a new JWT signing secret");
    Ok(hex.into_bytes())
}

/// Writes a file only its owner can read, failing if it already exists
/// (two instances starting at once must not overwrite each other's secret).
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn keys() -> Keys {
        Keys::new(SECRET, Duration::from_secs(60), Duration::from_secs(3600))
    }

    fn session(started_at: i64) -> SessionRef {
        SessionRef {
            id: "s1".into(),
            started_at,
        }
    }

    fn issue(k: &Keys, user_id: i64, name: &str) -> Issued {
        k.issue(user_id, name, &session(Utc::now().timestamp()))
            .unwrap()
            .unwrap()
    }

    #[test]
    fn tokens_never_outlive_their_session() {
        let k = keys();
        let now = Utc::now().timestamp();
        // Signed in 59m30s ago: the token gets the last 30 s, not 60.
        let late = k.issue(1, "ann", &session(now - 3570)).unwrap().unwrap();
        assert!(late.expires_in <= 30, "{}", late.expires_in);
        let c = k.verify(&late.token).unwrap();
        assert_eq!((c.sid.as_str(), c.auth_time), ("s1", now - 3570));
        // Past it: nothing is issued.
        assert!(k.issue(1, "ann", &session(now - 3600)).unwrap().is_none());
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// A token with an arbitrary header and claims, signed with `secret`.
    fn forge(header: serde_json::Value, claims: serde_json::Value, secret: &[u8]) -> String {
        use hmac::Mac;
        let signing_input = format!("{}.{}", b64(&header), b64(&claims));
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(signing_input.as_bytes());
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    fn claims(exp: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"sub": "1", "name": "ann", "iat": Utc::now().timestamp(), "exp": exp})
    }

    fn hs256() -> serde_json::Value {
        serde_json::json!({"alg": "HS256", "typ": "JWT"})
    }

    #[test]
    fn issued_tokens_verify() {
        let k = keys();
        let issued = issue(&k, 7, "ann");
        let c = k.verify(&issued.token).unwrap();
        assert_eq!((c.sub.as_str(), c.name.as_str()), ("7", "ann"));
        assert_eq!(c.expires_at(), issued.expires_at);
        assert_eq!(issued.expires_in, 60);
    }

    #[test]
    fn forged_and_odd_tokens_are_refused() {
        let k = keys();
        let later = Utc::now().timestamp() + 60;
        // The forge itself is right: a well-formed token passes.
        assert!(k
            .verify(&forge(hs256(), claims(later.into()), SECRET))
            .is_ok());
        // Another secret.
        let other = forge(
            hs256(),
            claims(later.into()),
            b"another-secret-another-secret-xx",
        );
        assert_eq!(k.verify(&other), Err(TokenError::Invalid));
        // Tampered payload, original signature.
        let good = issue(&k, 1, "ann").token;
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = b64(&serde_json::json!({"sub": "2", "name": "bob", "iat": 0, "exp": later}));
        parts[1] = &evil;
        assert_eq!(k.verify(&parts.join(".")), Err(TokenError::Invalid));
        // alg=none in every spelling, with and without a signature.
        for alg in ["none", "None", "NONE"] {
            let header = b64(&serde_json::json!({"alg": alg, "typ": "JWT"}));
            let body = b64(&claims(later.into()));
            assert_eq!(
                k.verify(&format!("{header}.{body}.")),
                Err(TokenError::Invalid),
                "{alg}"
            );
            assert_eq!(
                k.verify(&format!("{header}.{body}")),
                Err(TokenError::Invalid),
                "{alg}"
            );
        }
        // Algorithm confusion: an RS256 or HS512 header, HMAC'd with our secret.
        for alg in ["RS256", "HS512", "ES256"] {
            let t = forge(
                serde_json::json!({"alg": alg, "typ": "JWT"}),
                claims(later.into()),
                SECRET,
            );
            assert_eq!(k.verify(&t), Err(TokenError::Invalid), "{alg}");
        }
        // Garbage.
        for junk in ["", "x", "a.b.c", "....", &"a".repeat(5000)] {
            assert_eq!(k.verify(junk), Err(TokenError::Invalid), "{junk}");
        }
    }

    #[test]
    fn expiry_rules() {
        let k = keys();
        let now = Utc::now().timestamp();
        // Past the leeway: expired.
        let old = forge(hs256(), claims((now - 60).into()), SECRET);
        assert_eq!(k.verify(&old), Err(TokenError::Expired));
        // Within the leeway: still accepted.
        let recent = forge(hs256(), claims((now - 2).into()), SECRET);
        assert!(k.verify(&recent).is_ok());
        // No exp at all.
        let no_exp = serde_json::json!({"sub": "1", "name": "ann", "iat": now});
        assert_eq!(
            k.verify(&forge(hs256(), no_exp, SECRET)),
            Err(TokenError::Invalid)
        );
        // A string-typed exp, far past or far future: never accepted.
        for exp in [(now - 3600).to_string(), (now + 3600).to_string()] {
            let t = forge(hs256(), claims(exp.clone().into()), SECRET);
            assert_eq!(k.verify(&t), Err(TokenError::Invalid), "exp {exp:?}");
        }
        // nbf in the future, as a number or as a string: not yet valid.
        for nbf in [
            serde_json::json!(now + 3600),
            serde_json::json!((now + 3600).to_string()),
        ] {
            let mut c = claims((now + 60).into());
            c["nbf"] = nbf.clone();
            assert_eq!(
                k.verify(&forge(hs256(), c, SECRET)),
                Err(TokenError::Invalid),
                "nbf {nbf}"
            );
        }
    }

    #[test]
    fn secrets_are_configured_or_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            load_secret(Some("short"), dir.path()),
            Err(SecretError::TooShort)
        ));
        let configured = "x".repeat(32);
        assert_eq!(
            load_secret(Some(&configured), dir.path()).unwrap(),
            configured.as_bytes()
        );
        let first = load_secret(None, dir.path()).unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(
            load_secret(None, dir.path()).unwrap(),
            first,
            "kept across restarts"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = tempfile::tempdir().unwrap();
        assert_ne!(
            load_secret(None, other.path()).unwrap(),
            first,
            "random per data directory"
        );
    }
}
