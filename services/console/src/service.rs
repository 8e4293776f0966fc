//! The operations behind every route. The JSON API and the HTML pages call these and nothing
//! else, so both enforce the same rules and write the same audit records.

use std::net::IpAddr;
use std::sync::Arc;

use hearth_attest::evidence::{EVIDENCE_FORMAT, Evidence, TpmDescription};
use hearth_store::{KeySource, RecoveryKey, StoreState};
use hearth_tpm::PcrValues;
use serde::Serialize;

use crate::app::{Actor, App, ServiceError};
use crate::auth::{
    Session, dummy_hash, hash_password, random_bytes, random_token, same, sha256_hex,
    verify_password,
};
use crate::model::{
    ApiToken, SETUP, SETUP_KEY, SetupState, TOKENS, USERS, User, UserRole, check_label,
    check_password, check_user_name,
};

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Setup: the one-time claim.

/// Crockford's base32 alphabet: no I, L, O or U to misread.
const CODE_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Upper-cases and drops separators, so `abcd-efgh-jkmn` and `ABCDEFGHJKMN` are one code.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Whether the appliance still waits for its first admin.
pub fn setup_open(app: &App) -> Result<bool, ServiceError> {
    Ok(!app.store.get(&SETUP, SETUP_KEY)?.is_some_and(|s| s.claimed))
}

/// On every start before the claim: a fresh one-time setup code (60 bits, `XXXX-XXXX-XXXX`),
/// whose hash replaces the previous one. `None` once claimed.
pub fn issue_setup_code(app: &App) -> Result<Option<String>, ServiceError> {
    if !setup_open(app)? {
        return Ok(None);
    }
    let bytes = random_bytes::<12>().map_err(ServiceError::internal)?;
    let mut code = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            code.push('-');
        }
        code.push(char::from(CODE_ALPHABET[usize::from(b & 31)]));
    }
    app.audited(&Actor::system(), "setup.issue-code", "", || {
        app.store.put(
            &SETUP,
            SETUP_KEY,
            &SetupState {
                claimed: false,
                code_sha256: sha256_hex(normalize_code(&code).as_bytes()),
            },
        )?;
        Ok(())
    })?;
    Ok(Some(code))
}

fn throttled(app: &App, subject: &str, addr: IpAddr) -> Result<(), ServiceError> {
    match app.throttle.check(subject, addr) {
        Some(wait) => Err(ServiceError::too_many(wait)),
        None => Ok(()),
    }
}

/// Claims the appliance with the setup code: creates the first admin and logs them in.
pub fn claim(
    app: &App,
    addr: IpAddr,
    code: &str,
    name: &str,
    password: &str,
) -> Result<(String, Session), ServiceError> {
    check_user_name(name).map_err(ServiceError::unprocessable)?;
    check_password(password).map_err(ServiceError::unprocessable)?;
    throttled(app, "setup", addr)?;
    let actor = Actor::anonymous(name);
    app.audited(&actor, "setup.claim", &format!("user:{name}"), || {
        let given = sha256_hex(normalize_code(code).as_bytes());
        let claimed = app.store.write(|w| {
            let state = w.get(&SETUP, SETUP_KEY)?;
            match state {
                Some(s) if !s.claimed && same(&s.code_sha256, &given) => {
                    // Hashed only for the right code: a wrong guess costs no argon2 work.
                    let hash = match hash_password(password) {
                        Ok(h) => h,
                        Err(e) => return Ok(Err(ServiceError::internal(e))),
                    };
                    w.put(
                        &SETUP,
                        SETUP_KEY,
                        &SetupState {
                            claimed: true,
                            code_sha256: String::new(),
                        },
                    )?;
                    w.put(
                        &USERS,
                        name,
                        &User {
                            name: name.to_owned(),
                            role: UserRole::Admin,
                            password_hash: hash,
                            disabled: false,
                            created: now_secs(),
                            created_by: "setup".to_owned(),
                        },
                    )?;
                    Ok(Ok(()))
                }
                Some(s) if s.claimed => Ok(Err(ServiceError::conflict(
                    "this appliance has already been claimed",
                ))),
                _ => Ok(Err(ServiceError::forbidden("wrong setup code"))),
            }
        })?;
        if let Err(e) = claimed {
            if e.status == axum::http::StatusCode::FORBIDDEN {
                app.throttle.failed("setup", addr);
                app.metrics.login_failed();
            }
            return Err(e);
        }
        app.throttle.succeeded("setup", addr);
        app.sessions
            .create(name, UserRole::Admin, app.config.session_ttl)
            .map_err(ServiceError::internal)
    })
}

