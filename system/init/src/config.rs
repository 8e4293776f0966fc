//! hearth-init's configuration: `/etc/hearth/init.toml` in the initrd (written by the image
//! builder), every field optional, unknown fields refused.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the image builder puts the configuration, and where PID 1 reads it.
pub const INIT_CONFIG_PATH: &str = "/etc/hearth/init.toml";

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InitConfig {
    /// Kernel modules to load, in order, as paths inside the initrd (dependencies first).
    pub modules: Vec<PathBuf>,
    pub network: NetworkSection,
    pub data: DataSection,
    pub hearthd: HearthdSection,
    pub tpm: TpmSection,
}

/// A static IPv4 configuration. The default fits QEMU user networking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSection {
    pub interface: String,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    /// Default route; none when absent.
    pub gateway: Option<Ipv4Addr>,
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            interface: "eth0".to_owned(),
            address: Ipv4Addr::new(10, 0, 2, 15),
            prefix_len: 24,
            gateway: Some(Ipv4Addr::new(10, 0, 2, 2)),
        }
    }
}

impl NetworkSection {
    /// The netmask of `prefix_len` (clamped to 32).
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::from(self.prefix_len.min(32));
        let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
        Ipv4Addr::from(mask)
    }
}

/// The data partition: found by GPT partition name, formatted when it holds no file system.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// GPT partition name (`PARTNAME` in the kernel's uevent).
    pub partlabel: String,
    pub mount: PathBuf,
    /// mke2fs, run on first boot only.
    pub mkfs: PathBuf,
}

impl Default for DataSection {
    fn default() -> Self {
        DataSection {
            partlabel: "hearth-data".to_owned(),
            mount: PathBuf::from("/var/lib/hearth"),
            mkfs: PathBuf::from("/usr/sbin/mke2fs"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HearthdSection {
    pub path: PathBuf,
    pub config: PathBuf,
    /// First restart delay; doubles up to `max_backoff_secs`.
    pub min_backoff_ms: u64,
    pub max_backoff_secs: u64,
    /// How long hearthd gets to stop after SIGTERM before it is killed.
    pub stop_timeout_secs: u64,
}

impl Default for HearthdSection {
    fn default() -> Self {
        HearthdSection {
            path: PathBuf::from("/usr/bin/hearthd"),
            config: PathBuf::from("/etc/hearth/hearthd.toml"),
            min_backoff_ms: 500,
            max_backoff_secs: 30,
            stop_timeout_secs: 20,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpmSection {
    /// The TPM character device PCR 15 is extended through.
    pub device: PathBuf,
    /// Hearth's runtime event log (hearthd puts it into evidence).
    pub runtime_log: PathBuf,
}

impl Default for TpmSection {
    fn default() -> Self {
        TpmSection {
            device: PathBuf::from("/dev/tpmrm0"),
            runtime_log: PathBuf::from("/run/hearth/runtime-log.jsonl"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitConfigError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("network.prefix_len {0} is more than 32")]
    Prefix(u8),
}

impl InitConfig {
    /// Parses the TOML text of the file at `path` (named in errors).
    pub fn parse(path: &str, text: &str) -> Result<InitConfig, InitConfigError> {
        let config: InitConfig = toml::from_str(text).map_err(|e| InitConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        if config.network.prefix_len > 32 {
            return Err(InitConfigError::Prefix(config.network.prefix_len));
        }
        Ok(config)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_and_unknown_fields_are_refused() {
        let d = InitConfig::default();
        assert_eq!(InitConfig::parse("x", &d.to_toml()).ok(), Some(d.clone()));
        assert_eq!(InitConfig::parse("x", "").ok(), Some(d));
        let e = InitConfig::parse("x", "[network]\nmtu = 1\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("mtu"), "{e}");
        InitConfig::parse("x", "[network]\nprefix_len = 33\n").unwrap_err();
    }

    #[test]
    fn netmask_of_prefix() {
        let mut n = NetworkSection::default();
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        n.prefix_len = 0;
        assert_eq!(n.netmask(), Ipv4Addr::new(0, 0, 0, 0));
        n.prefix_len = 32;
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 255));
        n.prefix_len = 20;
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 240, 0));
    }
}
