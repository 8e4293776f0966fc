//! The console's state and the service layer both the JSON API and the HTML pages call.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use hearth_audit::{AuditKey, AuditLog, Entry, MAX_OBJECT, MAX_REASON, Record};
use hearth_store::{Purpose, Store, StoreState};
use hearth_tpm::{PcrSelection, PcrValues, TpmHandle};

use crate::auth::{Sessions, Throttle};
use crate::metrics::Metrics;

/// What hearthd tells the console about its TLS identity.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    /// SHA-256 of the certificate's SubjectPublicKeyInfo, bound into attestation quotes.
    pub spki_sha256: [u8; 32],
    /// SHA-256 of the certificate (what browsers and `--fingerprint` show).
    pub cert_sha256: [u8; 32],
    /// A key made for this run only, because the store (which keeps the real one) is locked.
    pub ephemeral: bool,
}

/// Console settings (hearthd's `[console]` section and what it derives).
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    pub session_ttl: Duration,
    /// PCRs quoted by the attestation endpoint.
    pub attest_pcrs: PcrSelection,
    /// PCRs the root secret is sealed to (re-sealed to on recovery unlock).
    pub seal_pcrs: PcrSelection,
    /// The firmware event log included in evidence, when readable.
    pub eventlog: Option<PathBuf>,
    /// Hearth's runtime log included in evidence, when readable.
    pub runtime_log: Option<PathBuf>,
    /// Where the audit journal lives.
    pub audit_path: PathBuf,
    /// `dev` or `production`, shown on the overview.
    pub profile: String,
    /// Which backend training jobs may use.
    pub compute: hearth_gpu::Preference,
    /// What may leave the appliance (model bundles, raw datasets).
    pub egress: crate::models::EgressPolicy,
}

