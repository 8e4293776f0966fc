//! Which TPM to talk to, and how patiently.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::TpmError;

/// The default persistent handle of Hearth's attestation key: in the owner range, clear of the
/// TCG-reserved storage (0x8100xxxx) and endorsement (0x8101xxxx) primary-key slots.
pub const DEFAULT_AK_HANDLE: u32 = 0x8102_0001;

/// Where the TPM is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Transport {
    /// A kernel TPM device, normally the resource manager `/dev/tpmrm0`.
    Device { path: PathBuf },
    /// A software TPM (swtpm) on TCP; its control channel is on `port + 1`. Dev and test only:
    /// swtpm gives no hardware root of trust.
    Swtpm { host: String, port: u16 },
}

impl Transport {
    /// Whether this transport can only reach a software TPM.
    pub fn is_software(&self) -> bool {
        matches!(self, Transport::Swtpm { .. })
    }
}

impl Default for Transport {
    fn default() -> Self {
        Transport::Device {
            path: PathBuf::from("/dev/tpmrm0"),
        }
    }
}

/// Parses the TCTI strings of tpm2-tools: `device:/dev/tpmrm0`, `device` (the default path),
/// `swtpm:host=127.0.0.1,port=2321`, `swtpm:port=2321` or `swtpm` (localhost:2321).
impl FromStr for Transport {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (kind, conf) = s.split_once(':').unwrap_or((s, ""));
        match kind {
            "device" => Ok(Transport::Device {
                path: PathBuf::from(if conf.is_empty() { "/dev/tpmrm0" } else { conf }),
            }),
            "swtpm" => {
                let mut host = "127.0.0.1".to_owned();
                let mut port = 2321u16;
                for kv in conf.split(',').filter(|kv| !kv.is_empty()) {
                    match kv.split_once('=') {
                        Some(("host", h)) if !h.is_empty() => h.clone_into(&mut host),
                        Some(("port", p)) => {
                            port = p.parse().ok().filter(|p| *p < u16::MAX).ok_or_else(|| {
                                TpmError::InvalidInput(format!(
                                    "bad swtpm port {p:?} in TCTI {s:?}"
                                ))
                            })?;
                        }
                        _ => {
                            return Err(TpmError::InvalidInput(format!(
                                "bad swtpm option {kv:?} in TCTI {s:?} (expected host=H,port=P)"
                            )));
                        }
                    }
                }
                Ok(Transport::Swtpm { host, port })
            }
            _ => Err(TpmError::InvalidInput(format!(
                "unsupported TCTI {s:?} (expected device:/dev/tpmrm0 or swtpm:host=H,port=P)"
            ))),
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transport::Device { path } => write!(f, "device:{}", path.display()),
            Transport::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
        }
    }
}

/// How to open the TPM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpmConfig {
    pub transport: Transport,
    /// How long one TPM operation (or opening the TPM) may take before it counts as unreachable.
    #[serde(with = "millis")]
    pub timeout: Duration,
    /// Requests the owner thread may have queued before callers get `Busy`.
    pub queue_depth: usize,
    /// Persistent handle of the attestation key.
    pub ak_handle: u32,
}

impl Default for TpmConfig {
    fn default() -> Self {
        TpmConfig {
            transport: Transport::default(),
            timeout: Duration::from_secs(10),
            queue_depth: 32,
            ak_handle: DEFAULT_AK_HANDLE,
        }
    }
}

impl TpmConfig {
    pub fn new(transport: Transport) -> Self {
        TpmConfig {
            transport,
            ..TpmConfig::default()
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tcti_strings() {
        assert_eq!(
            "device:/dev/tpm0".parse::<Transport>().unwrap(),
            Transport::Device {
                path: "/dev/tpm0".into()
            }
        );
        assert_eq!("device".parse::<Transport>().unwrap(), Transport::default());
        assert_eq!(
            "swtpm:host=10.0.0.1,port=4000"
                .parse::<Transport>()
                .unwrap(),
            Transport::Swtpm {
                host: "10.0.0.1".into(),
                port: 4000
            }
        );
        assert_eq!(
            "swtpm".parse::<Transport>().unwrap().to_string(),
            "swtpm:host=127.0.0.1,port=2321"
        );
    }

    #[test]
    fn rejects_bad_tcti_strings() {
        for bad in [
            "mssim:port=1",
            "swtpm:port=x",
            "swtpm:port=65535",
            "swtpm:colour=red",
            "tabrmd",
        ] {
            assert!(
                matches!(bad.parse::<Transport>(), Err(TpmError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn config_rejects_unknown_fields() {
        let err = serde_json::from_str::<TpmConfig>(r#"{"timeout": 5, "colour": 1}"#).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let ok: TpmConfig = serde_json::from_str(
            r#"{"transport": {"kind": "swtpm", "host": "::1", "port": 9}, "timeout": 250}"#,
        )
        .unwrap();
        assert_eq!(ok.timeout, Duration::from_millis(250));
        assert!(ok.transport.is_software());
    }
}
