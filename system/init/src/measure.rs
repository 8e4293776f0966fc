//! The runtime measurement hearth-init makes: the appliance's configuration digest, extended
//! into PCR 15 and logged as one line of Hearth's runtime log.

use hearth_eventlog::RuntimeEvent;
use hearth_eventlog::pcr::Bank;

/// The PCR the appliance's identity and configuration go into.
pub const CONFIG_PCR: u8 = 15;
/// The runtime-log `type` of the configuration event.
pub const CONFIG_EVENT_TYPE: &str = "hearth-config";

/// The configuration event: its data names the SHA-256 of each configuration file, in the
/// order given (`name sha256:<hex>` joined by `; `); the digest is the hash of that text
/// ([`RuntimeEvent::measure`]). The image builder calls this too, to predict the event.
pub fn config_event(files: &[(&str, &[u8])]) -> RuntimeEvent {
    let data = files
        .iter()
        .map(|(name, bytes)| format!("{name} sha256:{}", hex::encode(Bank::Sha256.hash(bytes))))
        .collect::<Vec<_>>()
        .join("; ");
    RuntimeEvent::measure(CONFIG_PCR, CONFIG_EVENT_TYPE, &data, &[Bank::Sha256])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_event_names_each_file_and_hashes_its_text() {
        let e = config_event(&[("init.toml", b"a"), ("hearthd.toml", b"")]);
        assert_eq!(e.pcr, 15);
        assert_eq!(e.kind, "hearth-config");
        assert_eq!(
            e.data,
            "init.toml sha256:ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb; \
             hearthd.toml sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(e.data_matches_digest());
    }
}