// ---------------------------------------------------------------------------------------------
// Sessions.

/// Checks a password and opens a session. Unknown names, wrong passwords and disabled users
/// get the same answer, after the same work.
pub fn login(
    app: &App,
    addr: IpAddr,
    name: &str,
    password: &str,
) -> Result<(String, Session), ServiceError> {
    if check_user_name(name).is_err() || password.len() > crate::model::MAX_PASSWORD {
        return Err(ServiceError::unauthorized("wrong user name or password"));
    }
    throttled(app, name, addr)?;
    let actor = Actor::anonymous(name);
    app.audited(&actor, "session.login", &format!("user:{name}"), || {
        let user = app.store.get(&USERS, name)?;
        let ok = match &user {
            Some(u) => verify_password(password, &u.password_hash) && !u.disabled,
            None => {
                let _ = verify_password(password, dummy_hash());
                false
            }
        };
        let Some(user) = user.filter(|_| ok) else {
            app.throttle.failed(name, addr);
            app.metrics.login_failed();
            return Err(ServiceError::unauthorized("wrong user name or password"));
        };
        app.throttle.succeeded(name, addr);
        app.sessions
            .create(&user.name, user.role, app.config.session_ttl)
            .map_err(ServiceError::internal)
    })
}

pub fn logout(app: &App, actor: &Actor, cookie: Option<&str>) -> Result<(), ServiceError> {
    app.audited(
        actor,
        "session.logout",
        &format!("user:{}", actor.name),
        || {
            if let Some(c) = cookie {
                app.sessions.remove(c);
            }
            Ok(())
        },
    )
}

/// Splits an API token `hth_<16 hex id>_<secret>` into id and secret (the secret is base64url
/// and may contain `_`); `None` if it is not of that form.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("hth_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex_id = id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_id && !secret.is_empty()).then_some((id, secret))
}

/// The user and role an `Authorization: Bearer` token acts as, if it is valid.
pub fn authenticate_token(
    app: &App,
    token: &str,
) -> Result<Option<(String, UserRole)>, ServiceError> {
    let Some((id, secret)) = parse_token(token) else {
        return Ok(None);
    };
    let given = sha256_hex(secret.as_bytes());
    {
        let cache = app
            .token_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((hash, user, role)) = cache.get(id) {
            return Ok(same(hash, &given).then(|| (user.clone(), *role)));
        }
    }
    let Some(stored) = app.store.get(&TOKENS, id)? else {
        return Ok(None);
    };
    let Some(user) = app
        .store
        .get(&USERS, &stored.owner)?
        .filter(|u| !u.disabled)
    else {
        return Ok(None);
    };
    let mut cache = app
        .token_cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= 10_000 {
        cache.clear();
    }
    cache.insert(
        id.to_owned(),
        (stored.secret_sha256.clone(), user.name.clone(), user.role),
    );
    Ok(same(&stored.secret_sha256, &given).then_some((user.name, user.role)))
}

// ---------------------------------------------------------------------------------------------
// Users.

/// What the API shows of a user.
#[derive(Debug, Clone, Serialize)]
pub struct UserView {
    pub name: String,
    pub role: UserRole,
    pub disabled: bool,
    pub created: u64,
    pub created_by: String,
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            name: u.name,
            role: u.role,
            disabled: u.disabled,
            created: u.created,
            created_by: u.created_by,
        }
    }
}

pub fn list_users(app: &App) -> Result<Vec<UserView>, ServiceError> {
    Ok(app
        .store
        .list(&USERS)?
        .into_iter()
        .map(|(_, u)| u.into())
        .collect())
}

pub fn create_user(
    app: &App,
    actor: &Actor,
    name: &str,
    password: &str,
    role: UserRole,
) -> Result<UserView, ServiceError> {
    check_user_name(name).map_err(ServiceError::unprocessable)?;
    check_password(password).map_err(ServiceError::unprocessable)?;
    app.audited(
        actor,
        "users.create",
        &format!("user:{name} role:{role}"),
        || {
            let hash = hash_password(password).map_err(ServiceError::internal)?;
            let user = User {
                name: name.to_owned(),
                role,
                password_hash: hash,
                disabled: false,
                created: now_secs(),
                created_by: actor.name.clone(),
            };
            app.store.write(|w| {
                if w.get(&USERS, name)?.is_some() {
                    return Ok(Err(ServiceError::conflict(format!("user {name} exists"))));
                }
                w.put(&USERS, name, &user)?;
                Ok(Ok(()))
            })??;
            Ok(user.into())
        },
    )
}

