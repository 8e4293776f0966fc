//! hearthd's configuration: one TOML file, every field optional, unknown fields refused.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hearth_tpm::{PcrSelection, TpmConfig, Transport};
use serde::{Deserialize, Serialize};

/// `dev` allows a software TPM (swtpm); `production` refuses to start on one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    #[default]
    Production,
}

impl Profile {
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Dev => "dev",
            Profile::Production => "production",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub profile: Profile,
    /// Where the encrypted store, its blobs and the audit journal live.
    pub data_dir: PathBuf,
    /// The console's HTTPS address.
    pub listen: SocketAddr,
    pub tpm: TpmSection,
    pub keys: KeysSection,
    pub console: ConsoleSection,
    pub attestation: AttestationSection,
    pub compute: ComputeSection,
    pub log: LogSection,
    /// What may leave the appliance: signed model bundles (default yes, admins only) and raw
    /// dataset versions (default no; pseudonymized ones only, admins only).
    pub egress: hearth_console::models::EgressPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profile: Profile::default(),
            data_dir: PathBuf::from("/var/lib/hearth"),
            listen: SocketAddr::from(([0, 0, 0, 0], 8443)),
            tpm: TpmSection::default(),
            keys: KeysSection::default(),
            console: ConsoleSection::default(),
            attestation: AttestationSection::default(),
            compute: ComputeSection::default(),
            log: LogSection::default(),
            egress: hearth_console::models::EgressPolicy::default(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpmSection {
    /// `device:/dev/tpmrm0` or (dev profile only) `swtpm:host=H,port=P`.
    pub tcti: String,
    pub timeout_ms: u64,
}

impl Default for TpmSection {
    fn default() -> Self {
        TpmSection {
            tcti: "device:/dev/tpmrm0".to_owned(),
            timeout_ms: 10_000,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysSection {
    /// The PCRs the root secret is sealed to (one bank).
    pub seal_pcrs: String,
}

impl Default for KeysSection {
    fn default() -> Self {
        KeysSection {
            seal_pcrs: "sha256:7,11".to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    /// How long a login lasts.
    pub session_ttl_secs: u64,
    /// Names and addresses the certificate is valid for.
    pub server_names: Vec<String>,
    /// Most connections served at once.
    pub max_connections: usize,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection {
            session_ttl_secs: 12 * 3600,
            server_names: vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
            max_connections: 1024,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationSection {
    /// PCRs quoted for auditors.
    pub pcrs: String,
    /// The firmware event log put into evidence when readable.
    pub eventlog: Option<PathBuf>,
    /// Hearth's runtime log put into evidence when readable.
    pub runtime_log: Option<PathBuf>,
}

impl Default for AttestationSection {
    fn default() -> Self {
        AttestationSection {
            pcrs: "sha256:0-15".to_owned(),
            eventlog: Some(PathBuf::from(
                "/sys/kernel/security/tpm0/binary_bios_measurements",
            )),
            runtime_log: Some(PathBuf::from("/run/hearth/runtime-log.jsonl")),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComputeSection {
    /// `auto` (a free GPU, else the CPU), `cpu`, or `cuda` (refuse to start without a usable
    /// GPU).
    pub backend: hearth_gpu::Preference,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,hearth_console=debug`; `HEARTH_LOG` overrides.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            filter: "info".to_owned(),
        }
    }
}

/// What is wrong with a configuration, said once and plainly.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
}

/// Everything checked and parsed, ready to start.
#[derive(Clone, Debug)]
pub struct Checked {
    pub config: Config,
    pub tpm: TpmConfig,
    pub seal_pcrs: PcrSelection,
    pub attest_pcrs: PcrSelection,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn check(self) -> Result<Checked, ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid { field, message };
        let transport: Transport = self
            .tpm
            .tcti
            .parse()
            .map_err(|e: hearth_tpm::TpmError| invalid("tpm.tcti", e.to_string()))?;
        if transport.is_software() && self.profile == Profile::Production {
            return Err(invalid(
                "tpm.tcti",
                format!(
                    "{transport} is a software TPM, which gives no hardware root of trust; \
                     the production profile refuses it (set profile = \"dev\" on a developer machine)"
                ),
            ));
        }
        let seal_pcrs: PcrSelection = self
            .keys
            .seal_pcrs
            .parse()
            .map_err(|e: hearth_tpm::pcr::PcrError| invalid("keys.seal_pcrs", e.to_string()))?;
        if seal_pcrs.banks().count() != 1 {
            return Err(invalid(
                "keys.seal_pcrs",
                "name PCRs of exactly one bank".to_owned(),
            ));
        }
        let attest_pcrs: PcrSelection = self
            .attestation
            .pcrs
            .parse()
            .map_err(|e: hearth_tpm::pcr::PcrError| invalid("attestation.pcrs", e.to_string()))?;
        if self.console.session_ttl_secs == 0 {
            return Err(invalid(
                "console.session_ttl_secs",
                "must be at least 1".to_owned(),
            ));
        }
        if self.console.server_names.is_empty() {
            return Err(invalid(
                "console.server_names",
                "name at least one host name or address".to_owned(),
            ));
        }
        let tpm = TpmConfig::new(transport)
            .with_timeout(Duration::from_millis(self.tpm.timeout_ms.max(100)));
        Ok(Checked {
            config: self,
            tpm,
            seal_pcrs,
            attest_pcrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_round_trip_and_refuse_unknown_fields() {
        let d = Config::default();
        assert_eq!(parse(&d.to_toml()).ok(), Some(d.clone()));
        assert_eq!(parse("").ok(), Some(d));
        let e = parse("listen = \"127.0.0.1:1\"\nlisten_port = 3\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("listen_port"), "{e}");
        let e = parse("[tpm]\ntcti = \"swtpm\"\nspeed = 1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("speed"), "{e}");
    }

    #[test]
    fn production_refuses_a_software_tpm() {
        let mut c = parse("[tpm]\ntcti = \"swtpm:port=2321\"\n").unwrap_or_default();
        let e = c
            .clone()
            .check()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("production profile refuses"), "{e}");
        c.profile = Profile::Dev;
        if let Err(e) = c.check() {
            panic!("dev profile refused swtpm: {e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let c = parse("[keys]\nseal_pcrs = \"sha256:7+sha1:7\"\n").unwrap_or_default();
        let e = c.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("keys.seal_pcrs"), "{e}");
        let c = parse("[tpm]\ntcti = \"tcp:1\"\n").unwrap_or_default();
        let e = c.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.starts_with("tpm.tcti"), "{e}");
    }
}
