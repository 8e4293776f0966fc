//! Serving endpoints: a name mapped to an approved model version, answering
//! `POST /v1/endpoints/NAME/predict` for applications holding an endpoint API key.
//!
//! - Each endpoint has one worker thread fed by a bounded queue. The worker takes every request
//!   waiting when it wakes (up to [`MAX_BATCH_ROWS`] rows) and runs them as one batch: dynamic
//!   micro-batching, with no added wait when the endpoint is idle.
//! - A small request ([`INLINE_WORK`] multiply-adds at most) that finds its endpoint idle (no
//!   request queued, none predicting) is predicted on the connection's own task instead: handing
//!   it to the worker thread and back costs two thread wake-ups, more than the prediction itself
//!   (well under a microsecond a row for a tabular MLP). Requests that arrive while one is
//!   predicting go to the queue and batch there, so concurrency still batches.
//! - A request is validated against, and predicted by, the version that was live when it
//!   arrived: switching an endpoint to another version (deploy, rollback) swaps a pointer, and
//!   requests already queued finish on the version they were validated against.
//! - API keys (`hep_<id>_<secret>`) belong to an application and list the endpoints they may
//!   call; only the secret's SHA-256 is stored; revocation takes effect on the next request.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_ml::ColumnKind;
use hearth_ml::model::Model;
use hearth_ml::registry::{self, Stage};
use hearth_ml::serve::{self, BatchBuffers, Cell, Prediction};
use hearth_store::{Json as JsonValue, Table};
use maud::html;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::app::{Actor, App, ServiceError};
use crate::routes::{Caller, CsrfToken};

/// Endpoints by name.
pub const ENDPOINTS: Table<str, JsonValue<Endpoint>> = Table::new("ml/endpoints");
/// Endpoint API keys by id.
pub const KEYS: Table<str, JsonValue<ApiKey>> = Table::new("ml/endpoint-keys");

/// Most rows one worker pass predicts.
pub const MAX_BATCH_ROWS: usize = 4096;
/// Requests waiting per endpoint before new ones get 503.
pub const QUEUE: usize = 4096;
/// Largest predict body.
pub const MAX_PREDICT_BODY: usize = 1 << 20;
/// The key prefix.
pub const KEY_PREFIX: &str = "hep_";
/// Largest request (rows x the network's multiply-adds per row) predicted inline, on the
/// request's own task, when the endpoint is idle: about 50 us on one core.
pub const INLINE_WORK: usize = 1 << 18;

/// An endpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub model: String,
    pub version: u32,
    /// Versions served before, oldest first (rollback pops the last).
    pub history: Vec<u32>,
    pub updated_unix_ms: u64,
    pub updated_by: String,
}

/// An endpoint API key as stored: the secret only as SHA-256.
#[derive(Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    /// The application it was issued to.
    pub app: String,
    /// Endpoints it may call.
    pub endpoints: Vec<String>,
    pub secret_sha256: String,
    pub created_unix_ms: u64,
    pub created_by: String,
    pub revoked_unix_ms: Option<u64>,
    /// Most requests per second the application may make with it (a second's worth may come
    /// at once); `None`: no limit.
    #[serde(default)]
    pub requests_per_second: Option<u32>,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("app", &self.app)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

/// What the API shows of a key.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub id: String,
    pub app: String,
    pub endpoints: Vec<String>,
    pub created_unix_ms: u64,
    pub created_by: String,
    pub revoked: bool,
    pub requests_per_second: Option<u32>,
}

impl From<&ApiKey> for KeyView {
    fn from(k: &ApiKey) -> Self {
        KeyView {
            id: k.id.clone(),
            app: k.app.clone(),
            endpoints: k.endpoints.clone(),
            created_unix_ms: k.created_unix_ms,
            created_by: k.created_by.clone(),
            revoked: k.revoked_unix_ms.is_some(),
            requests_per_second: k.requests_per_second,
        }
    }
}

/// The application behind a predict call, attached by the guard.
#[derive(Clone, Debug)]
pub struct KeyCaller {
    pub key_id: String,
    pub app: String,
}

/// A loaded version.
struct Served {
    model: Model,
    name: String,
    version: u32,
    inputs: Vec<(String, ColumnKind)>,
    /// Multiply-adds of one row through the network.
    work_per_row: usize,
}

fn work_per_row(model: &Model) -> usize {
    model
        .network
        .layers
        .iter()
        .map(|l| l.inputs * l.outputs)
        .sum::<usize>()
        .max(1)
}

struct Work {
    served: Arc<Served>,
    rows: Vec<Vec<Cell>>,
    reply: oneshot::Sender<Result<Vec<Prediction>, String>>,
}

/// Upper bounds of the predict latency histogram, in seconds.
pub const BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
    2.5,
];

#[derive(Default, Clone, Debug)]
pub struct Stats {
    /// By HTTP status.
    pub requests: BTreeMap<u16, u64>,
    pub rows: u64,
    pub batches: u64,
    /// Cumulative, as Prometheus wants.
    pub buckets: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Stats {
    /// The smallest bucket bound under which `q` of the requests finished (an upper estimate).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        #[allow(clippy::cast_precision_loss)]
        let need = (self.count as f64 * q).ceil();
        #[allow(clippy::cast_precision_loss)]
        BUCKETS
            .iter()
            .zip(self.buckets.iter())
            .find(|(_, n)| **n as f64 >= need && self.count > 0)
            .map(|(b, _)| *b)
    }
}