/// Whether changing `name` would leave no enabled admin.
fn last_admin(users: &[(String, User)], name: &str) -> bool {
    !users
        .iter()
        .any(|(n, u)| n != name && u.role == UserRole::Admin && !u.disabled)
}

pub fn disable_user(app: &App, actor: &Actor, name: &str) -> Result<UserView, ServiceError> {
    check_user_name(name).map_err(ServiceError::not_found)?;
    app.audited(actor, "users.disable", &format!("user:{name}"), || {
        let view = app.store.write(|w| {
            let users = w.list(&USERS)?;
            let Some((_, mut user)) = users.iter().find(|(n, _)| n == name).cloned() else {
                return Ok(Err(ServiceError::not_found(format!("no user {name}"))));
            };
            if user.role == UserRole::Admin && last_admin(&users, name) {
                return Ok(Err(ServiceError::conflict(
                    "cannot disable the last enabled admin",
                )));
            }
            user.disabled = true;
            w.put(&USERS, name, &user)?;
            Ok(Ok(UserView::from(user)))
        })??;
        app.sessions.remove_user(name);
        app.forget_tokens();
        Ok(view)
    })
}

pub fn set_role(
    app: &App,
    actor: &Actor,
    name: &str,
    role: UserRole,
) -> Result<UserView, ServiceError> {
    check_user_name(name).map_err(ServiceError::not_found)?;
    app.audited(
        actor,
        "users.set-role",
        &format!("user:{name} role:{role}"),
        || {
            let view = app.store.write(|w| {
                let users = w.list(&USERS)?;
                let Some((_, mut user)) = users.iter().find(|(n, _)| n == name).cloned() else {
                    return Ok(Err(ServiceError::not_found(format!("no user {name}"))));
                };
                if user.role == UserRole::Admin
                    && role != UserRole::Admin
                    && last_admin(&users, name)
                {
                    return Ok(Err(ServiceError::conflict(
                        "cannot take the admin role from the last enabled admin",
                    )));
                }
                user.role = role;
                w.put(&USERS, name, &user)?;
                Ok(Ok(UserView::from(user)))
            })??;
            // Sessions carry the role they were opened with: end them.
            app.sessions.remove_user(name);
            Ok(view)
        },
    )
}

// ---------------------------------------------------------------------------------------------
// API tokens.

#[derive(Debug, Clone, Serialize)]
pub struct TokenView {
    pub id: String,
    pub owner: String,
    pub label: String,
    pub created: u64,
}

impl From<ApiToken> for TokenView {
    fn from(t: ApiToken) -> Self {
        TokenView {
            id: t.id,
            owner: t.owner,
            label: t.label,
            created: t.created,
        }
    }
}

/// The caller's tokens (an admin sees everyone's).
pub fn list_tokens(app: &App, actor: &Actor) -> Result<Vec<TokenView>, ServiceError> {
    Ok(app
        .store
        .list(&TOKENS)?
        .into_iter()
        .filter(|(_, t)| actor.role == hearth_audit::Role::Admin || t.owner == actor.name)
        .map(|(_, t)| t.into())
        .collect())
}

/// A new token for the caller; the secret is returned once and stored only hashed.
pub fn create_token(
    app: &App,
    actor: &Actor,
    label: &str,
) -> Result<(String, TokenView), ServiceError> {
    check_label(label).map_err(ServiceError::unprocessable)?;
    let id = hex::encode(random_bytes::<8>().map_err(ServiceError::internal)?);
    app.audited(actor, "tokens.create", &format!("token:{id}"), || {
        let secret = random_token().map_err(ServiceError::internal)?;
        let token = ApiToken {
            id: id.clone(),
            owner: actor.name.clone(),
            label: label.to_owned(),
            secret_sha256: sha256_hex(secret.as_bytes()),
            created: now_secs(),
        };
        app.store.put(&TOKENS, &id, &token)?;
        Ok((format!("hth_{id}_{secret}"), token.into()))
    })
}

