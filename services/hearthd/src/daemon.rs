//! Start-up, serving and shutdown: TPM -> unseal (or first-boot provisioning) -> store ->
//! audit -> console over TLS, until SIGTERM or SIGINT.

use std::future::Future;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use hearth_console::{Actor, App, ClientAddr, ConsoleConfig, service};
use hearth_store::{KeySource, Store, StoreOptions, StoreState};
use hearth_tpm::TpmHandle;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::Checked;
use crate::tls;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines for the operator on stdout (not the log: they carry one-time secrets).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What a started daemon tells whoever embeds it (tests, benchmarks).
#[derive(Clone, Debug)]
pub struct Ready {
    /// The address the console listens on (useful with port 0).
    pub addr: std::net::SocketAddr,
    /// SHA-256 of the console certificate.
    pub cert_sha256: [u8; 32],
    /// The one-time setup code, if the appliance is unclaimed.
    pub setup_code: Option<String>,
    /// The console's shared state, for embedders that look inside (tests).
    pub app: Arc<App>,
}

/// Runs hearthd until `shutdown` resolves; `ready` hears once it is serving.
pub async fn run(
    checked: Checked,
    shutdown: impl Future<Output = ()>,
    ready: Option<tokio::sync::oneshot::Sender<Ready>>,
) -> anyhow::Result<()> {
    let config = &checked.config;
    tracing::info!(
        profile = config.profile.as_str(),
        tpm = %checked.tpm.transport,
        data_dir = %config.data_dir.display(),
        "hearthd starting"
    );

    // 1. The TPM.
    let tpm = TpmHandle::open(checked.tpm.clone())
        .await
        .with_context(|| format!("cannot open the TPM at {}", checked.tpm.transport))?;
    if tpm.info().software {
        if config.profile == crate::config::Profile::Production {
            bail!(
                "the TPM at {} is a software TPM; the production profile refuses it",
                checked.tpm.transport
            );
        }
        tracing::warn!("software TPM: no hardware root of trust (dev profile)");
    }
    // The attestation key exists (created and persisted on first use) before anyone asks.
    tpm.ak_public()
        .await
        .context("cannot create or load the attestation key")?;

    // 2. The store: unseal, or provision on first boot.
    let store_dir = config.data_dir.join("store");
    let seal_pcrs = checked.seal_pcrs.clone();
    let options = StoreOptions::default();
    let (store, recovery) = if Store::exists(&store_dir) {
        let dir = store_dir.clone();
        let store = tpm
            .call(move |tpm| {
                Ok(Store::open(
                    &dir,
                    KeySource::Tpm {
                        tpm,
                        seal_pcrs: &seal_pcrs,
                    },
                    &options,
                ))
            })
            .await?
            .with_context(|| format!("cannot open the store in {}", store_dir.display()))?;
        (store, None)
    } else {
        tracing::info!(dir = %store_dir.display(), "first boot: creating the root secret and the store");
        let dir = store_dir.clone();
        let (store, key) = tpm
            .call(move |tpm| {
                Ok(Store::create(
                    &dir,
                    KeySource::Tpm {
                        tpm,
                        seal_pcrs: &seal_pcrs,
                    },
                    &options,
                ))
            })
            .await?
            .with_context(|| format!("cannot create the store in {}", store_dir.display()))?;
        (store, Some(key))
    };
    let store = Arc::new(store);
    if let Some(key) = &recovery {
        say("");
        say("RECOVERY KEY (shown once; write it down and keep it offline):");
        say(&format!("  {}", key.to_display_string().as_str()));
        say("It opens the store if the measurements change (an update, a firmware change).");
        say("");
    }
    drop(recovery);

    // 3. The console's TLS identity.
    let names = &config.console.server_names;
    let tls = match store.state() {
        StoreState::Open => {
            let (tls, made) = tls::load_or_create(&store, names).context("console TLS identity")?;
            if made {
                tracing::info!("made the console's TLS key and certificate");
            }
            tls
        }
        StoreState::Locked { reason } => {
            tracing::warn!(%reason, "store is LOCKED: serving with a temporary TLS key; the recovery key unlocks");
            say(&format!("STORE LOCKED: {reason}"));
            tls::ephemeral(names).context("temporary TLS identity")?
        }
    };
    let _ = std::fs::create_dir_all(&config.data_dir);
    let cert_path = config.data_dir.join("console-cert.pem");
    if let Err(e) = std::fs::write(&cert_path, &tls.cert_pem) {
        tracing::warn!(path = %cert_path.display(), error = %e, "cannot write the certificate copy");
    }

    // 4. The console (opens the audit journal when the store is open).
    let console = ConsoleConfig {
        session_ttl: Duration::from_secs(config.console.session_ttl_secs),
        attest_pcrs: checked.attest_pcrs.clone(),
        seal_pcrs: checked.seal_pcrs.clone(),
        eventlog: config.attestation.eventlog.clone(),
        runtime_log: config.attestation.runtime_log.clone(),
        audit_path: config.data_dir.join("audit.jsonl"),
        profile: config.profile.as_str().to_owned(),
        compute: config.compute.backend,
        egress: config.egress.clone(),
    };
    let app = App::new(console, Arc::clone(&store), tpm, tls.identity.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut setup_code = None;
    if matches!(store.state(), StoreState::Open) {
        let app2 = Arc::clone(&app);
        tokio::task::spawn_blocking(move || {
            app2.audited(
                &Actor::system(),
                "system.start",
                env!("CARGO_PKG_VERSION"),
                || Ok(()),
            )
        })
        .await?
        .map_err(|e| anyhow::anyhow!(e.message))?;
        let app2 = Arc::clone(&app);
        setup_code = tokio::task::spawn_blocking(move || service::issue_setup_code(&app2))
            .await?
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if let Some(code) = &setup_code {
            say(&format!(
                "SETUP CODE (one-time; claims this appliance at /setup): {code}"
            ));
        }
    }

    // 5. Serve.
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr()?;
    say(&format!(
        "certificate SHA-256: {}",
        hex::encode(tls.identity.cert_sha256)
    ));
    say(&format!("console: https://{local}/"));
    tracing::info!(%local, "serving the console");
    if let Some(tx) = ready {
        let _ = tx.send(Ready {
            addr: local,
            cert_sha256: tls.identity.cert_sha256,
            setup_code,
            app: Arc::clone(&app),
        });
    }
    serve(
        listener,
        TlsAcceptor::from(Arc::clone(&tls.server)),
        hearth_console::router(Arc::clone(&app)),
        config.console.max_connections,
        shutdown,
    )
    .await;

    if matches!(store.state(), StoreState::Open) {
        let app2 = Arc::clone(&app);
        let _ = tokio::task::spawn_blocking(move || {
            app2.audited(&Actor::system(), "system.stop", "", || Ok(()))
        })
        .await;
    }
    tracing::info!("hearthd stopped");
    Ok(())
}

async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = Arc::clone(&slots).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let service =
                router.map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: draining requests in flight");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn signals() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop hearthd with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
    }
}
