//! A small client for the appliance's JSON API (`/api/v1`), over the same TLS connection
//! `hearth verify` uses: any leaf certificate or only the pinned one (`--fingerprint`), handshake
//! signatures always checked under its key, the ring provider, hyper 1 over HTTP/1.1.
//!
//! What it does: JSON GET/POST/DELETE with `Authorization: Bearer`, an upload whose body is
//! streamed from a file in chunks (never the whole file in memory) with a progress callback,
//! bounded answers, and server-sent events read line by line ([`SseParser`]). Non-2xx answers
//! become [`ApiError::Status`] carrying the server's `{"error": "…"}` message.
//!
//! Not for: redirects, proxies, cookies, connection reuse (one connection per request: the CLI
//! makes a handful), HTTP/2.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use clap::Args;
use http_body_util::{BodyExt as _, Empty, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::{Method, StatusCode, header};
use ring::digest::{SHA256, digest};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;
use zeroize::Zeroizing;

use crate::fetch::{Target, TargetError, parse_fingerprint};

/// Connecting and the TLS handshake must finish within this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A JSON exchange (request and whole answer) must finish within this long.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest JSON answer read.
pub const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;
/// How much of an error answer is read for its message.
const MAX_ERROR_BYTES: usize = 64 * 1024;
/// Longest server-sent-events line, and largest event, accepted.
pub const MAX_SSE_LINE: usize = 1024 * 1024;
/// Upload chunk size: what is read from disk and handed to the connection at a time.
const UPLOAD_CHUNK: usize = 256 * 1024;
/// Longest server message printed (it comes from the network).
const MAX_MESSAGE_CHARS: usize = 500;

// ---------------------------------------------------------------------------------------------
// The TLS connection (shared with `hearth verify`).

/// A TLS connection to the appliance and the leaf certificate its handshake was signed under.
pub struct Connected {
    pub stream: TlsStream<Tcp>,
    /// The leaf certificate (DER).
    pub leaf: Vec<u8>,
}

/// Could not set up the TLS connection. Only [`ConnectError::FingerprintMismatch`] says the
/// appliance is not the one expected; the others say it could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("certificate fingerprint mismatch: expected {expected}, got {actual}")]
    FingerprintMismatch { expected: String, actual: String },
    #[error("cannot connect to {target}")]
    Connect {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS handshake with {target} failed")]
    Tls {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot set up TLS")]
    TlsConfig(#[source] rustls::Error),
    #[error("{target} presented no certificate")]
    NoCertificate { target: String },
}

/// Accepts any leaf certificate, or only the pinned one; always verifies handshake signatures
/// under the leaf's key, so whoever answers holds that certificate's private key.
#[derive(Debug)]
struct PinnedOrAny {
    pin: Option<[u8; 32]>,
    /// The fingerprint of a refused certificate, for the error message.
    refused: OnceLock<[u8; 32]>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedOrAny {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The name and chain do not matter: the appliance is self-signed, and what identifies it
        // is the pin (when given) and, for `hearth verify`, the attested key binding.
        let seen = sha256(end_entity.as_ref());
        match self.pin {
            Some(pin) if pin != seen => {
                let _ = self.refused.set(seen);
                Err(rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ApplicationVerificationFailure,
                ))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

/// Where a [`Tcp`] in upload mode keeps the write error it hid.
pub type WriteError = Arc<Mutex<Option<std::io::Error>>>;

/// The TCP connection under TLS. In upload mode (`hide_write_errors`) it goes on accepting
/// writes once the peer has stopped reading (it refused an upload part-way and closed), keeping
/// the error, so that the answer the appliance sent before closing is still read: HTTP/1.1
/// clients otherwise fail on the write and lose the reason.
pub struct Tcp {
    inner: TcpStream,
    hide_write_errors: Option<WriteError>,
}

impl Tcp {
    /// A write error that means the peer has gone: hidden in upload mode.
    fn hide(&self, result: std::io::Result<()>) -> std::io::Result<()> {
        match (result, &self.hide_write_errors) {
            (Err(e), Some(slot))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
                slot.get_or_insert(e);
                Ok(())
            }
            (result, _) => result,
        }
    }

    fn write_failed(&self) -> bool {
        self.hide_write_errors.as_ref().is_some_and(|slot| {
            slot.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_some()
        })
    }
}

impl AsyncRead for Tcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.write_failed() {
            return Poll::Ready(Ok(buf.len()));
        }
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(self.hide(Err(e)).map(|()| buf.len())),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.write_failed() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(result) => Poll::Ready(self.hide(result)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.write_failed() {
            return Poll::Ready(Ok(()));
        }
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(result) => Poll::Ready(self.hide(result)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Connects to `target` over TLS (HTTP/1.1 by ALPN), accepting any certificate or only `pin`.
pub async fn connect_tls(
    target: &Target,
    pin: Option<[u8; 32]>,
) -> Result<Connected, ConnectError> {
    connect(target, pin, None).await
}

/// [`connect_tls`], with write errors hidden into `write_error` once the peer has gone.
async fn connect(
    target: &Target,
    pin: Option<[u8; 32]>,
    hide_write_errors: Option<WriteError>,
) -> Result<Connected, ConnectError> {
    let name = target.to_string();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedOrAny {
        pin,
        refused: OnceLock::new(),
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(ConnectError::TlsConfig)?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let server_name = ServerName::try_from(target.host.clone()).map_err(|e| ConnectError::Tls {
        target: name.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;

    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ConnectError::Connect {
            target: name.clone(),
            source,
        })?;
    let tcp = Tcp {
        inner: tcp,
        hide_write_errors,
    };
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
        .map_err(|source| match (pin, verifier.refused.get()) {
            (Some(expected), Some(actual)) => ConnectError::FingerprintMismatch {
                expected: hex::encode(expected),
                actual: hex::encode(actual),
            },
            _ => ConnectError::Tls {
                target: name.clone(),
                source,
            },
        })?;
    // The leaf whose key signed this handshake.
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or(ConnectError::NoCertificate { target: name })?;
    Ok(Connected { stream, leaf })
}

// ---------------------------------------------------------------------------------------------
// Connection options shared by the operator verbs.

/// Where the appliance is and who is asking: `--url`, `--token`, `--fingerprint` (or their
/// `HEARTH_*` variables).
#[derive(Args, Debug, Clone, Default)]
pub struct Connection {
    /// The appliance's console, `https://HOST[:PORT]`.
    #[arg(
        long,
        global = true,
        env = "HEARTH_URL",
        value_name = "https://HOST:PORT"
    )]
    pub url: Option<String>,
    /// An API token from the console (`hth_…`), sent as `Authorization: Bearer`.
    #[arg(
        long,
        global = true,
        env = "HEARTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// SHA-256 of the console's TLS certificate (DER), 64 hex digits, colons and case ignored:
    /// any other certificate is refused. Without it any certificate is accepted (with a warning).
    #[arg(long, global = true, env = "HEARTH_FINGERPRINT", value_name = "SHA256")]
    pub fingerprint: Option<String>,
}

/// The command line cannot be used as given: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Connection {
    /// A client for these options, or a [`UsageError`] naming what is missing or malformed.
    pub fn client(&self) -> Result<Client, UsageError> {
        let url = self
            .url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| {
                UsageError(
                    "which appliance? pass --url https://HOST:PORT or set HEARTH_URL".to_owned(),
                )
            })?;
        let target: Target = url.parse().map_err(|e| match e {
            TargetError::PlainHttp(url) => UsageError(format!(
                "{url} is plain HTTP: refused, the appliance serves HTTPS only (use https://)"
            )),
            other => UsageError(format!("--url: {other}")),
        })?;
        let token = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                UsageError(
                    "no API token: pass --token hth_… or set HEARTH_TOKEN (create one in the \
                     console or with POST /api/v1/tokens)"
                        .to_owned(),
                )
            })?;
        if token.contains(|c: char| !c.is_ascii_graphic()) {
            return Err(UsageError(
                "the API token has spaces or characters outside printable ASCII".to_owned(),
            ));
        }
        let pin = self
            .fingerprint
            .as_deref()
            .filter(|f| !f.trim().is_empty())
            .map(parse_fingerprint)
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?;
        if pin.is_none() {
            eprintln!(
                "warning: {target}'s certificate is not pinned: pass --fingerprint (or set \
                 HEARTH_FINGERPRINT) so that your token goes to this appliance only"
            );
        }
        Ok(Client::new(target, pin, token))
    }
}

// ---------------------------------------------------------------------------------------------
// The client.

/// One appliance, one token.
pub struct Client {
    target: Target,
    pin: Option<[u8; 32]>,
    token: Zeroizing<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("target", &self.target)
            .field("pinned", &self.pin.is_some())
            .field("token", &"<redacted>")
            .finish()
    }
}

/// An API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The appliance could not be reached, or is not the one pinned.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("no answer from {target} within {} s", .timeout.as_secs())]
    Timeout { target: String, timeout: Duration },
    #[error("HTTP exchange with {target} failed")]
    Http {
        target: String,
        #[source]
        source: hyper::Error,
    },
    #[error("cannot build the request {path}")]
    Request {
        path: String,
        #[source]
        source: hyper::http::Error,
    },
    /// The appliance said no: its own message, then the status.
    #[error("{message} ({status})")]
    Status { status: StatusCode, message: String },
    #[error("the answer from {target} is larger than {limit} bytes")]
    TooLarge { target: String, limit: usize },
    #[error("reading the answer from {target} failed")]
    Body {
        target: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{target} answered {path} with JSON this hearth does not understand")]
    Json {
        target: String,
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot read {}", .path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{target} closed the connection part-way through the upload, without an answer")]
    UploadCut {
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the event stream from {target} is malformed")]
    Events {
        target: String,
        #[source]
        source: SseError,
    },
}

impl ApiError {
    /// The appliance could not be reached at all (nothing was said): connection, TLS, time-out.
    pub fn is_unreachable(&self) -> bool {
        match self {
            ApiError::Connect(ConnectError::FingerprintMismatch { .. }) => false,
            ApiError::Connect(_) | ApiError::Timeout { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status the appliance answered with, if it answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A request body: empty, JSON, or streamed from a file.
type RequestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// An answer whose head has arrived; the connection is driven until it is dropped.
struct Answer {
    response: hyper::Response<Incoming>,
    driver: JoinHandle<()>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Client {
    pub fn new(target: Target, pin: Option<[u8; 32]>, token: &str) -> Client {
        Client {
            target,
            pin,
            token: Zeroizing::new(token.to_owned()),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// `GET path` → the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.json_call(Method::GET, path, None).await
    }

    /// `POST path` with `body` as JSON → the JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ApiError> {
        let bytes = serde_json::to_vec(body).map_err(|source| ApiError::Json {
            target: self.target.to_string(),
            path: path.to_owned(),
            source,
        })?;
        self.json_call(Method::POST, path, Some(bytes)).await
    }

    /// `POST path` with an empty body → the answer's bytes as they are (at most `limit`), for
    /// downloads such as model bundles.
    pub async fn post_bytes(&self, path: &str, limit: usize) -> Result<Vec<u8>, ApiError> {
        let exchange = async {
            let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
            let answer = self
                .send_with(Method::POST, path, None, body, "*/*", None)
                .await?;
            let answer = self.check_status(answer).await?;
            self.read_body(answer, limit).await
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout {
                target: self.target.to_string(),
                timeout: ANSWER_TIMEOUT,
            }),
        }
    }

    /// `DELETE path`; the JSON answer, or `null` for 204.
    #[allow(dead_code)] // the client is complete; no verb deletes anything yet
    pub async fn delete(&self, path: &str) -> Result<serde_json::Value, ApiError> {
        self.json_call(Method::DELETE, path, None).await
    }

    async fn json_call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<T, ApiError> {
        let exchange = async {
            let body = match json {
                Some(bytes) => Full::new(Bytes::from(bytes))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
                None => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            };
            let content_type = matches!(method, Method::POST).then_some("application/json");
            let answer = self.send(method, path, content_type, body).await?;
            self.read_json(answer, path).await
        };
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Timeout {
                target: self.target.to_string(),
                timeout: ANSWER_TIMEOUT,
            }),
        }
    }

    /// `POST path` with the file at `file` as the body, read from disk in chunks as the
    /// connection takes them; `progress` hears the bytes handed over so far. A regular file is
    /// sent with its length; anything else (a pipe) chunked.
    pub async fn upload<T: DeserializeOwned>(
        &self,
        path: &str,
        file: &Path,
        content_type: &str,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<T, ApiError> {
        let file_error = |source| ApiError::File {
            path: file.to_owned(),
            source,
        };
        let handle = std::fs::File::open(file).map_err(file_error)?;
        let meta = handle.metadata().map_err(file_error)?;
        if meta.is_dir() {
            return Err(file_error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "it is a directory",
            )));
        }
        let len = meta.is_file().then_some(meta.len());
        let body = FileBody::spawn(handle, len, Box::new(progress)).boxed_unsync();
        // The appliance may refuse the file part-way (a malformed row) and close: its answer is
        // read all the same, and only without one does the cut connection become the error.
        let write_error = WriteError::default();
        let exchange = async {
            let answer = self
                .send_with(
                    Method::POST,
                    path,
                    Some(content_type),
                    body,
                    "application/json",
                    Some(write_error.clone()),
                )
                .await?;
            // The upload itself may take as long as it takes.
            self.read_json(answer, path).await
        };
        match exchange.await {
            Err(e @ (ApiError::Http { .. } | ApiError::Body { .. })) => match cut(&write_error) {
                Some(source) => Err(ApiError::UploadCut {
                    target: self.target.to_string(),
                    source,
                }),
                None => Err(e),
            },
            other => other,
        }
    }

    /// `GET path` as server-sent events: the stream of events until the server closes it.
    pub async fn events(&self, path: &str) -> Result<EventStream, ApiError> {
        let body = Empty::new().map_err(|never| match never {}).boxed_unsync();
        let send = self.send_with(Method::GET, path, None, body, "text/event-stream", None);
        let answer = match tokio::time::timeout(CONNECT_TIMEOUT * 2, send).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(ApiError::Timeout {
                    target: self.target.to_string(),
                    timeout: CONNECT_TIMEOUT * 2,
                });
            }
        };
        let answer = self.check_status(answer).await?;
        Ok(EventStream {
            answer,
            parser: SseParser::default(),
            ready: VecDeque::new(),
            target: self.target.to_string(),
            done: false,
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
    ) -> Result<Answer, ApiError> {
        self.send_with(method, path, content_type, body, "application/json", None)
            .await
    }

    /// Connects and sends one request; `hide_write_errors` for uploads (see [`Tcp`]).
    async fn send_with(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: RequestBody,
        accept: &str,
        hide_write_errors: Option<WriteError>,
    ) -> Result<Answer, ApiError> {
        let target = self.target.to_string();
        let connected = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            connect(&self.target, self.pin, hide_write_errors),
        )
        .await
        {
            Ok(connected) => connected?,
            Err(_) => {
                return Err(ApiError::Timeout {
                    target,
                    timeout: CONNECT_TIMEOUT,
                });
            }
        };
        let http = |source| ApiError::Http {
            target: target.clone(),
            source,
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(connected.stream))
                .await
                .map_err(http)?;
        let driver = tokio::spawn(async move {
            // Its errors reach the request or the body being read.
            let _ = connection.await;
        });
        let mut authorization = header::HeaderValue::try_from(format!("Bearer {}", *self.token))
            .map_err(|e| ApiError::Request {
                path: path.to_owned(),
                source: e.into(),
            })?;
        authorization.set_sensitive(true);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.target.authority)
            .header(header::CONNECTION, "close")
            .header(header::ACCEPT, accept)
            .header(header::AUTHORIZATION, authorization)
            .header(
                header::USER_AGENT,
                concat!("hearth/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(body).map_err(|source| ApiError::Request {
            path: path.to_owned(),
            source,
        })?;
        let sent = sender.send_request(request).await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                driver.abort();
                return Err(http(e));
            }
        };
        Ok(Answer { response, driver })
    }

    /// Passes a 2xx answer through; anything else becomes [`ApiError::Status`].
    async fn check_status(&self, answer: Answer) -> Result<Answer, ApiError> {
        let status = answer.response.status();
        if status.is_success() {
            return Ok(answer);
        }
        let body = self
            .read_body(answer, MAX_ERROR_BYTES)
            .await
            .unwrap_or_default();
        Err(ApiError::Status {
            status,
            message: error_message(status, &body),
        })
    }

    async fn read_json<T: DeserializeOwned>(
        &self,
        answer: Answer,
        path: &str,
    ) -> Result<T, ApiError> {
        let answer = self.check_status(answer).await?;
        let no_content = answer.response.status() == StatusCode::NO_CONTENT;
        let body = self.read_body(answer, MAX_JSON_BYTES).await?;
        let body = if no_content || body.iter().all(u8::is_ascii_whitespace) {
            b"null".to_vec()
        } else {
            body
        };
        serde_json::from_slice(&body).map_err(|source| ApiError::Json {
            target: self.target.to_string(),
            path: path.to_owned(),
            source,
        })
    }

    async fn read_body(&self, mut answer: Answer, limit: usize) -> Result<Vec<u8>, ApiError> {
        match Limited::new(answer.response.body_mut(), limit)
            .collect()
            .await
        {
            Ok(collected) => Ok(collected.to_bytes().to_vec()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge {
                target: self.target.to_string(),
                limit,
            }),
            Err(source) => Err(ApiError::Body {
                target: self.target.to_string(),
                source,
            }),
        }
    }
}

