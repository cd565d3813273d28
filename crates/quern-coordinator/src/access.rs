//! Who calls, and what they may do: users who logged in (a signed JWT,
//! HS256, 30 minutes by default) or whoever holds the cluster token (an
//! admin, and the only caller workers may be). Passwords are kept as
//! argon2 hashes; repeated failed logins for a name are refused for a
//! while. A token carries a stamp of the password it was issued under, so
//! changing a password ends every session signed before. The gRPC service and the REST API both ask [`Access`], so a user
//! is the same user, with the same rights, on either.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::handle::CoordinatorHandle;
use crate::state::Role;

/// Failed logins for one name, in a row, that lock it out for a while.
const FAILURES_BEFORE_LOCKOUT: u32 = 5;
/// How long a locked-out name waits.
const LOCKOUT: Duration = Duration::from_secs(60);
/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// Why a caller is refused, or a login fails.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No token was presented.
    #[error("missing token: send Authorization: Bearer <token> (log in for one, or use the cluster token)")]
    Missing,
    /// The authorization is not `Bearer <token>`.
    #[error("expected Authorization: Bearer <token>")]
    Malformed,
    /// The token expired.
    #[error("the token has expired: log in again")]
    Expired,
    /// The token is forged, or signed with another key.
    #[error("the token is not valid")]
    Invalid,
    /// The token's user was removed.
    #[error("user {0} no longer exists")]
    Removed(String),
    /// The token's user changed password after it was issued.
    #[error("the password of {0} was changed after this token was issued: log in again")]
    Revoked(String),
    /// A login's name or password is wrong.
    #[error("wrong username or password")]
    WrongPassword,
    /// A name failed to log in too often.
    #[error("too many failed logins for {name}: try again in {seconds} s")]
    LockedOut {
        /// The name.
        name: String,
        /// How long until it may try again.
        seconds: u64,
    },
    /// The caller may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// A token could not be signed, or a password checked.
    #[error("{0}")]
    Internal(String),
    /// The users could not be read.
    #[error(transparent)]
    State(#[from] crate::Error),
}

/// Who made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The cluster token's holder: an admin, with no name (and the only
    /// caller a worker may be).
    ClusterToken,
    /// A user who logged in.
    User {
        /// Their name.
        name: String,
        /// Their role.
        role: Role,
        /// The stamp of the password the token was issued under
        /// ([`password_stamp`]): a token whose stamp no longer matches the
        /// user's password is refused.
        stamp: String,
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

    /// Whether the caller may see (and kill) a job owned by `owner`.
    pub fn may_see(&self, owner: &str) -> bool {
        self.is_admin() || self.name() == owner
    }
}

/// A token's claims.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: String,
    /// The password's stamp when the token was signed.
    pwd: String,
    iat: u64,
    exp: u64,
}

/// A signed token.
#[derive(Debug, Clone)]
pub struct SignedToken {
    /// The JWT.
    pub token: String,
    /// When it expires (ms since the epoch).
    pub expires_at_ms: u64,
    /// The role it carries.
    pub role: Role,
}