/// The running console: shared by every request.
pub struct App {
    pub config: ConsoleConfig,
    pub store: Arc<Store>,
    pub tpm: TpmHandle,
    pub tls: TlsIdentity,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub metrics: Metrics,
    pub started: Instant,
    /// The CPU and the GPUs found once at start, with their leases.
    pub compute: crate::compute::Compute,
    /// Validated API tokens: id -> (SHA-256 of the secret, user, role). Cleared whenever a
    /// token, a user's role or a user's state changes, so it never outlives a revocation.
    pub token_cache: Mutex<std::collections::HashMap<String, (String, String, crate::UserRole)>>,
    /// Training jobs: queue, worker, live events.
    pub jobs: crate::jobs::Jobs,
    /// Serving endpoints, their workers and API keys.
    pub endpoints: crate::endpoints::Endpoints,
    audit: Mutex<Option<AuditLog>>,
    pcr_cache: tokio::sync::Mutex<Option<(Instant, PcrValues)>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// A failure a request ends with: an HTTP status and a message meant for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

impl ServiceError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ServiceError {
        ServiceError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unprocessable(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }
    pub fn not_found(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::CONFLICT, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn unavailable(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
    pub fn internal(message: impl Into<String>) -> ServiceError {
        ServiceError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    /// 429 with `message` and a `Retry-After` of `wait`, rounded up to whole seconds.
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> ServiceError {
        let secs = (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1);
        ServiceError {
            status: StatusCode::TOO_MANY_REQUESTS,
            message: message.into(),
            retry_after: Some(secs),
        }
    }
    pub fn too_many(wait: Duration) -> ServiceError {
        let mut e = ServiceError::rate_limited("", wait);
        let secs = e.retry_after.unwrap_or(1);
        e.message = format!("too many failed attempts: try again in {secs} s");
        e
    }
}

impl From<hearth_store::StoreError> for ServiceError {
    fn from(e: hearth_store::StoreError) -> Self {
        match e {
            hearth_store::StoreError::Locked { reason } => {
                ServiceError::unavailable(format!("store is locked: {reason}"))
            }
            other => {
                tracing::error!(component = "console", error = %other, "store failure");
                ServiceError::internal(format!("store failure: {other}"))
            }
        }
    }
}

/// Who is acting: a user in a role (or nobody, for the public routes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    pub name: String,
    pub role: hearth_audit::Role,
}

impl Actor {
    pub fn anonymous(claimed_name: &str) -> Actor {
        Actor {
            name: if claimed_name.is_empty() {
                "anonymous".to_owned()
            } else {
                claimed_name.to_owned()
            },
            role: hearth_audit::Role::Anonymous,
        }
    }
    pub fn system() -> Actor {
        Actor {
            name: "system".to_owned(),
            role: hearth_audit::Role::System,
        }
    }
}

/// A started audit record that must be completed.
#[must_use = "complete the audited action with App::finish"]
pub struct Audited(Record);

/// What marks text cut to fit an audit field.
const CUT: &str = "…";

/// `text` if it has at most `max` bytes, else its longest prefix (cut at a character boundary)
/// that fits with [`CUT`] after it. A request is never refused because the words describing it
/// are too long for its audit record.
pub fn fit(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max.saturating_sub(CUT.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT}", &text[..end]).into()
}

/// An audit object naming a list: `prefix` then `items` joined by commas, as many as fit in an
/// audit record's object ([`MAX_OBJECT`] bytes) followed by `(+N more)` for the rest.
pub fn list_object(prefix: &str, items: &[impl AsRef<str>]) -> String {
    let full = items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(",");
    if prefix.len() + full.len() <= MAX_OBJECT {
        return format!("{prefix}{full}");
    }
    // Room for the longest possible tail, so whatever is shown, the count fits.
    let tail_room = format!(",(+{} more)", items.len()).len();
    let mut out = fit(prefix, MAX_OBJECT - tail_room).into_owned();
    let mut shown = 0;
    for item in items {
        let item = item.as_ref();
        let sep = usize::from(shown > 0);
        if out.len() + sep + item.len() + tail_room > MAX_OBJECT {
            break;
        }
        if sep == 1 {
            out.push(',');
        }
        out.push_str(item);
        shown += 1;
    }
    if shown > 0 {
        out.push(',');
    }
    out.push_str(&format!("(+{} more)", items.len() - shown));
    out
}

/// The reason a failure is recorded with: the caller's message, fitted to [`MAX_REASON`] bytes
/// (a record's reason is never empty).
fn failure_reason(message: &str) -> String {
    if message.trim().is_empty() {
        return "failed without a message".to_owned();
    }
    fit(message, MAX_REASON).into_owned()
}

impl App {
    pub fn new(
        config: ConsoleConfig,
        store: Arc<Store>,
        tpm: TpmHandle,
        tls: TlsIdentity,
    ) -> Result<Arc<App>, String> {
        let compute = crate::compute::Compute::probe(config.compute);
        tracing::info!(component = "compute", "{}", compute.inventory.summary());
        if config.compute == hearth_gpu::Preference::Cuda && compute.inventory.devices.is_empty() {
            return Err(format!(
                "compute.backend = \"cuda\", but no GPU can be used: {}",
                compute.inventory.problem.as_deref().unwrap_or("none found")
            ));
        }
        let app = Arc::new(App {
            config,
            store,
            tpm,
            tls,
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            metrics: Metrics::default(),
            started: Instant::now(),
            compute,
            token_cache: Mutex::new(std::collections::HashMap::new()),
            jobs: crate::jobs::Jobs::default(),
            endpoints: crate::endpoints::Endpoints::default(),
            audit: Mutex::new(None),
            pcr_cache: tokio::sync::Mutex::new(None),
        });
        if matches!(app.store.state(), StoreState::Open) {
            app.open_audit()?;
            crate::jobs::Jobs::start(&app).map_err(|e| e.message)?;
            crate::endpoints::Endpoints::start(&app).map_err(|e| e.message)?;
        }
        Ok(app)
    }

    /// Opens (or creates) the audit journal with the key derived from the store's root secret.
    pub fn open_audit(&self) -> Result<(), String> {
        let key = self
            .store
            .purpose_key(Purpose::AUDIT_MAC)
            .map_err(|e| format!("cannot derive the audit key: {e}"))?;
        let key = AuditKey::from_bytes(key.expose());
        let path = &self.config.audit_path;
        let log = if path.exists() {
            let (log, report) = AuditLog::open(path, key)
                .map_err(|e| format!("cannot open the audit log {}: {e}", path.display()))?;
            if let Some(torn) = &report.torn {
                tracing::warn!(
                    component = "audit",
                    offset = torn.offset,
                    bytes = torn.bytes.len(),
                    "cut off a torn final line that no append acknowledged"
                );
            }
            let unfinished = log.unfinished();
            if !unfinished.is_empty() {
                tracing::warn!(
                    component = "audit",
                    ?unfinished,
                    "actions started before the last shutdown never recorded an outcome"
                );
            }
            log
        } else {
            AuditLog::create(path, key)
                .map_err(|e| format!("cannot create the audit log {}: {e}", path.display()))?
        };
        *self.audit.lock().unwrap_or_else(PoisonError::into_inner) = Some(log);
        Ok(())
    }

    /// Writes the record that precedes an action. If it cannot be written, the action must not
    /// run: the error says so.
    pub fn begin(
        &self,
        actor: &Actor,
        action: &str,
        object: &str,
    ) -> Result<Audited, ServiceError> {
        let mut guard = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        let log = guard.as_mut().ok_or_else(|| {
            ServiceError::unavailable(
                "the audit log is not open (store locked): nothing can change",
            )
        })?;
        let started = Entry::started(
            actor.name.clone(),
            actor.role,
            action,
            fit(object, MAX_OBJECT),
        );
        log.append(started).map(Audited).map_err(|e| {
            tracing::error!(component = "audit", error = %e, "cannot write an audit record");
            ServiceError::unavailable(format!(
                "cannot write the audit record, so nothing was done: {e}"
            ))
        })
    }

    /// Records how an action ended and passes its result through. A completion that cannot be
    /// written is logged (the action already happened; the journal shows it unfinished).
    pub fn finish<T>(
        &self,
        started: Audited,
        result: Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let entry = match &result {
            Ok(_) => Entry::succeeded(&started.0),
            Err(e) => Entry::failed(&started.0, failure_reason(&e.message)),
        };
        let mut guard = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_mut().map(|log| log.append(entry)) {
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                tracing::error!(component = "audit", seq = started.0.seq, error = %e, "cannot write an audit completion")
            }
            None => tracing::error!(component = "audit", "audit log closed before a completion"),
        }
        result
    }

    /// Runs `act` between a started and a completion record.
    pub fn audited<T>(
        &self,
        actor: &Actor,
        action: &str,
        object: &str,
        act: impl FnOnce() -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let started = self.begin(actor, action, object)?;
        self.finish(started, act())
    }

    /// Makes the audit journal refuse every append until it is reopened ([`App::open_audit`]),
    /// as after a failed write: for tests that mutations then fail (feature `test-hooks`).
    #[cfg(feature = "test-hooks")]
    pub fn poison_audit(&self) {
        if let Some(log) = self
            .audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            log.poison();
        }
    }