/// The write error an upload connection hid, if any.
fn cut(write_error: &WriteError) -> Option<std::io::Error> {
    write_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
}

/// The message of an error answer: the `error` field of `{"error": "…"}`, else the body's first
/// line, else the status's reason; printable and short (it comes from the network).
pub fn error_message(status: StatusCode, body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    let text = match from_json {
        Some(message) => message,
        None => String::from_utf8_lossy(body)
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or_default()
            .to_owned(),
    };
    let text = text.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no message")
            .to_lowercase();
    }
    printable(text, MAX_MESSAGE_CHARS)
}

/// `text` with control characters replaced and cut to `max` characters (marked with `…`).
pub fn printable(text: &str, max: usize) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(max)
        .collect();
    if text.chars().count() > max {
        clean.push('…');
    }
    clean
}

/// Percent-encodes one path segment or query value (everything but `A-Za-z0-9-._~`).
pub fn encode(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    for b in component.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Streaming a file as the request body.

type Progress = Box<dyn FnMut(u64) + Send>;

/// A request body read from a file on a blocking thread, a few chunks ahead of the connection.
struct FileBody {
    chunks: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    len: Option<u64>,
    sent: u64,
    progress: Progress,
}

impl FileBody {
    fn spawn(mut file: std::fs::File, len: Option<u64>, progress: Progress) -> FileBody {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::task::spawn_blocking(move || {
            let mut total = 0u64;
            loop {
                let mut buf = vec![0u8; UPLOAD_CHUNK];
                let mut filled = 0;
                while filled < buf.len() {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return;
                        }
                    }
                }
                if filled == 0 {
                    break;
                }
                total += filled as u64;
                if len.is_some_and(|len| total > len) {
                    let _ = tx.blocking_send(Err(std::io::Error::other(
                        "the file grew while it was being uploaded",
                    )));
                    return;
                }
                buf.truncate(filled);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    // The connection is gone; its error is what the caller sees.
                    return;
                }
            }
            if len.is_some_and(|len| total < len) {
                let _ = tx.blocking_send(Err(std::io::Error::other(
                    "the file shrank while it was being uploaded",
                )));
            }
        });
        FileBody {
            chunks: rx,
            len,
            sent: 0,
            progress,
        }
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = &mut *self;
        match this.chunks.poll_recv(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.sent += chunk.len() as u64;
                (this.progress)(this.sent);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.len == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.len {
            Some(len) => SizeHint::with_exact(len),
            None => SizeHint::default(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server-sent events.

/// One server-sent event: its type (`message` when the server named none) and its data (lines
/// joined with `\n`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The event stream broke the limits this reader keeps.
#[derive(Debug, thiserror::Error)]
pub enum SseError {
    #[error("a line is longer than {MAX_SSE_LINE} bytes")]
    LineTooLong,
    #[error("an event is larger than {MAX_SSE_LINE} bytes")]
    EventTooLarge,
}

/// Splits a `text/event-stream` body into events, as the WHATWG specification reads it: lines
/// end in CR, LF or CRLF (also across chunks); `field: value` with one leading space dropped;
/// `data` lines accumulate; lines starting with `:` are comments (keep-alives); an empty line
/// dispatches the event, unless it carried no data. `id` and `retry` are ignored.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    event: String,
    data: String,
}

impl SseParser {
    /// Feeds bytes; returns the events they completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        for &b in bytes {
            if std::mem::take(&mut self.after_cr) && b == b'\n' {
                continue;
            }
            match b {
                b'\n' => self.end_line(&mut out)?,
                b'\r' => {
                    self.end_line(&mut out)?;
                    self.after_cr = true;
                }
                _ => {
                    if self.line.len() >= MAX_SSE_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(out)
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let mut data = std::mem::take(&mut self.data);
            if !data.is_empty() {
                data.pop(); // the newline after the last data line
                out.push(SseEvent {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data,
                });
            }
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(()); // a comment: keep-alive
        }
        let line = String::from_utf8_lossy(&line);
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_ref(), ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if self.data.len() + value.len() >= MAX_SSE_LINE {
                    return Err(SseError::EventTooLarge);
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            _ => {} // id, retry and unknown fields
        }
        Ok(())
    }
}

/// Events from `GET …/events`, read as they arrive.
pub struct EventStream {
    answer: Answer,
    parser: SseParser,
    ready: VecDeque<SseEvent>,
    target: String,
    done: bool,
}

impl EventStream {
    /// The next event, or `None` once the server has closed the stream (an event left
    /// unfinished at the end is dropped, as the specification says).
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ApiError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            if self.done {
                return Ok(None);
            }
            match self.answer.response.body_mut().frame().await {
                None => self.done = true,
                Some(Err(source)) => {
                    return Err(ApiError::Http {
                        target: self.target.clone(),
                        source,
                    });
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        let events =
                            self.parser.push(&data).map_err(|source| ApiError::Events {
                                target: self.target.clone(),
                                source,
                            })?;
                        self.ready.extend(events);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend(parser.push(chunk).unwrap());
        }
        out
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
        }
    }

    #[test]
    fn sse_events_are_split_on_blank_lines_with_their_types() {
        let got = events(&[b"event: snapshot\ndata: {\"a\":1}\n\nevent: progress\ndata: 2\n\n"]);
        assert_eq!(got, vec![ev("snapshot", "{\"a\":1}"), ev("progress", "2")]);
    }

    #[test]
    fn sse_multi_line_data_is_joined_with_newlines() {
        let got = events(&[b"data: first\ndata:second\ndata:  third\ndata\n\n"]);
        assert_eq!(got, vec![ev("message", "first\nsecond\n third\n")]);
    }

    #[test]
    fn sse_comments_and_keep_alives_are_ignored() {
        let got = events(&[
            b": keep-alive\n\n",
            b":\n",
            b"id: 7\nretry: 1000\nevent: state\n: between\ndata: done\n\n",
        ]);
        assert_eq!(got, vec![ev("state", "done")]);
    }

    #[test]
    fn sse_events_without_data_are_not_dispatched_and_reset_the_type() {
        let got = events(&[b"event: lonely\n\ndata: x\n\n"]);
        assert_eq!(got, vec![ev("message", "x")]);
    }

    #[test]
    fn sse_lines_end_in_cr_lf_or_crlf_even_across_chunks() {
        let got = events(&[
            b"event: a\r\ndata: 1\r",
            b"\n\r",
            b"\n",
            b"event: b\rdata: 2\r\r",
            b"data: 3\n",
            b"\n",
        ]);
        assert_eq!(got, vec![ev("a", "1"), ev("b", "2"), ev("message", "3")]);
    }

    #[test]
    fn sse_an_event_split_byte_by_byte_still_parses() {
        let text = b"event: progress\ndata: {\"epoch\":1}\n\n";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(events(&chunks), vec![ev("progress", "{\"epoch\":1}")]);
    }

    #[test]
    fn sse_an_unfinished_event_is_held_back() {
        let mut parser = SseParser::default();
        assert!(parser.push(b"data: half").unwrap().is_empty());
        assert!(parser.push(b"\n").unwrap().is_empty());
        assert_eq!(parser.push(b"\n").unwrap(), vec![ev("message", "half")]);
    }

    #[test]
    fn sse_lines_are_bounded() {
        let mut parser = SseParser::default();
        let long = vec![b'x'; MAX_SSE_LINE + 1];
        assert!(matches!(parser.push(&long), Err(SseError::LineTooLong)));
        let mut parser = SseParser::default();
        let half = format!("data: {}\n", "y".repeat(MAX_SSE_LINE / 2 + 1));
        parser.push(half.as_bytes()).unwrap();
        assert!(matches!(
            parser.push(half.as_bytes()),
            Err(SseError::EventTooLarge)
        ));
    }

    #[test]
    fn error_messages_come_from_the_error_field() {
        let status = StatusCode::UNAUTHORIZED;
        assert_eq!(
            error_message(status, br#"{"error":"invalid API token"}"#),
            "invalid API token"
        );
        assert_eq!(error_message(status, b"\n  plain text\nmore"), "plain text");
        assert_eq!(error_message(status, b""), "unauthorized");
        assert_eq!(error_message(status, br#"{"error":""}"#), "unauthorized");
        assert_eq!(
            error_message(status, br#"{"error":"a\u001b[31mb"}"#),
            "a?[31mb"
        );
        assert_eq!(
            error_message(status, br#"{"other":1}"#),
            r#"{"other":1}"#,
            "JSON without an error field is quoted as text"
        );
        let long = format!(r#"{{"error":"{}"}}"#, "z".repeat(2000));
        assert_eq!(
            error_message(status, long.as_bytes()).chars().count(),
            MAX_MESSAGE_CHARS + 1
        );
        let err = ApiError::Status {
            status,
            message: "invalid API token".into(),
        };
        assert_eq!(err.to_string(), "invalid API token (401 Unauthorized)");
        assert!(!err.is_unreachable());
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode("sales-2024.v_1~"), "sales-2024.v_1~");
        assert_eq!(encode("a b/c?d&e=é"), "a%20b%2Fc%3Fd%26e%3D%C3%A9");
    }

    fn conn(url: Option<&str>, token: Option<&str>, fp: Option<&str>) -> Connection {
        Connection {
            url: url.map(Into::into),
            token: token.map(Into::into),
            fingerprint: fp.map(Into::into),
        }
    }

    #[test]
    fn connection_options_are_checked_before_connecting() {
        let fp = "ab".repeat(32);
        let client = conn(Some("https://box:8443"), Some("hth_a_b"), Some(&fp))
            .client()
            .unwrap();
        assert_eq!(client.target().to_string(), "https://box:8443");
        assert!(!format!("{client:?}").contains("hth_a_b"));

        let err = |c: Connection| c.client().unwrap_err().to_string();
        assert!(err(conn(None, Some("t"), None)).contains("--url"));
        assert!(err(conn(Some("https://box"), None, None)).contains("--token"));
        assert!(err(conn(Some("http://box"), Some("t"), None)).contains("HTTPS only"));
        assert!(err(conn(Some("box:1"), Some("t"), None)).contains("https://"));
        assert!(err(conn(Some("https://box"), Some("t"), Some("zz"))).contains("hex"));
        assert!(err(conn(Some("https://box"), Some("a b"), None)).contains("printable"));
    }

    #[test]
    fn unreachable_is_told_apart_from_a_refusal() {
        let connect = ApiError::Connect(ConnectError::Connect {
            target: "https://box".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        });
        assert!(connect.is_unreachable());
        let pin = ApiError::Connect(ConnectError::FingerprintMismatch {
            expected: "a".into(),
            actual: "b".into(),
        });
        assert!(!pin.is_unreachable());
        assert_eq!(
            pin.to_string(),
            "certificate fingerprint mismatch: expected a, got b"
        );
    }

    #[tokio::test]
    async fn file_bodies_stream_the_whole_file_in_chunks_with_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        let content: Vec<u8> = (0..UPLOAD_CHUNK * 2 + 123)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        std::fs::write(&path, &content).unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let body = FileBody::spawn(
            std::fs::File::open(&path).unwrap(),
            Some(content.len() as u64),
            Box::new(move |n| log.lock().unwrap().push(n)),
        );
        assert_eq!(body.size_hint().exact(), Some(content.len() as u64));
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.as_ref(), content.as_slice());
        let seen = seen.lock().unwrap().clone();
        let len = content.len() as u64;
        let chunk = UPLOAD_CHUNK as u64;
        assert_eq!(seen, vec![chunk, 2 * chunk, len]);
    }

    #[tokio::test]
    async fn a_file_that_shrinks_fails_the_upload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.csv");
        std::fs::write(&path, b"a,b\n1,2\n").unwrap();
        let body = FileBody::spawn(
            std::fs::File::open(&path).unwrap(),
            Some(100),
            Box::new(|_| {}),
        );
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("shrank"), "{err}");
    }
}
