//! Who calls: users who logged in (a signed JWT, HS256, 30 minutes by
//! default), or whoever holds the cluster token (an admin). Passwords are
//! kept as argon2 hashes; repeated failed logins for a name are refused for
//! a while (429).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quern_coordinator::state::Role;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// Failed logins for one name, in a row, that lock it out for a while.
const FAILURES_BEFORE_LOCKOUT: u32 = 5;
/// How long a locked-out name waits.
const LOCKOUT: Duration = Duration::from_secs(60);

/// Hashes a password for storage (argon2id, a random salt; a PHC string).
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches a stored hash (false for a hash that does not
/// parse).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// A new random signing key (32 bytes).
pub fn new_signing_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    OsRng.fill_bytes(&mut key);
    key
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The cluster token's holder: an admin, with no name.
    ClusterToken,
    /// A user who logged in.
    User {
        /// Their name.
        name: String,
        /// Their role.
        role: Role,
    },
}

impl Caller {
    /// Whether the caller sees and steers everything.
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::ClusterToken | Caller::User { role: Role::Admin, .. })
    }

    /// The name jobs it submits are owned by ("" for the cluster token).
    pub fn name(&self) -> &str {
        match self {
            Caller::ClusterToken => "",
            Caller::User { name, .. } => name,
        }
    }

    /// Whether the caller may see a job owned by `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.is_admin() || self.name() == owner
    }
}

/// A token's claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    iat: u64,
    exp: u64,
}

/// Who may call the API, and the tokens it signs.
pub struct Access {
    cluster: quern_proto::TokenCheck,
    encoding: EncodingKey,
    decoding: DecodingKey,
    lifetime: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access").field("lifetime", &self.lifetime).finish_non_exhaustive()
    }
}

/// A signed token.
#[derive(Debug, Clone)]
pub struct SignedToken {
    /// The JWT.
    pub token: String,
    /// When it expires (ms since the epoch).
    pub expires_at_ms: u64,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Access {
    /// Callers that present `cluster_token` (admins), or a token signed
    /// with `signing_key` that has not expired; tokens live `lifetime`.
    pub fn new(cluster_token: &str, signing_key: &[u8], lifetime: Duration) -> Result<Access, quern_proto::TokenError> {
        Ok(Access {
            cluster: quern_proto::TokenCheck::new(cluster_token)?,
            encoding: EncodingKey::from_secret(signing_key),
            decoding: DecodingKey::from_secret(signing_key),
            lifetime,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Signs a token for `name` with `role`.
    pub fn sign(&self, name: &str, role: Role) -> Result<SignedToken, ApiError> {
        let iat = now_secs();
        let exp = iat + self.lifetime.as_secs().max(1);
        let claims = Claims { sub: name.to_owned(), role: role.as_str().to_owned(), iat, exp };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))?;
        Ok(SignedToken { token, expires_at_ms: exp * 1000 })
    }

    /// Who presents these headers: the cluster token, or a valid signed
    /// token. A missing, expired or forged one is 401.
    pub fn caller(&self, headers: &HeaderMap) -> Result<(Caller, Option<u64>), ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthorized(
                "missing token: send Authorization: Bearer <token> (POST /api/v1/auth/login gives one)",
            ));
        };
        if self.cluster.accepts(value.as_bytes()) {
            return Ok((Caller::ClusterToken, None));
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("expected Authorization: Bearer <token>"))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => ApiError::unauthorized("the token has expired: log in again"),
                _ => ApiError::unauthorized("the token is not valid"),
            }
        })?;
        let role = Role::parse(&data.claims.role).map_err(|_| ApiError::unauthorized("the token is not valid"))?;
        Ok((Caller::User { name: data.claims.sub, role }, Some(data.claims.exp * 1000)))
    }

    /// Refuses a login for `name` while it is locked out after repeated
    /// failures.
    pub(crate) fn check_lockout(&self, name: &str) -> Result<(), ApiError> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(name) {
            Some(&(n, last)) if n >= FAILURES_BEFORE_LOCKOUT && last.elapsed() < LOCKOUT => {
                Err(ApiError::too_many(format!(
                    "too many failed logins for {name}: try again in {} s",
                    (LOCKOUT - last.elapsed()).as_secs() + 1
                )))
            }
            _ => Ok(()),
        }
    }

    /// Records a login's result for `name`.
    pub(crate) fn record_login(&self, name: &str, succeeded: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if succeeded {
            failures.remove(name);
            return;
        }
        let entry = failures.entry(name.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOCKOUT {
            entry.0 = 0;
        }
        entry.0 += 1;
        entry.1 = Instant::now();
    }
}