pub fn revoke_token(app: &App, actor: &Actor, id: &str) -> Result<(), ServiceError> {
    if id.len() != 16 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::not_found(format!("no token {id:?}")));
    }
    app.audited(actor, "tokens.revoke", &format!("token:{id}"), || {
        // Forget before and after the removal commits: a lookup between the two would
        // re-cache the token from the store.
        app.forget_tokens();
        let _forget_after = ForgetTokens(app);
        app.store.write(|w| {
            match w.get(&TOKENS, id)? {
                Some(t) if t.owner == actor.name || actor.role == hearth_audit::Role::Admin => {
                    w.remove(&TOKENS, id)?;
                    Ok(Ok(()))
                }
                // Someone else's token is reported as absent: ids are not secrets, but
                // whether they exist is nobody else's business.
                _ => Ok(Err(ServiceError::not_found(format!("no token {id}")))),
            }
        })?
    })
}

/// Forgets cached token validations when dropped.
struct ForgetTokens<'a>(&'a App);

impl Drop for ForgetTokens<'_> {
    fn drop(&mut self) {
        self.0.forget_tokens();
    }
}

// ---------------------------------------------------------------------------------------------
// Status.

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub version: &'static str,
    pub profile: String,
    pub uptime_s: u64,
    pub tpm: TpmStatus,
    pub store: StoreStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcrs: Option<PcrValues>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcrs_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditStatus>,
    pub tls: TlsStatus,
    pub compute: Vec<Backend>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TpmStatus {
    /// `software` (swtpm: no hardware root of trust) or `hardware`.
    pub kind: &'static str,
    pub manufacturer: String,
    pub vendor: String,
    pub firmware_version: String,
    pub transport: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StoreStatus {
    /// `open` (unsealed by the TPM) or `locked`.
    pub state: &'static str,
    pub sealed_to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed_pcrs: Vec<u8>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditStatus {
    pub records: u64,
    pub head: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsStatus {
    pub cert_sha256: String,
    pub spki_sha256: String,
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Backend {
    pub kind: &'static str,
    pub detail: String,
}

/// The store part of the status, which needs no login (the locked page shows it).
pub fn store_status(app: &App) -> StoreStatus {
    let sealed_to = app.config.seal_pcrs.to_string();
    match app.store.state() {
        StoreState::Open => StoreStatus {
            state: "open",
            sealed_to,
            reason: None,
            changed_pcrs: Vec::new(),
        },
        StoreState::Locked { reason } => StoreStatus {
            state: "locked",
            sealed_to,
            changed_pcrs: reason.changed_pcrs().to_vec(),
            reason: Some(reason.to_string()),
        },
    }
}

pub async fn status(app: &App) -> Status {
    let info = app.tpm.info();
    let (pcrs, pcrs_error) = match app.pcrs().await {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.message)),
    };
    Status {
        version: env!("CARGO_PKG_VERSION"),
        profile: app.config.profile.clone(),
        uptime_s: app.started.elapsed().as_secs(),
        tpm: TpmStatus {
            kind: if info.software {
                "software"
            } else {
                "hardware"
            },
            manufacturer: info.manufacturer.clone(),
            vendor: info.vendor.clone(),
            firmware_version: info.firmware_version.clone(),
            transport: info.transport.clone(),
        },
        store: store_status(app),
        pcrs,
        pcrs_error,
        audit: app.audit_head().map(|h| AuditStatus {
            records: h.records(),
            head: h.hash.to_hex(),
        }),
        tls: TlsStatus {
            cert_sha256: hex::encode(app.tls.cert_sha256),
            spki_sha256: hex::encode(app.tls.spki_sha256),
            ephemeral: app.tls.ephemeral,
        },
        compute: app.compute.shown(),
    }
}

// ---------------------------------------------------------------------------------------------
// Attestation.

/// Evidence answering `nonce_hex`, with the console's TLS key and the audit head bound into
/// the quote. Works on a locked store too (without the audit head, which needs the key).
pub async fn attestation(app: &App, nonce_hex: &str) -> Result<Evidence, ServiceError> {
    let nonce =
        hex::decode(nonce_hex.trim()).map_err(|_| ServiceError::bad_request("nonce is not hex"))?;
    if nonce.is_empty() || nonce.len() > 32 {
        return Err(ServiceError::bad_request(
            "nonce must be 1 to 32 bytes (2 to 64 hex digits)",
        ));
    }
    let tls = app.tls.spki_sha256.to_vec();
    let audit = app.audit_binding().map(|h| h.to_vec());
    let signing = crate::models::signing_key_binding(app).map(|k| k.to_vec());
    let qualifying =
        Evidence::qualifying_data_with(&nonce, Some(&tls), audit.as_deref(), signing.as_deref());
    let unavailable = |e: hearth_tpm::TpmError| ServiceError::unavailable(format!("TPM: {e}"));
    let ak = app.tpm.ak_public().await.map_err(unavailable)?;
    let quote = app
        .tpm
        .quote(qualifying, app.config.attest_pcrs.clone())
        .await
        .map_err(unavailable)?;
    let read = |p: &Option<std::path::PathBuf>| -> Option<Vec<u8>> {
        let p = p.as_ref()?;
        match std::fs::read(p) {
            Ok(b) if b.len() <= hearth_attest::evidence::MAX_EVIDENCE_BYTES / 2 => Some(b),
            Ok(_) => {
                tracing::warn!(path = %p.display(), "log too large for evidence; left out");
                None
            }
            Err(e) => {
                tracing::debug!(path = %p.display(), error = %e, "log not readable; left out");
                None
            }
        }
    };
    let info = app.tpm.info();
    Ok(Evidence {
        format: EVIDENCE_FORMAT.to_owned(),
        nonce,
        quote: quote.attest,
        signature: quote.signature,
        ak_public: ak.tpm2b_public,
        ak_pem: ak.pem,
        pcrs: quote.pcrs,
        eventlog: read(&app.config.eventlog),
        runtime_log: read(&app.config.runtime_log).and_then(|b| String::from_utf8(b).ok()),
        tls_spki_sha256: Some(tls),
        audit_head: audit,
        model_signing_key_sha256: signing,
        tpm: Some(TpmDescription {
            manufacturer: info.manufacturer.clone(),
            vendor: info.vendor.clone(),
            firmware_version: info.firmware_version.clone(),
            software: info.software,
        }),
    })
}

// ---------------------------------------------------------------------------------------------
// Recovery.

/// Opens a locked store with the recovery key and re-seals the root secret to the current
/// PCRs. The recovery key is the credential (nobody can log in while the users are sealed);
/// attempts are throttled like logins. The unlock is audited once the audit key exists again.
pub async fn unlock(app: &Arc<App>, addr: IpAddr, recovery_key: &str) -> Result<(), ServiceError> {
    if matches!(app.store.state(), StoreState::Open) {
        return Err(ServiceError::conflict("the store is not locked"));
    }
    throttled(app, "unlock", addr)?;
    let key = match RecoveryKey::parse(recovery_key) {
        Ok(k) => k,
        Err(e) => {
            app.throttle.failed("unlock", addr);
            return Err(ServiceError::unprocessable(format!(
                "not a recovery key: {e}"
            )));
        }
    };
    let store = Arc::clone(&app.store);
    let seal_pcrs = app.config.seal_pcrs.clone();
    let result = app
        .tpm
        .call(move |tpm| {
            Ok(store
                .unlock_with_recovery(
                    &key,
                    KeySource::Tpm {
                        tpm,
                        seal_pcrs: &seal_pcrs,
                    },
                )
                .map_err(|e| e.to_string()))
        })
        .await
        .map_err(|e| ServiceError::unavailable(format!("TPM: {e}")))?;
    if let Err(e) = result {
        app.throttle.failed("unlock", addr);
        app.metrics.login_failed();
        tracing::warn!(component = "console", %addr, error = %e, "recovery unlock failed");
        return Err(ServiceError::forbidden(format!("unlock failed: {e}")));
    }
    app.throttle.succeeded("unlock", addr);
    app.open_audit().map_err(ServiceError::internal)?;
    crate::jobs::Jobs::start(app)?;
    crate::endpoints::Endpoints::start(app)?;
    let actor = Actor::anonymous("recovery-key");
    app.audited(&actor, "store.unlock", "store", || Ok(()))?;
    tracing::info!(component = "console", %addr, "store unlocked with the recovery key");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_at_the_first_underscore_after_the_id() {
        assert_eq!(
            parse_token("hth_0123456789abcdef_se_cr_et"),
            Some(("0123456789abcdef", "se_cr_et"))
        );
        for bad in [
            "",
            "hth_",
            "hth_0123456789abcdef_",
            "hth_0123456789abcde_x",
            "hth_0123456789abcdeg_x",
            "Bearer hth_0123456789abcdef_x",
            "xth_0123456789abcdef_x",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn setup_codes_ignore_case_and_separators() {
        assert_eq!(normalize_code("abcd-efgh jkmn"), "ABCDEFGHJKMN");
    }
}
