//! The console's TLS identity: an ECDSA P-256 key and a self-signed certificate, kept in the
//! encrypted store (made once, at first boot), or made for one run when the store is locked.

use std::sync::Arc;

use base64::Engine as _;
use hearth_console::TlsIdentity;
use hearth_store::{Json, Store, Table};
use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsMaterial {
    /// PKCS#8 DER, base64.
    key_pkcs8: String,
    /// Certificate DER, base64.
    cert_der: String,
    /// The names the certificate was made for.
    names: Vec<String>,
}

const TLS: Table<str, Json<TlsMaterial>> = Table::new("console/tls");
const TLS_KEY: &str = "console";

/// A ready TLS server configuration and what the console shows and binds of it.
pub struct Tls {
    pub server: Arc<ServerConfig>,
    pub identity: TlsIdentity,
    /// The certificate, PEM, for operators to pin.
    pub cert_pem: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn generate(names: &[String]) -> anyhow::Result<(Zeroizing<Vec<u8>>, Vec<u8>)> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Hearth appliance console");
    // Pinned by fingerprint and by attestation, not by expiry: valid from 2025 to 2050, so a
    // box whose clock is wrong still serves it.
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2050, 1, 1);
    let cert = params.self_signed(&key)?;
    Ok((Zeroizing::new(key.serialize_der()), cert.der().to_vec()))
}

fn build(key_der: &[u8], cert_der: Vec<u8>, ephemeral: bool) -> anyhow::Result<Tls> {
    let key = KeyPair::try_from(key_der)?;
    let spki = rcgen::PublicKeyData::subject_public_key_info(&key);
    let digest = |b: &[u8]| -> [u8; 32] {
        let d = ring::digest::digest(&ring::digest::SHA256, b);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    };
    let identity = TlsIdentity {
        spki_sha256: digest(&spki),
        cert_sha256: digest(&cert_der),
        ephemeral,
    };
    let cert_pem = pem_encode("CERTIFICATE", &cert_der);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key_der.to_vec())),
        )?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Tls {
        server: Arc::new(server),
        identity,
        cert_pem,
    })
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = b64().encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The stored identity, made and stored first if there is none (or the names changed).
/// Returns it and whether it was just made.
pub fn load_or_create(store: &Store, names: &[String]) -> anyhow::Result<(Tls, bool)> {
    if let Some(m) = store.get(&TLS, TLS_KEY)? {
        if m.names == names {
            let key = Zeroizing::new(b64().decode(&m.key_pkcs8)?);
            let cert = b64().decode(&m.cert_der)?;
            return Ok((build(&key, cert, false)?, false));
        }
        tracing::info!(
            component = "tls",
            "server names changed: making a new certificate"
        );
    }
    let (key, cert) = generate(names)?;
    store.put(
        &TLS,
        TLS_KEY,
        &TlsMaterial {
            key_pkcs8: b64().encode(&*key),
            cert_der: b64().encode(&cert),
            names: names.to_vec(),
        },
    )?;
    Ok((build(&key, cert, false)?, true))
}

/// An identity for this run only (the store that keeps the real key is locked).
pub fn ephemeral(names: &[String]) -> anyhow::Result<Tls> {
    let (key, cert) = generate(names)?;
    build(&key, cert, true)
}