/// Who may call, and the tokens the coordinator signs.
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

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Access {
    /// Callers that present `cluster_token` (admins), or a token signed
    /// with `signing_key` that has not expired; tokens live `lifetime`.
    /// Refuses an empty cluster token.
    pub fn new(cluster_token: &str, signing_key: &[u8], lifetime: Duration) -> Result<Access, quern_proto::TokenError> {
        Ok(Access {
            cluster: quern_proto::TokenCheck::new(cluster_token)?,
            encoding: EncodingKey::from_secret(signing_key),
            decoding: DecodingKey::from_secret(signing_key),
            lifetime,
            failures: Mutex::new(HashMap::new()),
        })
    }

    /// Signs a token for `name` with `role`, valid while their password
    /// hash stays `password_hash`.
    pub fn sign(&self, name: &str, role: Role, password_hash: &str) -> Result<SignedToken, AuthError> {
        let iat = now_secs();
        let exp = iat + self.lifetime.as_secs().max(1);
        let claims = Claims {
            sub: name.to_owned(),
            role: role.as_str().to_owned(),
            pwd: password_stamp(password_hash),
            iat,
            exp,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AuthError::Internal(format!("signing a token: {e}")))?;
        Ok(SignedToken { token, expires_at_ms: exp * 1000, role })
    }

    /// Who presents this `Authorization` value: the cluster token, or a
    /// valid signed token (and when it expires, in ms since the epoch). A
    /// missing, expired or forged one is refused.
    pub fn caller(&self, authorization: Option<&[u8]>) -> Result<(Caller, Option<u64>), AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        if self.cluster.accepts(value) {
            return Ok((Caller::ClusterToken, None));
        }
        let token =
            std::str::from_utf8(value).ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or(AuthError::Malformed)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        // A token without `pwd` (signed before tokens carried it) does not
        // decode: it is refused as invalid.
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })?;
        let role = Role::parse(&data.claims.role).map_err(|_| AuthError::Invalid)?;
        Ok((Caller::User { name: data.claims.sub, role, stamp: data.claims.pwd }, Some(data.claims.exp * 1000)))
    }

    /// [`Access::caller`], then, for a user's token, the user as stored
    /// now: a removed user's token, or one issued before the user's
    /// password changed, is refused at once, and a changed role applies at
    /// once.
    pub async fn authorize(
        &self,
        handle: &CoordinatorHandle,
        authorization: Option<&[u8]>,
    ) -> Result<(Caller, Option<u64>), AuthError> {
        let (caller, expires) = self.caller(authorization)?;
        self.current(handle, caller).await.map(|caller| (caller, expires))
    }

    /// A caller as the store has it now (see [`Access::authorize`]).
    pub async fn current(&self, handle: &CoordinatorHandle, caller: Caller) -> Result<Caller, AuthError> {
        match caller {
            Caller::ClusterToken => Ok(Caller::ClusterToken),
            Caller::User { name, stamp, .. } => match handle.user(&name).await? {
                Some(user) if password_stamp(&user.password_hash) == stamp => {
                    Ok(Caller::User { name: user.name, role: user.role, stamp })
                }
                Some(_) => Err(AuthError::Revoked(name)),
                None => Err(AuthError::Removed(name)),
            },
        }
    }

    /// Logs `name` in with `password`: a token, or why not. Five failures
    /// in a row lock the name out for a minute; an unknown name fails the
    /// same way, after as much work, as a wrong password.
    pub async fn login(
        &self,
        handle: &CoordinatorHandle,
        name: &str,
        password: &str,
    ) -> Result<SignedToken, AuthError> {
        self.check_lockout(name)?;
        let user = handle.user(name).await?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_owned();
        // Hashing takes tens of milliseconds of CPU: off the async threads.
        let matches = tokio::task::spawn_blocking(move || match hash {
            Some(h) => verify_password(&password, &h),
            None => {
                let _ = hash_password(&password);
                false
            }
        })
        .await
        .map_err(|e| AuthError::Internal(format!("checking the password: {e}")))?;
        self.record_login(name, matches);
        match (matches, user) {
            (true, Some(user)) => self.sign(&user.name, user.role, &user.password_hash),
            _ => Err(AuthError::WrongPassword),
        }
    }

    fn check_lockout(&self, name: &str) -> Result<(), AuthError> {
        let failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match failures.get(name) {
            Some(&(n, last)) if n >= FAILURES_BEFORE_LOCKOUT && last.elapsed() < LOCKOUT => {
                Err(AuthError::LockedOut { name: name.to_owned(), seconds: (LOCKOUT - last.elapsed()).as_secs() + 1 })
            }
            _ => Ok(()),
        }
    }

    fn record_login(&self, name: &str, succeeded: bool) {
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

/// A password's stamp, for tokens: the first 16 bytes of the SHA-256 of
/// its stored hash, in hex. Every password change stores a new hash (a new
/// salt), and so a new stamp; the stamp tells nothing of the password
/// without the hash.
pub fn password_stamp(password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(password_hash.as_bytes())[..16].iter().map(|b| format!("{b:02x}")).collect()
}

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

/// Refuses a user name that is not 1 to 64 letters, digits, '.', '_' or '-'.
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_alphanumeric() || "._-".contains(c)) {
        return Err(format!("user name {name:?}: use 1 to 64 letters, digits, '.', '_' or '-'"));
    }
    Ok(())
}

/// Refuses a password shorter than [`MIN_PASSWORD_CHARS`].
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("a password needs at least {MIN_PASSWORD_CHARS} characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"a test signing key of 32 bytes..";

    #[test]
    fn tokens_name_their_user_and_forged_or_expired_ones_are_refused() {
        let access = Access::new("cluster", KEY, Duration::from_secs(60)).expect("access");
        let signed = access.sign("ann", Role::User, "$argon2id$stored").expect("sign");
        let bearer = format!("Bearer {}", signed.token);
        let (caller, expires) = access.caller(Some(bearer.as_bytes())).expect("valid");
        assert_eq!(
            caller,
            Caller::User { name: "ann".into(), role: Role::User, stamp: password_stamp("$argon2id$stored") }
        );
        assert_eq!(expires, Some(signed.expires_at_ms));
        assert_eq!(access.caller(Some(b"Bearer cluster")).expect("cluster").0, Caller::ClusterToken);
        let other = Access::new("cluster", b"another key of thirty-two bytes!", Duration::from_secs(60)).expect("a");
        assert!(matches!(other.caller(Some(bearer.as_bytes())), Err(AuthError::Invalid)));
        assert!(matches!(access.caller(None), Err(AuthError::Missing)));
        assert!(matches!(access.caller(Some(b"Basic abc")), Err(AuthError::Malformed)));
        let claims = Claims { sub: "ann".into(), role: "user".into(), pwd: String::new(), iat: 1, exp: 2 };
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(KEY))
            .expect("encode");
        assert!(matches!(access.caller(Some(format!("Bearer {old}").as_bytes())), Err(AuthError::Expired)));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_user_name("ann.b-c_1").is_ok());
        for bad in ["", "a b", "ann/x", &"x".repeat(65)] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_password("12345678").is_ok());
        assert_eq!(check_password("1234567").expect_err("short"), "a password needs at least 8 characters");
        let hash = hash_password("correct horse").expect("hash");
        assert!(verify_password("correct horse", &hash) && !verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
        let again = hash_password("correct horse").expect("hash");
        assert_eq!(password_stamp(&hash), password_stamp(&hash));
        assert_ne!(password_stamp(&hash), password_stamp(&again), "a new salt, a new stamp");
        assert_eq!(password_stamp(&hash).len(), 32);
    }
}
