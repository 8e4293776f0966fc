//! `hearth verify https://HOST:PORT`: fetches fresh evidence from a running appliance over TLS.
//!
//! The appliance serves a self-signed certificate, so no CA vouches for it. What ties the TLS
//! endpoint to the attested machine is the evidence itself: its quote binds the SHA-256 of the
//! SubjectPublicKeyInfo the console serves with (`tls_spki_sha256`). This module connects,
//! accepts any leaf certificate (or only the one `--fingerprint` pins), still checks every
//! handshake signature under that certificate's key (so the peer holds its private key), asks for
//! evidence over a fresh nonce and returns it with the certificate and SPKI digests the connection
//! actually used. The binding itself is judged in [`binding_check`]; the evidence is judged by
//! `hearth_attest::verify` as for files.
//!
//! Not for: HTTP in general. One GET, HTTP/1.1, no redirects, no proxies, a bounded body.

use std::fmt;
use std::time::Duration;

use hearth_attest::evidence::{Evidence, MAX_EVIDENCE_BYTES};
use hearth_attest::verify::{Check, Claim, Finding, Outcome};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Bytes;
use hyper::{StatusCode, header};
use ring::rand::{SecureRandom as _, SystemRandom};

use crate::api::{ConnectError, Connected, connect_tls, sha256};

/// Length of the nonce `hearth verify` sends.
pub const NONCE_LEN: usize = 32;
/// The appliance's evidence endpoint; the nonce goes in the query.
pub const ATTESTATION_PATH: &str = "/api/v1/attestation";
/// How much of an error answer's body is read to quote its first line.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A running appliance: `https://HOST[:PORT]` (IPv6 literals in brackets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
    /// `host[:port]` as given, for the Host header.
    pub authority: String,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "https://{}", self.authority)
    }
}

/// A TARGET that is not `https://HOST[:PORT]`.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{0} is plain HTTP: refused, because the TLS key of the connection is what the evidence \
         binds; use https://"
    )]
    PlainHttp(String),
    #[error("{0} is not an https:// URL (expected https://HOST[:PORT])")]
    NotHttps(String),
    #[error("{0} has no host (expected https://HOST[:PORT])")]
    NoHost(String),
    #[error("{url} has an invalid port {port:?} (expected 1-65535)")]
    BadPort { url: String, port: String },
    #[error("{0} has a path, query or user info: give only https://HOST[:PORT]")]
    Extra(String),
}

impl std::str::FromStr for Target {
    type Err = TargetError;

    fn from_str(text: &str) -> Result<Target, TargetError> {
        let url = text.trim();
        let owned = || url.to_owned();
        let scheme_end = url
            .find("://")
            .ok_or_else(|| TargetError::NotHttps(owned()))?;
        let scheme = &url[..scheme_end];
        if scheme.eq_ignore_ascii_case("http") {
            return Err(TargetError::PlainHttp(owned()));
        }
        if !scheme.eq_ignore_ascii_case("https") {
            return Err(TargetError::NotHttps(owned()));
        }
        let rest = &url[scheme_end + 3..];
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() {
            return Err(TargetError::NoHost(owned()));
        }
        if authority.contains(['/', '?', '#', '@']) || authority.contains(char::is_whitespace) {
            return Err(TargetError::Extra(owned()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| TargetError::NoHost(owned()))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(TargetError::Extra(owned())),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() || host.contains(['[', ']', ':']) && !authority.starts_with('[') {
            return Err(TargetError::NoHost(owned()));
        }
        let port = match port {
            None => 443,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n != 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(TargetError::BadPort {
                        url: owned(),
                        port: p.to_owned(),
                    });
                }
            },
        };
        Ok(Target {
            host: host.to_owned(),
            port,
            authority: authority.to_owned(),
        })
    }
}

/// Parses `--fingerprint`: SHA-256 as 64 hex digits, colons and case ignored.
pub fn parse_fingerprint(text: &str) -> anyhow::Result<[u8; 32]> {
    let digits: String = text.trim().chars().filter(|&c| c != ':').collect();
    let bytes = hex::decode(&digits).map_err(|_| {
        anyhow::anyhow!("--fingerprint is not hex (expected 64 hex digits, colons allowed)")
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        anyhow::anyhow!(
            "--fingerprint must be a SHA-256 digest (64 hex digits), not {} bytes",
            bytes.len()
        )
    })
}

/// A fresh random nonce from the operating system's CSPRNG.
pub fn fresh_nonce() -> anyhow::Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(nonce)
}