    /// The audit chain's head (records, hash), if the journal is open.
    pub fn audit_head(&self) -> Option<hearth_audit::Head> {
        self.audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(AuditLog::head)
    }

    /// The 32 bytes bound into quotes, if the journal is open.
    pub fn audit_binding(&self) -> Option<[u8; 32]> {
        self.audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(AuditLog::audit_head)
    }

    /// The whole journal as export bytes, with its head.
    pub fn audit_export(&self) -> Result<(Vec<u8>, hearth_audit::Head), ServiceError> {
        let guard = self.audit.lock().unwrap_or_else(PoisonError::into_inner);
        let log = guard
            .as_ref()
            .ok_or_else(|| ServiceError::unavailable("the audit log is not open (store locked)"))?;
        let mut out = Vec::new();
        let head = log
            .export_to(&mut out)
            .map_err(|e| ServiceError::internal(format!("cannot export the audit log: {e}")))?;
        Ok((out, head))
    }

    /// PCR values for status pages, read from the TPM at most every two seconds.
    pub async fn pcrs(&self) -> Result<PcrValues, ServiceError> {
        let mut cache = self.pcr_cache.lock().await;
        if let Some((at, values)) = &*cache
            && at.elapsed() < Duration::from_secs(2)
        {
            return Ok(values.clone());
        }
        let values = self
            .tpm
            .pcr_read(self.config.attest_pcrs.clone())
            .await
            .map_err(|e| ServiceError::unavailable(format!("cannot read PCRs: {e}")))?;
        *cache = Some((Instant::now(), values.clone()));
        Ok(values)
    }

