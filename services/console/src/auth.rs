//! Credentials: argon2id password hashes, random tokens, sessions and login throttling.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::model::UserRole;

/// argon2id with OWASP's recommended minimum: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    // The constants are valid parameters; `Params::new` only rejects out-of-range values.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// `n` random bytes from the OS.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| "the operating system's random number generator failed".to_owned())?;
    Ok(out)
}

/// 32 random bytes as unpadded base64url: session ids, CSRF tokens, token secrets.
pub fn random_token() -> Result<String, String> {
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>()?))
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}

/// Equality of two secrets that leaks nothing through timing: compares their SHA-256 digests
/// without an early exit (so neither the length nor the first difference shows).
pub fn same(a: &str, b: &str) -> bool {
    let da = ring::digest::digest(&ring::digest::SHA256, a.as_bytes());
    let db = ring::digest::digest(&ring::digest::SHA256, b.as_bytes());
    let diff = da
        .as_ref()
        .iter()
        .zip(db.as_ref())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    diff == 0
}

pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| format!("cannot encode a salt: {e}"))?;
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => argon2().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A hash to verify against when the user does not exist, so that a login for an unknown name
/// takes as long as one for a known name.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_password("not a password anyone has").unwrap_or_else(|_| String::from("$argon2id$"))
    })
}

/// A logged-in browser session (kept in memory: a restart logs everyone out).
#[derive(Clone)]
pub struct Session {
    pub user: String,
    pub role: UserRole,
    /// The synchronizer token that form posts and cookie-authenticated API calls must carry.
    pub csrf: String,
    pub expires: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Sessions by SHA-256 of their cookie value (the cookie itself is never stored).
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

/// Most sessions kept at once; the oldest-expiring are dropped beyond it.
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// A new session for `user`; returns the cookie value and the session.
    pub fn create(
        &self,
        user: &str,
        role: UserRole,
        ttl: Duration,
    ) -> Result<(String, Session), String> {
        let cookie = random_token()?;
        let session = Session {
            user: user.to_owned(),
            role,
            csrf: random_token()?,
            expires: Instant::now() + ttl,
        };
        let mut map = self
            .by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(sha256_hex(cookie.as_bytes()), session.clone());
        Ok((cookie, session))
    }

    pub fn get(&self, cookie: &str) -> Option<Session> {
        let map = self
            .by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(&sha256_hex(cookie.as_bytes()))
            .filter(|s| s.expires > Instant::now())
            .cloned()
    }

    pub fn remove(&self, cookie: &str) {
        let mut map = self
            .by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.remove(&sha256_hex(cookie.as_bytes()));
    }

    /// Ends every session of `user` (disabled, or role changed).
    pub fn remove_user(&self, user: &str) {
        let mut map = self
            .by_hash
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|_, s| s.user != user);
    }
}

/// Failures allowed per name before backing off.
pub const FREE_FAILURES: u32 = 5;
/// Failures allowed per client address before backing off.
pub const FREE_FAILURES_PER_ADDRESS: u32 = 25;
/// Longest wait imposed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Exponential back-off after repeated failures of a secret (password, setup code, recovery
/// key), by subject (user name, or `setup`/`unlock`) and by client address.
#[derive(Default)]
pub struct Throttle {
    subjects: Mutex<HashMap<String, Failures>>,
    addresses: Mutex<HashMap<IpAddr, Failures>>,
}

fn wait(f: Option<&Failures>, free: u32, now: Instant) -> Option<Duration> {
    let f = f?;
    if f.count < free {
        return None;
    }
    let exp = (f.count - free).min(16);
    let backoff = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
    let until = f.last + backoff;
    (until > now).then(|| until - now)
}

impl Throttle {
    /// How long the caller must wait before trying `subject` from `addr` again, if at all.
    pub fn check(&self, subject: &str, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let s = self
            .subjects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let a = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let by_subject = wait(s.get(subject), FREE_FAILURES, now);
        let by_address = wait(a.get(&addr), FREE_FAILURES_PER_ADDRESS, now);
        by_subject.max(by_address)
    }

    pub fn failed(&self, subject: &str, addr: IpAddr) {
        let now = Instant::now();
        let bump = |f: &mut Failures| {
            f.count = f.count.saturating_add(1);
            f.last = now;
        };
        let mut s = self
            .subjects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if s.len() > 100_000 {
            s.clear();
        }
        bump(s.entry(subject.to_owned()).or_insert(Failures {
            count: 0,
            last: now,
        }));
        drop(s);
        let mut a = self
            .addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if a.len() > 100_000 {
            a.clear();
        }
        bump(a.entry(addr).or_insert(Failures {
            count: 0,
            last: now,
        }));
    }

    pub fn succeeded(&self, subject: &str, addr: IpAddr) {
        self.subjects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(subject);
        self.addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse battery").unwrap_or_default();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterY", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn throttle_backs_off_after_free_failures() {
        let t = Throttle::default();
        let ip: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..FREE_FAILURES {
            assert_eq!(t.check("bob", ip), None);
            t.failed("bob", ip);
        }
        let w = t.check("bob", ip);
        assert!(w.is_some_and(|w| w <= Duration::from_secs(1)), "{w:?}");
        assert_eq!(t.check("alice", ip), None, "another name is not throttled");
        t.succeeded("bob", ip);
        assert_eq!(t.check("bob", ip), None);
    }

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let (cookie, session) = s
            .create("ann", UserRole::Auditor, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.get(&cookie).map(|x| x.csrf), Some(session.csrf));
        s.remove_user("ann");
        assert!(s.get(&cookie).is_none());
        let (short, _) = s
            .create("ann", UserRole::Auditor, Duration::ZERO)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(s.get(&short).is_none(), "expired");
    }
}