/// What one exchange with the appliance produced.
#[derive(Debug)]
pub struct Fetched {
    /// The response body, exactly as received (at most [`MAX_EVIDENCE_BYTES`]).
    pub body: Vec<u8>,
    /// SHA-256 of the leaf certificate (DER) the connection used.
    pub certificate_sha256: [u8; 32],
    /// SHA-256 of that certificate's SubjectPublicKeyInfo (DER): what evidence binds.
    pub spki_sha256: [u8; 32],
}

/// The exchange failed; only [`FetchError::FingerprintMismatch`] is a trust failure, the rest
/// mean "could not verify".
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
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
    #[error("the certificate {target} presented does not parse")]
    Certificate {
        target: String,
        #[source]
        source: x509_parser::nom::Err<x509_parser::error::X509Error>,
    },
    #[error("HTTP exchange with {target} failed")]
    Http {
        target: String,
        #[source]
        source: hyper::Error,
    },
    #[error("cannot build the request to {target}")]
    Request {
        target: String,
        #[source]
        source: hyper::http::Error,
    },
    #[error("{target} answered {status}: {first_line}")]
    Status {
        target: String,
        status: StatusCode,
        first_line: String,
    },
    #[error("the answer from {target} is larger than {MAX_EVIDENCE_BYTES} bytes")]
    TooLarge { target: String },
    #[error("reading the answer from {target} failed: {reason}")]
    Body { target: String, reason: String },
    #[error("no complete answer from {target} within {} s", .timeout.as_secs_f64())]
    Timeout { target: String, timeout: Duration },
}

impl From<ConnectError> for FetchError {
    fn from(e: ConnectError) -> FetchError {
        match e {
            ConnectError::FingerprintMismatch { expected, actual } => {
                FetchError::FingerprintMismatch { expected, actual }
            }
            ConnectError::Connect { target, source } => FetchError::Connect { target, source },
            ConnectError::Tls { target, source } => FetchError::Tls { target, source },
            ConnectError::TlsConfig(source) => FetchError::TlsConfig(source),
            ConnectError::NoCertificate { target } => FetchError::NoCertificate { target },
        }
    }
}

/// SHA-256 of a certificate's SubjectPublicKeyInfo (DER), as evidence's `tls_spki_sha256`.
pub fn spki_sha256(
    certificate_der: &[u8],
) -> Result<[u8; 32], x509_parser::nom::Err<x509_parser::error::X509Error>> {
    let (_, cert) = x509_parser::parse_x509_certificate(certificate_der)?;
    Ok(sha256(cert.tbs_certificate.subject_pki.raw))
}

/// Connects to `target`, asks for evidence over `nonce` and returns the body with the digests of
/// the certificate and key the connection used. The whole exchange is bounded by `timeout`.
pub async fn fetch_evidence(
    target: &Target,
    nonce: &[u8],
    pin: Option<[u8; 32]>,
    timeout: Duration,
) -> Result<Fetched, FetchError> {
    match tokio::time::timeout(timeout, exchange(target, nonce, pin)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            target: target.to_string(),
            timeout,
        }),
    }
}