    /// Forgets every cached token validation (after any change to tokens or users).
    pub fn forget_tokens(&self) {
        self.token_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Runs blocking work (argon2, fsyncs) off the async workers.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&App) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let app = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&app))
            .await
            .map_err(|e| ServiceError::internal(format!("worker failed: {e}")))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_cuts_at_a_character_boundary_within_the_limit() {
        assert_eq!(fit("short", 10), "short");
        assert_eq!(fit("", 10), "");
        // 'é' is two bytes: 600 of them are 1200 bytes, over the 1024 a reason may have.
        let long = "é".repeat(600);
        let cut = fit(&long, MAX_REASON);
        assert!(cut.len() <= MAX_REASON, "{}", cut.len());
        assert!(cut.ends_with(CUT), "{cut}");
        assert!(long.starts_with(cut.trim_end_matches(CUT)));
        // Three-byte characters whose boundaries do not meet the limit.
        let euros = "€".repeat(400);
        let cut = fit(&euros, 1000);
        assert!(cut.len() <= 1000 && cut.len() > 990, "{}", cut.len());
    }

    #[test]
    fn failure_reasons_always_make_a_valid_record() {
        let dir = tempfile::tempdir().unwrap();
        let key = || AuditKey::from_bytes(&[7; 32]);
        let mut log = AuditLog::create(&dir.path().join("audit.jsonl"), key()).unwrap();
        for message in ["", "  ", "plain", &"é".repeat(600), &"x".repeat(5000)] {
            let started = log
                .append(Entry::started(
                    "root",
                    hearth_audit::Role::Admin,
                    "users.create",
                    "user:bob",
                ))
                .unwrap();
            let reason = failure_reason(message);
            assert!(
                !reason.is_empty() && reason.len() <= MAX_REASON,
                "{message:?}"
            );
            log.append(Entry::failed(&started, reason))
                .unwrap_or_else(|e| panic!("{message:?}: {e}"));
        }
        assert!(log.unfinished().is_empty());
        assert_eq!(failure_reason(""), "failed without a message");
        assert_eq!(failure_reason("wrong setup code"), "wrong setup code");
    }

    #[test]
    fn long_lists_fit_an_object_with_a_count_of_the_rest() {
        assert_eq!(list_object("columns:", &["a", "b"]), "columns:a,b");
        let names: Vec<String> = (0..64)
            .map(|i| format!("{i:02}{}", "n".repeat(62)))
            .collect();
        let object = list_object("key:0123456789abcdef app:billing endpoints:", &names);
        assert!(object.len() <= MAX_OBJECT, "{}", object.len());
        assert!(object.starts_with("key:0123456789abcdef app:billing endpoints:00nnn"));
        let shown = object.matches(&"n".repeat(62)).count();
        assert!(shown >= 10, "{object}");
        assert!(
            object.ends_with(&format!(",(+{} more)", 64 - shown)),
            "{object}"
        );
        // One item longer than the limit: none shown, all counted; multi-byte prefixes are cut
        // at a boundary.
        let object = list_object(&"é".repeat(700), &["x".repeat(2000)]);
        assert!(object.len() <= MAX_OBJECT, "{}", object.len());
        assert!(object.ends_with("…(+1 more)"), "{object}");
    }
}