struct Live {
    current: RwLock<Option<Arc<Served>>>,
    tx: SyncSender<Work>,
    stats: Arc<Mutex<Stats>>,
    /// Requests handed to the worker and not yet answered.
    queued: Arc<AtomicUsize>,
    /// The inline path's buffers; held while a request predicts inline.
    inline: Mutex<BatchBuffers>,
}

/// Every endpoint's live state and the key cache.
#[derive(Default)]
pub struct Endpoints {
    live: RwLock<HashMap<String, Arc<Live>>>,
    keys: RwLock<HashMap<String, ApiKey>>,
    /// Per limited key: its token bucket.
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// A key's allowance: up to a second's worth of requests, refilled continuously.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Takes one request from `id`'s bucket (`rate` per second, `rate` at most), or says how long
/// until one is there.
fn take(
    buckets: &Mutex<HashMap<String, Bucket>>,
    id: &str,
    rate: u32,
    now: Instant,
) -> Result<(), Duration> {
    let rate = f64::from(rate.max(1));
    let mut buckets = buckets.lock().unwrap_or_else(PoisonError::into_inner);
    let b = buckets.entry(id.to_owned()).or_insert(Bucket {
        tokens: rate,
        at: now,
    });
    let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
    b.tokens = (b.tokens + elapsed * rate).min(rate);
    // `now` was read before the lock: a later caller may already have moved the clock on.
    b.at = b.at.max(now);
    if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

fn worker(rx: &Receiver<Work>, stats: &Mutex<Stats>, queued: &AtomicUsize) {
    let mut buf = BatchBuffers::default();
    while let Ok(first) = rx.recv() {
        let mut rows = first.rows.len();
        let mut items = vec![first];
        while rows < MAX_BATCH_ROWS {
            match rx.try_recv() {
                Ok(w) => {
                    rows += w.rows.len();
                    items.push(w);
                }
                Err(_) => break,
            }
        }
        // Consecutive requests for the same version run as one batch.
        while !items.is_empty() {
            let served = Arc::clone(&items[0].served);
            let end = items
                .iter()
                .position(|w| !Arc::ptr_eq(&w.served, &served))
                .unwrap_or(items.len());
            let batch: Vec<&[Vec<Cell>]> = items[..end].iter().map(|w| &w.rows[..]).collect();
            let result = serve::predict_batch(&served.model, &batch, &mut buf);
            {
                let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
                s.batches += 1;
                s.rows += batch.iter().map(|b| b.len() as u64).sum::<u64>();
            }
            drop(batch);
            // Answered before replying, so that a reply's next request may go inline.
            queued.fetch_sub(end, Ordering::AcqRel);
            match result {
                Ok(outs) => {
                    for (w, out) in items.drain(..end).zip(outs) {
                        let _ = w.reply.send(Ok(out));
                    }
                }
                Err(e) => {
                    for w in items.drain(..end) {
                        let _ = w.reply.send(Err(e.to_string()));
                    }
                }
            }
        }
    }
}

impl Endpoints {
    /// Loads endpoints and keys from the store and starts each endpoint's worker.
    pub fn start(app: &App) -> Result<(), ServiceError> {
        let keys = app.store.list(&KEYS)?;
        *app.endpoints
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = keys.into_iter().collect();
        for (_, e) in app.store.list(&ENDPOINTS)? {
            let served = load(app, &e.model, e.version).ok();
            app.endpoints.set(&e.name, served);
        }
        Ok(())
    }

    fn live(&self, name: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .cloned()
    }

    /// Points `name` at `served` (or at nothing), creating its worker on first use.
    fn set(&self, name: &str, served: Option<Arc<Served>>) {
        if let Some(l) = self.live(name) {
            *l.current.write().unwrap_or_else(PoisonError::into_inner) = served;
            return;
        }
        let (tx, rx) = mpsc::sync_channel::<Work>(QUEUE);
        let live = Arc::new(Live {
            current: RwLock::new(served),
            tx,
            stats: Arc::new(Mutex::new(Stats::default())),
            queued: Arc::new(AtomicUsize::new(0)),
            inline: Mutex::new(BatchBuffers::default()),
        });
        // The worker holds the queue's receiving end and the stats; it ends with the queue.
        let (stats, queued) = (Arc::clone(&live.stats), Arc::clone(&live.queued));
        let spawned = std::thread::Builder::new()
            .name(format!("hearth-serve-{name}"))
            .spawn(move || worker(&rx, &stats, &queued));
        if let Err(e) = spawned {
            tracing::error!(component = "serve", endpoint = name, error = %e, "cannot start a worker");
        }
        self.live
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(name.to_owned(), live);
    }

    /// Stops serving endpoint `name` and forgets it: requests already queued are answered (they
    /// hold the endpoint), later ones find no endpoint; its worker ends with its queue.
    fn remove(&self, name: &str) {
        let removed = self
            .live
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        if let Some(l) = removed {
            *l.current.write().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Stops serving every endpoint that serves `name@version` (before it is retired).
    pub fn model_retired(&self, name: &str, version: u32) {
        for l in self
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            let mut cur = l.current.write().unwrap_or_else(PoisonError::into_inner);
            if cur
                .as_ref()
                .is_some_and(|s| s.name == name && s.version == version)
            {
                *cur = None;
            }
        }
    }

    /// Checks an endpoint key for `endpoint`: the caller, or 401 (unknown, wrong, revoked) or
    /// 403 (not scoped to this endpoint).
    pub fn authorize(&self, key: &str, endpoint: &str) -> Result<KeyCaller, ServiceError> {
        let invalid = || ServiceError::unauthorized("invalid or revoked endpoint API key");
        let rest = key.strip_prefix(KEY_PREFIX).ok_or_else(invalid)?;
        let (id, secret) = rest.split_once('_').ok_or_else(invalid)?;
        let (caller, rate) = {
            let keys = self.keys.read().unwrap_or_else(PoisonError::into_inner);
            let k = keys.get(id).ok_or_else(invalid)?;
            if k.revoked_unix_ms.is_some()
                || !crate::auth::same(&sha256_hex(secret.as_bytes()), &k.secret_sha256)
            {
                return Err(invalid());
            }
            if !k.endpoints.iter().any(|e| e == endpoint) {
                return Err(ServiceError::forbidden(format!(
                    "this key (application {:?}) may not call endpoint {endpoint:?}",
                    k.app
                )));
            }
            let caller = KeyCaller {
                key_id: k.id.clone(),
                app: k.app.clone(),
            };
            (caller, k.requests_per_second)
        };
        if let Some(rate) = rate
            && let Err(wait) = take(&self.buckets, &caller.key_id, rate, Instant::now())
        {
            // Counted by status code, but not in the latency histogram: it never reached the
            // model, and a zero there would pull p50 and p99 down.
            if let Some(l) = self.live(endpoint) {
                *l.stats
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .requests
                    .entry(StatusCode::TOO_MANY_REQUESTS.as_u16())
                    .or_default() += 1;
            }
            return Err(ServiceError::rate_limited(
                format!(
                    "this key (application {:?}) is limited to {rate} requests per second",
                    caller.app
                ),
                wait,
            ));
        }
        Ok(caller)
    }

    pub fn stats(&self, name: &str) -> Option<Stats> {
        self.live(name).map(|l| {
            l.stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Prometheus text for every endpoint: request counts by status, rows, batches, latency.
    pub fn render_metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut names: Vec<(String, Stats)> = self
            .live
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(n, l)| {
                (
                    n.clone(),
                    l.stats
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                )
            })
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP hearth_endpoint_requests_total Predict requests by endpoint and status.\n\
             # TYPE hearth_endpoint_requests_total counter"
        );
        for (n, s) in &names {
            for (code, c) in &s.requests {
                let _ = writeln!(
                    out,
                    "hearth_endpoint_requests_total{{endpoint=\"{n}\",code=\"{code}\"}} {c}"
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hearth_endpoint_rows_total Rows predicted by endpoint.\n\
             # TYPE hearth_endpoint_rows_total counter"
        );
        for (n, s) in &names {
            let _ = writeln!(
                out,
                "hearth_endpoint_rows_total{{endpoint=\"{n}\"}} {}",
                s.rows
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_endpoint_batches_total Worker passes (micro-batches) by endpoint.\n\
             # TYPE hearth_endpoint_batches_total counter"
        );
        for (n, s) in &names {
            let _ = writeln!(
                out,
                "hearth_endpoint_batches_total{{endpoint=\"{n}\"}} {}",
                s.batches
            );
        }
        let _ = writeln!(
            out,
            "# HELP hearth_endpoint_latency_seconds Predict latency inside hearthd by endpoint.\n\
             # TYPE hearth_endpoint_latency_seconds histogram"
        );
        for (n, s) in &names {
            for (b, c) in BUCKETS.iter().zip(s.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "hearth_endpoint_latency_seconds_bucket{{endpoint=\"{n}\",le=\"{b}\"}} {c}"
                );
            }
            let _ = writeln!(
                out,
                "hearth_endpoint_latency_seconds_bucket{{endpoint=\"{n}\",le=\"+Inf\"}} {}\n\
                 hearth_endpoint_latency_seconds_sum{{endpoint=\"{n}\"}} {}\n\
                 hearth_endpoint_latency_seconds_count{{endpoint=\"{n}\"}} {}",
                s.count, s.sum, s.count
            );
        }
        out
    }
}

fn load(app: &App, name: &str, version: u32) -> Result<Arc<Served>, ServiceError> {
    let v = registry::get(&app.store, name, version)?;
    if v.stage != Stage::Approved {
        return Err(ServiceError::conflict(format!(
            "{} is {}: only approved versions are served",
            v.label(),
            v.stage
        )));
    }
    let model = registry::load(&app.store, &v)?;
    let inputs = serve::inputs(&model)
        .into_iter()
        .map(|(n, k)| (n.to_owned(), k))
        .collect();
    Ok(Arc::new(Served {
        work_per_row: work_per_row(&model),
        model,
        name: v.name,
        version: v.version,
        inputs,
    }))
}

fn validate_endpoint_name(name: &str) -> Result<(), ServiceError> {
    registry::validate_name(name).map_err(|_| {
        ServiceError::unprocessable(format!(
            "invalid endpoint name {name:?}: 1 to 64 of a-z, 0-9, '-', '_'"
        ))
    })
}

/// Points endpoint `name` at `model@version` (creating it), without dropping requests.
pub fn deploy(
    app: &App,
    actor: &Actor,
    name: &str,
    model: &str,
    version: u32,
) -> Result<Endpoint, ServiceError> {
    validate_endpoint_name(name)?;
    let served = load(app, model, version)?;
    app.audited(
        actor,
        "endpoints.deploy",
        &format!("endpoint:{name} model:{model}@{version}"),
        || {
            let e = app.store.write(|w| {
                let mut history = Vec::new();
                if let Some(old) = w.get(&ENDPOINTS, name)? {
                    history = old.history;
                    if old.model == model && old.version != version {
                        history.push(old.version);
                    } else if old.model != model {
                        history.clear();
                    }
                }
                let e = Endpoint {
                    name: name.to_owned(),
                    model: model.to_owned(),
                    version,
                    history,
                    updated_unix_ms: now_ms(),
                    updated_by: actor.name.clone(),
                };
                w.put(&ENDPOINTS, name, &e)?;
                Ok(e)
            })?;
            app.endpoints.set(name, Some(served));
            Ok(e)
        },
    )
}

/// Endpoint `name`'s record, or 404.
fn stored(app: &App, name: &str) -> Result<Endpoint, ServiceError> {
    app.store
        .get(&ENDPOINTS, name)?
        .ok_or_else(|| ServiceError::not_found(format!("no endpoint {name:?}")))
}

/// Puts endpoint `name` back on the version it served before.
pub fn rollback(app: &App, actor: &Actor, name: &str) -> Result<Endpoint, ServiceError> {
    let e = stored(app, name)?;
    let Some(&previous) = e.history.last() else {
        return Err(ServiceError::conflict(format!(
            "endpoint {name} has no earlier version to roll back to"
        )));
    };
    let served = load(app, &e.model, previous)?;
    app.audited(
        actor,
        "endpoints.rollback",
        &format!("endpoint:{name} model:{}@{previous}", e.model),
        || {
            let mut e = e.clone();
            e.history.pop();
            e.version = previous;
            e.updated_unix_ms = now_ms();
            e.updated_by = actor.name.clone();
            app.store.put(&ENDPOINTS, name, &e)?;
            app.endpoints.set(name, Some(served));
            Ok(e)
        },
    )
}

/// Deletes endpoint `name`: it stops serving at once (requests already queued are answered)
/// and its record goes; the audit journal keeps the deletion. Keys scoped to it are left as
/// they are (revoke them separately): they would call a later endpoint of the same name.
pub fn delete(app: &App, actor: &Actor, name: &str) -> Result<Endpoint, ServiceError> {
    let e = stored(app, name)?;
    app.audited(
        actor,
        "endpoints.delete",
        &format!("endpoint:{name} model:{}@{}", e.model, e.version),
        || {
            if !app.store.remove(&ENDPOINTS, name)? {
                return Err(ServiceError::not_found(format!("no endpoint {name:?}")));
            }
            app.endpoints.remove(name);
            Ok(e)
        },
    )
}

pub fn list(app: &App) -> Result<Vec<Endpoint>, ServiceError> {
    Ok(app
        .store
        .list(&ENDPOINTS)?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

/// Issues a key for application `app_name` scoped to `endpoints`; the secret is shown once.
pub fn create_key(
    app: &App,
    actor: &Actor,
    app_name: &str,
    endpoints: &[String],
    requests_per_second: Option<u32>,
) -> Result<(KeyView, String), ServiceError> {
    if requests_per_second.is_some_and(|r| r == 0 || r > 1_000_000) {
        return Err(ServiceError::unprocessable(
            "requests_per_second: 1 to 1000000 (or none for no limit)",
        ));
    }
    if app_name.is_empty() || app_name.len() > 64 || app_name.chars().any(char::is_control) {
        return Err(ServiceError::unprocessable(
            "app: 1 to 64 printable characters",
        ));
    }
    if endpoints.is_empty() || endpoints.len() > 64 {
        return Err(ServiceError::unprocessable(
            "endpoints: 1 to 64 endpoint names",
        ));
    }
    for e in endpoints {
        validate_endpoint_name(e)?;
    }
    let id = hex::encode(crate::auth::random_bytes::<8>().map_err(ServiceError::internal)?);
    let secret = hex::encode(crate::auth::random_bytes::<24>().map_err(ServiceError::internal)?);
    let key = ApiKey {
        id: id.clone(),
        app: app_name.to_owned(),
        endpoints: endpoints.to_vec(),
        secret_sha256: sha256_hex(secret.as_bytes()),
        created_unix_ms: now_ms(),
        created_by: actor.name.clone(),
        revoked_unix_ms: None,
        requests_per_second,
    };
    let limit = requests_per_second.map_or_else(String::new, |r| format!(" rate:{r}/s"));
    app.audited(
        actor,
        "keys.create",
        &crate::app::list_object(
            &format!("key:{id} app:{app_name}{limit} endpoints:"),
            endpoints,
        ),
        || {
            app.store.put(&KEYS, &id, &key)?;
            app.endpoints
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.clone(), key.clone());
            Ok(())
        },
    )?;
    Ok((KeyView::from(&key), format!("{KEY_PREFIX}{id}_{secret}")))
}

pub fn revoke_key(app: &App, actor: &Actor, id: &str) -> Result<KeyView, ServiceError> {
    let mut key = app
        .store
        .get(&KEYS, id)?
        .ok_or_else(|| ServiceError::not_found(format!("no key {id:?}")))?;
    app.audited(
        actor,
        "keys.revoke",
        &format!("key:{id} app:{}", key.app),
        || {
            key.revoked_unix_ms.get_or_insert_with(now_ms);
            app.store.put(&KEYS, id, &key)?;
            app.endpoints
                .keys
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(id.to_owned(), key.clone());
            app.endpoints
                .buckets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(id);
            Ok(KeyView::from(&key))
        },
    )
}

pub fn list_keys(app: &App) -> Result<Vec<KeyView>, ServiceError> {
    Ok(app
        .store
        .list(&KEYS)?
        .iter()
        .map(|(_, k)| KeyView::from(k))
        .collect())
}

/// Validates and predicts `body` on endpoint `name`.
pub async fn predict(
    app: &App,
    name: &str,
    body: &[u8],
) -> Result<serde_json::Value, ServiceError> {
    let live = app
        .endpoints
        .live(name)
        .ok_or_else(|| ServiceError::not_found(format!("no endpoint {name:?}")))?;
    let served = live
        .current
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .ok_or_else(|| {
            ServiceError::new(
                StatusCode::GONE,
                format!("endpoint {name} serves no live model (its version was retired)"),
            )
        })?;
    let inputs: Vec<(&str, ColumnKind)> = served
        .inputs
        .iter()
        .map(|(n, k)| (n.as_str(), *k))
        .collect();
    let rows =
        serve::parse_rows(&inputs, body).map_err(|e| ServiceError::unprocessable(e.to_string()))?;
    let out = match predict_inline(&live, &served, &rows) {
        Some(out) => out,
        None => queue(&live, &served, rows).await?,
    }
    .map_err(ServiceError::unprocessable)?;
    Ok(serde_json::json!({
        "endpoint": name,
        "model": served.name,
        "version": served.version,
        "classes": served.model.classes(),
        "predictions": out,
    }))
}

/// Predicts `rows` on the caller's task when they are little work and the endpoint is idle;
/// `None` sends them to the worker's queue.
fn predict_inline(
    live: &Live,
    served: &Served,
    rows: &[Vec<Cell>],
) -> Option<Result<Vec<Prediction>, String>> {
    if rows.len().saturating_mul(served.work_per_row) > INLINE_WORK
        || live.queued.load(Ordering::Acquire) > 0
    {
        return None;
    }
    let mut buf = match live.inline.try_lock() {
        Ok(b) => b,
        Err(TryLockError::Poisoned(p)) => p.into_inner(),
        Err(TryLockError::WouldBlock) => return None,
    };
    let result = serve::predict_batch(&served.model, &[rows], &mut buf);
    drop(buf);
    {
        let mut s = live.stats.lock().unwrap_or_else(PoisonError::into_inner);
        s.batches += 1;
        s.rows += rows.len() as u64;
    }
    Some(match result {
        Ok(mut outs) => Ok(outs.pop().unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    })
}

/// Hands `rows` to the endpoint's worker and waits for its answer.
async fn queue(
    live: &Live,
    served: &Arc<Served>,
    rows: Vec<Vec<Cell>>,
) -> Result<Result<Vec<Prediction>, String>, ServiceError> {
    let (reply, rx) = oneshot::channel();
    let work = Work {
        served: Arc::clone(served),
        rows,
        reply,
    };
    live.queued.fetch_add(1, Ordering::AcqRel);
    match live.tx.try_send(work) {
        Ok(()) => {}
        Err(e) => {
            live.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(match e {
                TrySendError::Full(_) => ServiceError::unavailable("endpoint queue full: retry"),
                TrySendError::Disconnected(_) => {
                    ServiceError::unavailable("endpoint worker stopped")
                }
            });
        }
    }
    rx.await
        .map_err(|_| ServiceError::internal("the endpoint worker dropped the request"))
}

// ---------------------------------------------------------------------------------------------
// HTTP.

type ApiResult = Result<Response, ServiceError>;

pub async fn api_predict(
    State(app): State<Arc<App>>,
    Extension(_key): Extension<KeyCaller>,
    Path(name): Path<String>,
    body: Bytes,
) -> Response {
    let start = Instant::now();
    let result = predict(&app, &name, &body).await;
    let resp = match result {
        Ok(v) => Json(v).into_response(),
        Err(e) => crate::api::error_response(&e),
    };
    if let Some(l) = app.endpoints.live(&name) {
        record(&l.stats, resp.status().as_u16(), start.elapsed());
    }
    resp
}

fn record(stats: &Mutex<Stats>, status: u16, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    let mut s = stats.lock().unwrap_or_else(PoisonError::into_inner);
    *s.requests.entry(status).or_default() += 1;
    s.count += 1;
    s.sum += secs;
    for (i, b) in BUCKETS.iter().enumerate() {
        if secs <= *b {
            s.buckets[i] += 1;
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployBody {
    /// `name@version`.
    pub model: String,
}

#[derive(Serialize)]
struct EndpointView {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// Whether a live model answers.
    serving: bool,
    requests: u64,
    rows: u64,
    batches: u64,
    p50_seconds: Option<f64>,
    p99_seconds: Option<f64>,
}

fn view(app: &App, e: Endpoint) -> EndpointView {
    let serving = app.endpoints.live(&e.name).is_some_and(|l| {
        l.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    });
    let s = app.endpoints.stats(&e.name).unwrap_or_default();
    EndpointView {
        serving,
        requests: s.count,
        rows: s.rows,
        batches: s.batches,
        p50_seconds: s.quantile(0.5),
        p99_seconds: s.quantile(0.99),
        endpoint: e,
    }
}

pub async fn api_list(State(app): State<Arc<App>>) -> ApiResult {
    let all = list(&app)?;
    Ok(Json(all.into_iter().map(|e| view(&app, e)).collect::<Vec<_>>()).into_response())
}

pub async fn api_deploy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    crate::api::Body(body): crate::api::Body<DeployBody>,
) -> ApiResult {
    let (model, version) = registry::parse_ref(&body.model)
        .ok_or_else(|| ServiceError::unprocessable("model: expected NAME@VERSION"))?;
    let (model, version) = (model.to_owned(), version);
    let e = app
        .blocking(move |app| deploy(app, &caller.actor, &name, &model, version))
        .await?;
    Ok(Json(view(&app, e)).into_response())
}

pub async fn api_rollback(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    let e = app
        .blocking(move |app| rollback(app, &caller.actor, &name))
        .await?;
    Ok(Json(view(&app, e)).into_response())
}

pub async fn api_delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult {
    let e = app
        .blocking(move |app| delete(app, &caller.actor, &name))
        .await?;
    Ok(Json(e).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    pub app: String,
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub requests_per_second: Option<u32>,
}

pub async fn api_list_keys(State(app): State<Arc<App>>) -> ApiResult {
    Ok(Json(list_keys(&app)?).into_response())
}

pub async fn api_create_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    crate::api::Body(body): crate::api::Body<KeyBody>,
) -> ApiResult {
    let (view, secret) = app
        .blocking(move |app| {
            create_key(
                app,
                &caller.actor,
                &body.app,
                &body.endpoints,
                body.requests_per_second,
            )
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "key": view, "secret": secret })),
    )
        .into_response())
}

pub async fn api_revoke_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult {
    let v = app
        .blocking(move |app| revoke_key(app, &caller.actor, &id))
        .await?;
    Ok(Json(v).into_response())
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |s| format!("≤ {:.2} ms", s * 1000.0))
}

pub async fn page_list(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
) -> Response {
    let work = matches!(
        caller.role,
        crate::UserRole::Admin | crate::UserRole::Operator
    );
    let listed = list(&app).and_then(|l| {
        let keys = if work { list_keys(&app)? } else { Vec::new() };
        let approved: Vec<String> = crate::models::list(&app)?
            .into_iter()
            .filter(|v| v.stage == Stage::Approved)
            .map(|v| v.label())
            .collect();
        Ok((l, keys, approved))
    });
    let (all, keys, approved) = match listed {
        Ok(l) => l,
        Err(e) => return crate::pages::error_page(&e),
    };
    let views: Vec<EndpointView> = all.into_iter().map(|e| view(&app, e)).collect();
    let token = csrf.0.as_str();
    let body = html! {
        @if views.is_empty() { p.meta { "No endpoints yet: deploy an approved model version below, from its model page, or with hearth deploy MODEL@VERSION --endpoint NAME." } }
        @else {
            table.endpoints {
                thead { tr { th { "Endpoint" } th { "Model" } th { "Status" } th { "Requests" } th { "Rows" } th { "Batches" } th { "p50" } th { "p99" } th { "Updated" } @if work { th {} } } }
                tbody {
                    @for v in &views {
                        tr {
                            td { code { (v.endpoint.name) } }
                            td { a href={ "/models/" (v.endpoint.model) "/" (v.endpoint.version) } { (v.endpoint.model) "@" (v.endpoint.version) } }
                            td { @if v.serving { "serving" } @else { "stopped (retired)" } }
                            td { (v.requests) }
                            td { (v.rows) }
                            td { (v.batches) }
                            td { (ms(v.p50_seconds)) }
                            td { (ms(v.p99_seconds)) }
                            td { (crate::jobs::format_time(v.endpoint.updated_unix_ms / 1000)) " by " (v.endpoint.updated_by) }
                            @if work {
                                td {
                                    @if let Some(prev) = v.endpoint.history.last() {
                                        form.inline method="post" action={ "/endpoints/" (v.endpoint.name) "/rollback" } {
                                            input type="hidden" name="csrf" value=(token);
                                            button.rollback type="submit" { "Roll back to @" (prev) }
                                        }
                                    }
                                    form.inline method="post" action={ "/endpoints/" (v.endpoint.name) "/delete" } {
                                        input type="hidden" name="csrf" value=(token);
                                        button.danger.delete-endpoint type="submit" { "Delete" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if work {
            h2 { "Deploy" }
            @if approved.is_empty() { p.meta { "No approved model version: an admin approves one on its model page." } }
            @else {
                form.stack method="post" action="/endpoints" {
                    input type="hidden" name="csrf" value=(token);
                    label { "Endpoint name (new or existing; a-z, 0-9, - and _)" input #deploy-endpoint name="endpoint" required pattern="[a-z0-9_-]{1,64}"; }
                    label { "Model version" select #deploy-model name="model" { @for m in &approved { option value=(m) { (m) } } } }
                    button #deploy type="submit" { "Deploy" }
                }
            }
            h2 { "API keys" }
            @if keys.is_empty() { p.meta { "No keys yet." } }
            @else {
                table.keys {
                    thead { tr { th { "Key" } th { "Application" } th { "Endpoints" } th { "Created" } th { "State" } th { "Limit" } th {} } }
                    tbody {
                        @for k in &keys {
                            tr {
                                td { code { (KEY_PREFIX) (k.id) "_…" } }
                                td { (k.app) }
                                td { (k.endpoints.join(", ")) }
                                td { (crate::jobs::format_time(k.created_unix_ms / 1000)) " by " (k.created_by) }
                                td { @if k.revoked { "revoked" } @else { "active" } }
                                td { @if let Some(r) = k.requests_per_second { (r) " requests/s" } @else { "none" } }
                                td {
                                    @if !k.revoked {
                                        form.inline method="post" action={ "/endpoint-keys/" (k.id) "/revoke" } {
                                            input type="hidden" name="csrf" value=(token);
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            form.stack method="post" action="/endpoint-keys" {
                input type="hidden" name="csrf" value=(token);
                label { "Application" input #key-app name="app" required maxlength="64"; }
                label { "Endpoints it may call (comma-separated)" input #key-endpoints name="endpoints" required; }
                label { "Most requests per second (empty: no limit)" input #key-rate name="rate" type="number" min="1" max="1000000"; }
                button #create-key type="submit" { "Issue key" }
            }
        }
    };
    crate::pages::page_response(crate::pages::layout(
        "Endpoints",
        Some(&caller),
        &csrf.0,
        body,
    ))
}

/// The deploy form (from the endpoints page or a model's page).
#[derive(Deserialize)]
pub struct DeployForm {
    endpoint: String,
    /// `name@version`.
    model: String,
}

pub async fn page_deploy(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    crate::pages::FormBody(form): crate::pages::FormBody<DeployForm>,
) -> Response {
    let Some((model, version)) = registry::parse_ref(form.model.trim()) else {
        return crate::pages::error_page(&ServiceError::unprocessable(
            "model: expected NAME@VERSION",
        ));
    };
    let (model, name) = (model.to_owned(), form.endpoint.trim().to_owned());
    match app
        .blocking(move |app| deploy(app, &caller.actor, &name, &model, version))
        .await
    {
        Ok(_) => axum::response::Redirect::to("/endpoints").into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

pub async fn page_rollback(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match app
        .blocking(move |app| rollback(app, &caller.actor, &name))
        .await
    {
        Ok(_) => axum::response::Redirect::to("/endpoints").into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

pub async fn page_delete(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    match app
        .blocking(move |app| delete(app, &caller.actor, &name))
        .await
    {
        Ok(_) => axum::response::Redirect::to("/endpoints").into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

/// The key form: an application and the endpoints (comma-separated) its key may call.
#[derive(Deserialize)]
pub struct KeyForm {
    app: String,
    endpoints: String,
    #[serde(default)]
    rate: String,
}

/// Issues a key and shows its secret, once.
pub async fn page_create_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Extension(csrf): Extension<CsrfToken>,
    crate::pages::FormBody(form): crate::pages::FormBody<KeyForm>,
) -> Response {
    let endpoints: Vec<String> = form
        .endpoints
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
        .collect();
    let rate = match form.rate.trim() {
        "" => None,
        r => match r.parse() {
            Ok(r) => Some(r),
            Err(_) => {
                return crate::pages::error_page(&ServiceError::unprocessable(
                    "requests per second: a whole number, or empty for no limit",
                ));
            }
        },
    };
    let actor = caller.actor.clone();
    let app_name = form.app.trim().to_owned();
    let (view, secret) = match app
        .blocking(move |app| create_key(app, &actor, &app_name, &endpoints, rate))
        .await
    {
        Ok(k) => k,
        Err(e) => return crate::pages::error_page(&e),
    };
    let body = html! {
        p { "Key " code { (KEY_PREFIX) (view.id) } " for application " strong { (view.app) } ", scoped to " (view.endpoints.join(", ")) "." }
        p { strong { "Copy the secret now: it is shown only this once." } " Hearth keeps only its SHA-256." }
        pre #key-secret { (secret) }
        p { "Applications send it as " code { "Authorization: Bearer KEY" } " to " code { "POST /v1/endpoints/NAME/predict" } "." }
        p { a href="/endpoints" { "Back to endpoints" } }
    };
    let mut resp = crate::pages::page_response(crate::pages::layout(
        "New endpoint API key",
        Some(&caller),
        &csrf.0,
        body,
    ));
    resp.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    resp
}

pub async fn page_revoke_key(
    State(app): State<Arc<App>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Response {
    match app
        .blocking(move |app| revoke_key(app, &caller.actor, &id))
        .await
    {
        Ok(_) => axum::response::Redirect::to("/endpoints").into_response(),
        Err(e) => crate::pages::error_page(&e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn served(seed: u64, version: u32) -> Arc<Served> {
        use hearth_ml::train::{ModelKind, TrainSpec, train};
        let frame = hearth_ml::synth::patient_risk(300, seed);
        let spec = TrainSpec {
            target: hearth_ml::synth::PATIENT_TARGET.into(),
            model: ModelKind::LogReg,
            features: Some(vec!["age".into(), "smoker".into()]),
            epochs: 2,
            seed,
            threads: 1,
            ..TrainSpec::default()
        };
        let model = train(&frame, &spec, &mut |_| std::ops::ControlFlow::Continue(()))
            .unwrap()
            .model;
        let inputs = serve::inputs(&model)
            .into_iter()
            .map(|(n, k)| (n.to_owned(), k))
            .collect();
        Arc::new(Served {
            work_per_row: work_per_row(&model),
            model,
            name: "m".into(),
            version,
            inputs,
        })
    }

    #[test]
    fn a_key_bucket_allows_a_second_of_requests_then_its_rate() {
        let buckets = Mutex::new(HashMap::new());
        let t0 = Instant::now();
        // A full second's worth at once, then nothing until it refills.
        for _ in 0..4 {
            take(&buckets, "k", 4, t0).unwrap();
        }
        let wait = take(&buckets, "k", 4, t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.25).abs() < 1e-9, "{wait:?}");
        // A quarter of a second later, one more; another key has its own bucket.
        take(&buckets, "k", 4, t0 + Duration::from_millis(250)).unwrap();
        take(&buckets, "k", 4, t0 + Duration::from_millis(250)).unwrap_err();
        take(&buckets, "other", 4, t0).unwrap();
        // A long pause refills to one second's worth, no more.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..4 {
            take(&buckets, "k", 4, later).unwrap();
        }
        take(&buckets, "k", 4, later).unwrap_err();
        // The wait rounds up to whole seconds in Retry-After.
        let e = ServiceError::rate_limited("x", Duration::from_millis(10));
        assert_eq!(
            (e.status, e.retry_after),
            (StatusCode::TOO_MANY_REQUESTS, Some(1))
        );
    }

    /// Requests waiting when the worker wakes run as one batch per version, and each gets the
    /// predictions of its own rows by the version it was sent to.
    #[test]
    fn queued_requests_batch_per_version_and_get_their_own_answers() {
        let (a, b) = (served(1, 1), served(2, 2));
        let (tx, rx) = mpsc::sync_channel(64);
        let mut waiting = Vec::new();
        for i in 0..30usize {
            // Versions in runs: 10 of a, 10 of b, 10 of a.
            let s = if (10..20).contains(&i) { &b } else { &a };
            #[allow(clippy::cast_precision_loss)]
            let rows: Vec<Vec<Cell>> = (0..1 + i % 3)
                .map(|j| {
                    vec![
                        Cell::Number(20.0 + (i * 3 + j) as f64),
                        Cell::Bool(j % 2 == 0),
                    ]
                })
                .collect();
            let (reply, answer) = oneshot::channel();
            tx.send(Work {
                served: Arc::clone(s),
                rows: rows.clone(),
                reply,
            })
            .unwrap();
            waiting.push((Arc::clone(s), rows, answer));
        }
        drop(tx);
        let stats = Mutex::new(Stats::default());
        let queued = AtomicUsize::new(30);
        worker(&rx, &stats, &queued);
        assert_eq!(
            queued.into_inner(),
            0,
            "every answered request leaves the count"
        );
        let stats = stats.into_inner().unwrap();
        assert_eq!(stats.batches, 3, "one batch per run of a version");
        assert_eq!(stats.rows, (0..30u64).map(|i| 1 + i % 3).sum::<u64>());
        for (s, rows, answer) in waiting {
            let out = answer.blocking_recv().unwrap().unwrap();
            assert_eq!(out.len(), rows.len());
            let mut p = s.model.predictor();
            for (row, pred) in rows.iter().zip(&out) {
                let values: Vec<_> = row.iter().map(Cell::as_value).collect();
                let alone = p.predict(&values).unwrap()[0];
                let batched = pred.probabilities.as_ref().unwrap()[1];
                assert!((alone - batched).abs() < 1e-6, "{alone} {batched}");
            }
        }
    }

    /// A lone small request is predicted inline with the same answer the worker gives; one that
    /// finds another predicting, requests queued, or too much work goes to the queue.
    #[test]
    fn inline_only_when_idle_and_small() {
        let eps = Endpoints::default();
        let s = served(3, 1);
        eps.set("e", Some(Arc::clone(&s)));
        let live = eps.live("e").unwrap();
        let rows = vec![vec![Cell::Number(61.0), Cell::Bool(true)]];
        let inline = predict_inline(&live, &s, &rows).unwrap().unwrap();
        let queued = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(queue(&live, &s, rows.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(inline, queued);
        assert_eq!(live.queued.load(Ordering::Acquire), 0);
        let stats = eps.stats("e").unwrap();
        assert_eq!((stats.batches, stats.rows), (2, 2));

        let held = live.inline.lock().unwrap();
        assert!(
            predict_inline(&live, &s, &rows).is_none(),
            "another predicts"
        );
        drop(held);
        live.queued.store(1, Ordering::Release);
        assert!(predict_inline(&live, &s, &rows).is_none(), "requests wait");
        live.queued.store(0, Ordering::Release);
        let many = vec![rows[0].clone(); INLINE_WORK / s.work_per_row + 1];
        assert!(predict_inline(&live, &s, &many).is_none(), "too much work");
        assert!(predict_inline(&live, &s, &many[..2]).is_some());
    }

    #[test]
    fn quantiles_come_from_the_histogram() {
        let s = Mutex::new(Stats::default());
        for _ in 0..98 {
            record(&s, 200, Duration::from_micros(80));
        }
        record(&s, 200, Duration::from_micros(600));
        record(&s, 422, Duration::from_millis(3));
        let s = s.into_inner().unwrap();
        assert_eq!(s.quantile(0.5), Some(0.0001));
        assert_eq!(s.quantile(0.99), Some(0.00075));
        assert_eq!(s.quantile(1.0), Some(0.005));
        assert_eq!(s.requests.get(&422), Some(&1));
        assert_eq!(Stats::default().quantile(0.5), None);
    }
}