async fn exchange(
    target: &Target,
    nonce: &[u8],
    pin: Option<[u8; 32]>,
) -> Result<Fetched, FetchError> {
    let name = target.to_string();
    // `leaf`: the certificate whose key signed this handshake, the one the evidence must bind.
    let Connected { stream: tls, leaf } = connect_tls(target, pin).await?;
    let certificate_sha256 = sha256(&leaf);
    let spki_sha256 = spki_sha256(&leaf).map_err(|source| FetchError::Certificate {
        target: name.clone(),
        source,
    })?;

    let http = |source| FetchError::Http {
        target: name.clone(),
        source,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(http)?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get(format!("{ATTESTATION_PATH}?nonce={}", hex::encode(nonce)))
        .header(header::HOST, &target.authority)
        .header(header::CONNECTION, "close")
        .header(header::ACCEPT, "application/json")
        .header(
            header::USER_AGENT,
            concat!("hearth/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|source| FetchError::Request {
            target: name.clone(),
            source,
        })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    let result = if status == StatusCode::OK {
        read_body(response.into_body(), MAX_EVIDENCE_BYTES, &name)
            .await
            .map(|body| Fetched {
                body,
                certificate_sha256,
                spki_sha256,
            })
    } else {
        let body = read_body(response.into_body(), MAX_ERROR_BODY, &name)
            .await
            .unwrap_or_default();
        Err(FetchError::Status {
            target: name.clone(),
            status,
            first_line: first_line(&body),
        })
    };
    driver.abort();
    result
}

async fn read_body(
    body: hyper::body::Incoming,
    limit: usize,
    target: &str,
) -> Result<Vec<u8>, FetchError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes().to_vec()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(FetchError::TooLarge {
            target: target.to_owned(),
        }),
        Err(e) => Err(FetchError::Body {
            target: target.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// The first line of an error answer, printable and short (it comes from the network).
fn first_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty());
    match line {
        None => "(empty body)".to_owned(),
        Some(line) => {
            let clean: String = line
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(200)
                .collect();
            if line.chars().count() > 200 {
                format!("{clean}…")
            } else {
                clean
            }
        }
    }
}

/// The `tls.binding` check: the evidence must bind the key of the connection it came over.
pub fn binding_check(evidence: &Evidence, fetched: &Fetched) -> Check {
    let used = hex::encode(fetched.spki_sha256);
    let (outcome, detail, findings) = match &evidence.tls_spki_sha256 {
        Some(bound) if bound.as_slice() == fetched.spki_sha256.as_slice() => (
            Outcome::Pass,
            format!("the evidence binds the TLS key this connection used (SPKI sha256 {used})"),
            Vec::new(),
        ),
        Some(bound) => {
            let bound = hex::encode(bound);
            (
                Outcome::Fail,
                format!("evidence binds TLS key {bound}, the connection used {used}"),
                vec![Finding {
                    subject: "TLS SPKI sha256".into(),
                    expected: Some(used),
                    actual: Some(bound),
                    note: Some("the evidence was made for another TLS endpoint: a relay?".into()),
                }],
            )
        }
        None => (
            Outcome::Fail,
            format!(
                "evidence binds no TLS key, the connection used {used}: nothing ties this \
                 endpoint to the attested appliance"
            ),
            vec![Finding {
                subject: "TLS SPKI sha256".into(),
                expected: Some(used),
                actual: None,
                note: Some("no tls_spki_sha256 in the evidence".into()),
            }],
        ),
    };
    Check {
        id: "tls.binding",
        claim: Claim::InstanceIdentity,
        outcome,
        detail,
        findings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn target(s: &str) -> Result<Target, TargetError> {
        s.parse()
    }

    #[test]
    fn targets_parse() {
        let t = target("https://box12.example:8443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("box12.example", 8443));
        assert_eq!(t.authority, "box12.example:8443");
        let t = target("HTTPS://10.0.0.7/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("10.0.0.7", 443, "10.0.0.7")
        );
        let t = target("https://[::1]:4443").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 4443));
        assert_eq!(t.to_string(), "https://[::1]:4443");
    }

    #[test]
    fn bad_targets_are_refused_with_a_reason() {
        assert!(matches!(
            target("http://box:80"),
            Err(TargetError::PlainHttp(_))
        ));
        assert!(matches!(target("box:443"), Err(TargetError::NotHttps(_))));
        assert!(matches!(target("ftp://box"), Err(TargetError::NotHttps(_))));
        assert!(matches!(target("https://"), Err(TargetError::NoHost(_))));
        assert!(matches!(
            target("https://:443"),
            Err(TargetError::NoHost(_))
        ));
        assert!(matches!(
            target("https://::1:443"),
            Err(TargetError::NoHost(_))
        ));
        assert!(matches!(
            target("https://box:0"),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            target("https://box:65536"),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            target("https://box:+443"),
            Err(TargetError::BadPort { .. })
        ));
        assert!(matches!(
            target("https://box/api"),
            Err(TargetError::Extra(_))
        ));
        assert!(matches!(
            target("https://u@box"),
            Err(TargetError::Extra(_))
        ));
        assert!(matches!(
            target("https://box?x=1"),
            Err(TargetError::Extra(_))
        ));
        assert!(matches!(
            target("https://[::1]x"),
            Err(TargetError::Extra(_))
        ));
    }

    #[test]
    fn fingerprints_ignore_colons_and_case() {
        let plain = "ab".repeat(32);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&plain).unwrap(), [0xab; 32]);
        assert_eq!(parse_fingerprint(&colons).unwrap(), [0xab; 32]);
        let short = parse_fingerprint(&"ab".repeat(31)).unwrap_err().to_string();
        assert!(short.contains("not 31 bytes"), "{short}");
        let not_hex = parse_fingerprint("zz").unwrap_err().to_string();
        assert!(not_hex.contains("is not hex"), "{not_hex}");
    }

    #[test]
    fn nonces_are_fresh() {
        assert_ne!(fresh_nonce().unwrap(), fresh_nonce().unwrap());
    }

    #[test]
    fn error_lines_are_short_and_printable() {
        assert_eq!(first_line(b"\n  not found\nmore"), "not found");
        assert_eq!(first_line(b""), "(empty body)");
        assert_eq!(first_line(b"a\x1b[31mb"), "a?[31mb");
        assert_eq!(first_line(&[b'x'; 500]).chars().count(), 201);
    }
}
