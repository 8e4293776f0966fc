//! hearth-eventlog against real firmware logs (OVMF + swtpm with 4 banks and with sha256 only,
//! SeaBIOS + swtpm), the PCRs their guests read, and tpm2-tools' reading of the same files.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use hearth_eventlog::event_type::*;
use hearth_eventlog::pcr::{Bank, PcrValues};
use hearth_eventlog::{Event, EventLog, EventRef, LogFormat, ParseError};

const FIXTURES: [&str; 3] = [
    "ovmf-uki-4banks",
    "ovmf-uki-sha256",
    "seabios-direct-kernel",
];

fn data_file(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixture(name: &str) -> Vec<u8> {
    data_file(&format!("{name}.bin"))
}

fn parse(name: &str) -> EventLog {
    EventLog::parse(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn guest_pcrs(name: &str) -> PcrValues {
    serde_json::from_slice(&data_file(&format!("{name}.pcrs.json"))).unwrap()
}

/// Byte range of each event's data in the log: the data ends where the record ends.
fn data_ranges(log: &EventLog, len: usize) -> Vec<std::ops::Range<usize>> {
    log.events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let end = log.events.get(i + 1).map_or(len, |n| n.offset);
            end - e.data.len()..end
        })
        .collect()
}

/// What tpm2_eventlog (tpm2-tools 5.4) printed for a log, scraped from its YAML.
#[derive(Debug, Default)]
struct YamlEvent {
    num: usize,
    pcr: u8,
    kind: String,
    digests: Vec<(String, String)>,
    size: usize,
}

struct Yaml {
    events: Vec<YamlEvent>,
    pcrs: BTreeMap<(String, u8), String>,
}

fn yaml(name: &str) -> Yaml {
    let text = String::from_utf8(data_file(&format!("{name}.tpm2_eventlog.yaml"))).unwrap();
    let mut events: Vec<YamlEvent> = Vec::new();
    let mut pcrs = BTreeMap::new();
    let mut in_pcrs = false;
    let mut bank = String::new();
    let mut alg = String::new();
    let value = |line: &str| {
        line.split_once(": ")
            .unwrap()
            .1
            .trim()
            .trim_matches('"')
            .to_owned()
    };
    for line in text.lines() {
        if line == "pcrs:" {
            in_pcrs = true;
        } else if in_pcrs {
            if let Some(b) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
                bank = b.trim().to_owned();
            } else if let Some((pcr, hex)) = line.split_once(" : ") {
                let hex = hex.trim().trim_start_matches("0x").to_owned();
                pcrs.insert((bank.clone(), pcr.trim().parse().unwrap()), hex);
            }
        } else if line.starts_with("- EventNum: ") {
            events.push(YamlEvent {
                num: value(line).parse().unwrap(),
                ..YamlEvent::default()
            });
        } else if let Some(ev) = events.last_mut() {
            if line.starts_with("  PCRIndex: ") {
                ev.pcr = value(line).parse().unwrap();
            } else if line.starts_with("  EventType: ") {
                ev.kind = value(line);
            } else if line.starts_with("  EventSize: ") {
                ev.size = value(line).parse().unwrap();
            } else if line.starts_with("  - AlgorithmId: ") {
                alg = value(line);
            } else if line.starts_with("    Digest: ") {
                ev.digests.push((alg.clone(), value(line)));
            } else if line.starts_with("  Digest: ") {
                ev.digests.push(("sha1".to_owned(), value(line)));
            }
        }
    }
    Yaml { events, pcrs }
}

/// Event-record builders for synthetic logs.
mod build {
    pub fn legacy(pcr: u32, kind: u32, sha1: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&pcr.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(sha1);
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    pub fn event2(pcr: u32, kind: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&pcr.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&u32::try_from(digests.len()).unwrap().to_le_bytes());
        for (alg, d) in digests {
            out.extend_from_slice(&alg.to_le_bytes());
            out.extend_from_slice(d);
        }
        out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// The legacy-format header record with a Spec ID Event03 declaring `algs` (id, size).
    pub fn spec_id(algs: &[(u16, u16)]) -> Vec<u8> {
        let mut data = b"Spec ID Event03\0".to_vec();
        data.extend_from_slice(&0u32.to_le_bytes()); // platformClass
        data.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
        data.extend_from_slice(&u32::try_from(algs.len()).unwrap().to_le_bytes());
        for (id, size) in algs {
            data.extend_from_slice(&id.to_le_bytes());
            data.extend_from_slice(&size.to_le_bytes());
        }
        data.push(0); // vendorInfoSize
        legacy(0, super::EV_NO_ACTION, &[0; 20], &data)
    }

    pub fn startup_locality(digests: &[(u16, Vec<u8>)], locality: u8) -> Vec<u8> {
        let mut data = b"StartupLocality\0".to_vec();
        data.push(locality);
        event2(0, super::EV_NO_ACTION, digests, &data)
    }
}

mod fixtures {
    use super::*;

    #[test]
    fn every_fixture_replays_to_the_pcrs_its_guest_read() {
        for name in FIXTURES {
            let log = parse(name);
            let replay = log.replay();
            let guest = guest_pcrs(name);
            // PCR 10 is IMA's (kernel runtime, not in the firmware log).
            for pcr in (0..=9).chain([11]) {
                let replayed = replay
                    .value(Bank::Sha256, pcr)
                    .map_or_else(|| vec![0; 32], <[u8]>::to_vec);
                assert_eq!(
                    hex::encode(replayed),
                    hex::encode(guest.get(Bank::Sha256, pcr).unwrap()),
                    "{name} sha256:{pcr}"
                );
            }
            // Every PCR the log touches equals the guest's.
            for (pcr, value) in replay.pcrs.bank(Bank::Sha256) {
                assert_eq!(Some(value), guest.get(Bank::Sha256, pcr), "{name} {pcr}");
            }
        }
    }

    #[test]
    fn the_logs_touch_the_pcrs_their_firmware_measures() {
        let touched = |name: &str| -> Vec<u8> {
            parse(name)
                .replay()
                .pcrs
                .bank(Bank::Sha256)
                .map(|(p, _)| p)
                .collect()
        };
        assert_eq!(
            touched("ovmf-uki-4banks"),
            vec![0, 1, 2, 3, 4, 5, 6, 7, 9, 11]
        );
        assert_eq!(
            touched("ovmf-uki-sha256"),
            vec![0, 1, 2, 3, 4, 5, 6, 7, 9, 11]
        );
        assert_eq!(
            touched("seabios-direct-kernel"),
            vec![0, 1, 2, 3, 4, 5, 6, 7]
        );
    }

    #[test]
    fn every_bank_agrees_with_tpm2_eventlog() {
        for name in FIXTURES {
            let replay = parse(name).replay();
            let ours: BTreeMap<(String, u8), String> = replay
                .banks
                .iter()
                .flat_map(|b| {
                    replay
                        .pcrs
                        .bank(*b)
                        .map(move |(p, v)| ((b.name().to_owned(), p), hex::encode(v)))
                })
                .collect();
            assert_eq!(ours, yaml(name).pcrs, "{name}");
        }
    }

    #[test]
    fn events_agree_with_tpm2_eventlog() {
        for name in FIXTURES {
            let log = parse(name);
            let theirs = yaml(name).events;
            assert_eq!(log.events.len(), theirs.len(), "{name}");
            for (ours, theirs) in log.events.iter().zip(&theirs) {
                let at = format!("{name} event {}", theirs.num);
                assert_eq!(ours.index, theirs.num, "{at}");
                assert_eq!(ours.pcr, theirs.pcr, "{at}");
                assert_eq!(ours.type_name(), theirs.kind, "{at}");
                assert_eq!(ours.data.len(), theirs.size, "{at}");
                let digests: Vec<(String, String)> = ours
                    .digests
                    .iter()
                    .map(|(b, d)| (b.name().to_owned(), hex::encode(d)))
                    .collect();
                assert_eq!(digests, theirs.digests, "{at}");
            }
        }
    }

    #[test]
    fn headers_declare_the_banks_swtpm_was_set_up_with() {
        let four = parse("ovmf-uki-4banks");
        assert_eq!(four.format, LogFormat::CryptoAgile);
        assert_eq!(
            four.banks,
            vec![Bank::Sha1, Bank::Sha256, Bank::Sha384, Bank::Sha512]
        );
        let spec = four.spec_id.as_ref().unwrap();
        assert_eq!((spec.spec_version_major, spec.spec_version_minor), (2, 0));
        assert_eq!(spec.uintn_size, 2);
        assert_eq!(parse("ovmf-uki-sha256").banks, vec![Bank::Sha256]);
        // SeaBIOS writes a crypto-agile log too (errata 2), not a legacy one.
        let seabios = parse("seabios-direct-kernel");
        assert_eq!(seabios.format, LogFormat::CryptoAgile);
        assert_eq!(seabios.spec_id.as_ref().unwrap().spec_errata, 2);
        assert_eq!(seabios.banks.len(), 4);
        // None of them logs a StartupLocality event: PCR 0 starts at zero.
        for name in FIXTURES {
            assert_eq!(parse(name).startup_locality, None, "{name}");
        }
    }

    #[test]
    fn each_pcr_lists_the_events_that_built_it_in_order() {
        for name in FIXTURES {
            let log = parse(name);
            let replay = log.replay();
            for bank in &replay.banks {
                for (pcr, value) in replay.pcrs.bank(*bank) {
                    let mut acc = vec![0; bank.digest_len()];
                    for r in replay.events_for(pcr) {
                        let EventRef::Firmware(i) = r else {
                            panic!("runtime event in a firmware replay")
                        };
                        let e = &log.events[*i];
                        assert_eq!(e.pcr, pcr);
                        assert!(e.is_extended());
                        acc = bank.extend(&acc, e.digest(*bank).unwrap());
                    }
                    assert_eq!(acc, value, "{name} {bank}:{pcr}");
                }
            }
            // Every extended event is listed exactly once.
            let listed: usize = replay.events.values().map(Vec::len).sum();
            assert_eq!(
                listed,
                log.events.iter().filter(|e| e.is_extended()).count()
            );
        }
        let log = parse("ovmf-uki-sha256");
        let pcr11: Vec<String> = log
            .replay()
            .events_for(11)
            .iter()
            .map(|r| match r {
                EventRef::Firmware(i) => log.events[*i].type_name(),
                EventRef::Runtime(_) => unreachable!(),
            })
            .collect();
        assert_eq!(pcr11, vec!["EV_IPL"; 8]);
        assert!(log.replay().events_for(8).is_empty());
    }

    #[test]
    fn replay_json_is_bank_then_pcr_then_hex() {
        let replay = parse("ovmf-uki-sha256").replay();
        let json = serde_json::to_value(&replay.pcrs).unwrap();
        let guest = serde_json::to_value(guest_pcrs("ovmf-uki-sha256")).unwrap();
        for pcr in ["0", "1", "4", "7", "9", "11"] {
            assert_eq!(json["sha256"][pcr], guest["sha256"][pcr], "{pcr}");
        }
        let all = serde_json::to_value(&replay).unwrap();
        assert_eq!(
            all["events"]["9"],
            serde_json::json!([{"firmware": 33}, {"firmware": 34}])
        );
        assert_eq!(all["banks"], serde_json::json!(["sha256"]));
    }
}

mod describe {
    use super::*;

    fn described(name: &str) -> Vec<(u8, String, String)> {
        parse(name)
            .events
            .iter()
            .map(|e| (e.pcr, e.type_name(), e.describe()))
            .collect()
    }

    fn find<'a>(events: &'a [(u8, String, String)], needle: &str) -> &'a (u8, String, String) {
        events
            .iter()
            .find(|(_, _, d)| d.contains(needle))
            .unwrap_or_else(|| panic!("no event describes {needle:?}: {events:#?}"))
    }

    #[test]
    fn secure_boot_variables_show_name_guid_and_value() {
        let events = described("ovmf-uki-4banks");
        let (pcr, kind, text) = find(&events, "SecureBoot");
        assert_eq!((*pcr, kind.as_str()), (7, "EV_EFI_VARIABLE_DRIVER_CONFIG"));
        assert_eq!(
            text,
            "SecureBoot [8be4df61-93ca-11d2-aa0d-00e098032b8c (EFI global variable)] = disabled (00)"
        );
        assert!(
            find(&events, "PK [")
                .2
                .ends_with("(EFI global variable)] = (empty)")
        );
        assert!(
            find(&events, "KEK [")
                .2
                .contains("8be4df61-93ca-11d2-aa0d-00e098032b8c")
        );
        assert_eq!(
            find(&events, "dbx [").2,
            "dbx [d719b2cb-3d3a-4596-a3bc-dad00e67656f (image security database)] = (empty)"
        );
    }

    #[test]
    fn boot_variables_show_the_boot_order_and_each_option() {
        let events = described("ovmf-uki-4banks");
        let (pcr, kind, order) = find(&events, "BootOrder");
        assert_eq!((*pcr, kind.as_str()), (1, "EV_EFI_VARIABLE_BOOT"));
        assert!(
            order.ends_with("= Boot0000, Boot0001, Boot0002, Boot0003"),
            "{order}"
        );
        assert_eq!(
            find(&events, "Boot0000 [").2,
            "Boot0000 [8be4df61-93ca-11d2-aa0d-00e098032b8c (EFI global variable)] = \"UiApp\" \
             (active, hidden, app) Fv(7cb8bdc9-f8eb-4f34-aaea-3ee4af6516a1)/\
             FvFile(462caa21-7614-4503-836e-8ab6f4662331)"
        );
        let dvd = &find(&events, "Boot0001 [").2;
        assert!(
            dvd.contains("\"UEFI QEMU DVD-ROM QM00005 \" (active) PciRoot(0x0)/Pci(0x1f,0x2)/Sata(0x2,0xffff,0x0)"),
            "{dvd}"
        );
        assert!(
            find(&events, "Boot0003 [")
                .2
                .contains("\"EFI Internal Shell\"")
        );
    }

    #[test]
    fn uki_sections_in_pcr_11_are_named() {
        for name in ["ovmf-uki-4banks", "ovmf-uki-sha256"] {
            let events = described(name);
            let pcr11: Vec<&str> = events
                .iter()
                .filter(|(pcr, _, _)| *pcr == 11)
                .map(|(_, _, d)| d.as_str())
                .collect();
            assert_eq!(
                pcr11,
                vec![
                    "\".linux\" (UKI section name)",
                    "\".linux\"",
                    "\".osrel\" (UKI section name)",
                    "\".osrel\"",
                    "\".cmdline\" (UKI section name)",
                    "\".cmdline\"",
                    "\".initrd\" (UKI section name)",
                    "\".initrd\"",
                ],
                "{name}"
            );
        }
    }

    #[test]
    fn the_gpt_event_lists_the_partitions() {
        let events = described("ovmf-uki-sha256");
        let (pcr, kind, text) = find(&events, "EFI System Partition");
        assert_eq!((*pcr, kind.as_str()), (5, "EV_EFI_GPT_EVENT"));
        assert_eq!(
            text,
            "disk 3f2c7a6e-0000-4000-8000-000000000001, 1 partition: 1: \"ESP\" type \
             c12a7328-f81f-11d2-ba4b-00a0c93ec93b (EFI System Partition), \
             3f2c7a6e-0000-4000-8000-000000000002, LBA 2048-22527"
        );
    }

    #[test]
    fn boot_applications_show_their_device_path() {
        let events = described("ovmf-uki-sha256");
        let (pcr, kind, text) = find(&events, "BOOTX64.EFI");
        assert_eq!(
            (*pcr, kind.as_str()),
            (4, "EV_EFI_BOOT_SERVICES_APPLICATION")
        );
        assert_eq!(
            text,
            "PciRoot(0x0)/Pci(0x1,0x0)/HD(1,GPT,3f2c7a6e-0000-4000-8000-000000000002,0x800,0x5000)/\
             \\EFI\\BOOT\\BOOTX64.EFI (8575329 bytes at 0x1d684018)"
        );
        // The kernel inside the UKI, loaded by systemd-stub from memory.
        assert!(
            find(&events, "VenMedia(55c5d1f8-04cd-46b5-8a20-e56cbb3052d0)")
                .2
                .ends_with("(8247232 bytes at 0x1ce69000)")
        );
    }

    #[test]
    fn separators_actions_tags_and_firmware_blobs_read_as_text() {
        let events = described("ovmf-uki-sha256");
        assert_eq!(events[0].2.split(':').next(), Some("Spec ID Event03"));
        assert_eq!(
            events[1],
            (0, "EV_S_CRTM_VERSION".into(), "CRTM version \"\"".into())
        );
        assert_eq!(events[2].2, "base 0x820000, length 0xe0000 (917504 bytes)");
        assert_eq!(
            events[9],
            (7, "EV_SEPARATOR".into(), "separator (00000000)".into())
        );
        assert_eq!(events[14].2, "\"Calling EFI Application from Boot Option\"");
        assert_eq!(
            events[33].2,
            "Linux tag 0x8f3b22ed: \"LOADED_IMAGE::LoadOptions\""
        );
        assert_eq!(events[34].2, "Linux tag 0x8f3b22ec: \"Linux initrd\"");
        assert_eq!(events[36].2, "\"Exit Boot Services Returned with Success\"");
        let seabios = described("seabios-direct-kernel");
        assert_eq!(seabios[2].2, "\"Start Option ROM Scan\"");
        assert_eq!(seabios[5].2, "\"Calling INT 19h\"");
        assert_eq!(seabios[6].2, "separator (ffffffff)");
        assert!(seabios[1].2.starts_with("SMBIOS tag (1)"));
        assert!(
            seabios[3]
                .2
                .contains("ROM sha1 70070146e58e809c0bf58065f9e11feb579dfc72")
        );
    }

    #[test]
    fn unknown_event_types_are_named_by_number() {
        let event = Event {
            index: 0,
            offset: 0,
            pcr: 0,
            event_type: 0x8000_7777,
            digests: vec![],
            data: vec![1, 2, 3],
        };
        assert_eq!(event.type_name(), "EV_UNKNOWN(0x80007777)");
        assert_eq!(event.describe(), "010203");
        assert_eq!(event.data_matches_digest(), None);
    }

    #[test]
    fn text_from_the_log_cannot_drive_the_terminal() {
        let event = Event {
            index: 0,
            offset: 0,
            pcr: 4,
            event_type: EV_EFI_ACTION,
            digests: vec![],
            data: b"ok\x1b[2J\x1b]0;pwned\x07 \xe2\x80\xaeevil".to_vec(),
        };
        let text = event.describe();
        assert!(!text.chars().any(|c| c.is_control()), "{text:?}");
        assert!(
            text.contains("\\u{1b}[2J") && text.contains("\\u{202e}"),
            "{text}"
        );
    }

    #[test]
    fn events_and_logs_serialize_for_the_cli() {
        let log = parse("ovmf-uki-4banks");
        let json = serde_json::to_value(&log.events[4]).unwrap();
        assert_eq!(json["index"], 4);
        assert_eq!(json["offset"], 675);
        assert_eq!(json["pcr"], 7);
        assert_eq!(json["type"], "EV_EFI_VARIABLE_DRIVER_CONFIG");
        assert_eq!(
            json["digests"]["sha256"],
            "115aa827dbccfb44d216ad9ecfda56bdea620b860a94bed5b7a27bba1c4d02d8"
        );
        assert_eq!(json["data_matches_digest"], true);
        assert!(
            json["description"]
                .as_str()
                .unwrap()
                .starts_with("SecureBoot")
        );
        assert_eq!(json["extended"], true);
        let whole = serde_json::to_value(&log).unwrap();
        assert_eq!(whole["format"], "crypto-agile");
        assert_eq!(whole["events"].as_array().unwrap().len(), 40);
        assert_eq!(
            whole["events"][0]["data_matches_digest"],
            serde_json::Value::Null
        );
        let text = log.to_string();
        assert!(text.starts_with(
            "crypto-agile event log, 40 events, banks sha1, sha256, sha384, sha512\n"
        ));
        assert!(
            text.contains("\n#9 PCR 7 EV_SEPARATOR: separator (00000000)\n"),
            "{text}"
        );
        assert!(log.replay().to_string().contains("sha512:\n"));
    }
}

mod data_checks {
    use super::*;

    /// Event types whose digest must be the hash of the data (so a changed byte is caught).
    const BOUND: [u32; 7] = [
        EV_SEPARATOR,
        EV_ACTION,
        EV_EFI_ACTION,
        EV_S_CRTM_VERSION,
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        EV_EFI_GPT_EVENT,
        EV_EFI_VARIABLE_BOOT,
    ];

    #[test]
    fn checkable_events_of_every_fixture_match_their_data() {
        for name in FIXTURES {
            for e in &parse(name).events {
                let check = e.data_matches_digest();
                assert_ne!(check, Some(false), "{name} #{}", e.index);
                if BOUND.contains(&e.event_type) {
                    assert_eq!(check, Some(true), "{name} #{} {}", e.index, e.type_name());
                }
            }
        }
        // systemd-stub's section names are hashed as UTF-8 with their NUL; the contents that
        // follow are not checkable from the log.
        let log = parse("ovmf-uki-4banks");
        let ipl: Vec<Option<bool>> = log
            .events
            .iter()
            .filter(|e| e.event_type == EV_IPL)
            .map(Event::data_matches_digest)
            .collect();
        assert_eq!(ipl, [Some(true), None].repeat(4));
        // Firmware blobs and images name what was hashed, they are not it.
        assert_eq!(log.events[2].data_matches_digest(), None);
        assert_eq!(log.events[26].data_matches_digest(), None);
        // SeaBIOS hashes its tagged events' data.
        let seabios = parse("seabios-direct-kernel");
        assert_eq!(seabios.events[1].data_matches_digest(), Some(true));
    }

    #[test]
    fn a_changed_data_byte_names_the_tampered_event() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let log = parse(name);
            let ranges = data_ranges(&log, bytes.len());
            let mut tampered_some = 0;
            for e in log.events.iter().filter(|e| BOUND.contains(&e.event_type)) {
                let mut bad = bytes.clone();
                // The last data byte: in a variable event it is in VariableData (or, for an
                // empty variable, its name), which both conventions hash.
                bad[ranges[e.index].end - 1] ^= 0x01;
                let tampered = EventLog::parse(&bad).unwrap();
                let first_bad = tampered
                    .events
                    .iter()
                    .find(|t| t.data_matches_digest() == Some(false))
                    .map(|t| t.index);
                assert_eq!(
                    first_bad,
                    Some(e.index),
                    "{name} #{} {}",
                    e.index,
                    e.type_name()
                );
                // Replay reads digests only: the PCRs do not move, which is why the check is
                // needed.
                assert_eq!(tampered.replay(), log.replay());
                tampered_some += 1;
            }
            assert!(tampered_some >= 9, "{name}: {tampered_some}");
        }
    }

    #[test]
    fn a_changed_digest_moves_the_replayed_pcr() {
        let bytes = fixture("ovmf-uki-sha256");
        let log = parse("ovmf-uki-sha256");
        let mut bad = bytes.clone();
        // Event 11 (Boot0000): pcrIndex, eventType, count, algId, then the sha256 digest.
        bad[log.events[11].offset + 14] ^= 0x80;
        let tampered = EventLog::parse(&bad).unwrap();
        assert_eq!(tampered.events[11].data_matches_digest(), Some(false));
        let (a, b) = (log.replay(), tampered.replay());
        let moved: Vec<u8> = (0..24)
            .filter(|p| a.value(Bank::Sha256, *p) != b.value(Bank::Sha256, *p))
            .collect();
        assert_eq!(moved, vec![1]);
    }
}

mod formats {
    use super::*;
    use build::*;

    #[test]
    fn legacy_sha1_logs_replay_in_the_sha1_bank() {
        // The 4-bank fixture's events re-encoded as TCG_PCClientPCREvent with their SHA1 digest:
        // what TPM 1.2-era firmware writes.
        let four = parse("ovmf-uki-4banks");
        let mut legacy_log = Vec::new();
        for e in four.events.iter().skip(1) {
            legacy_log.extend(legacy(
                e.pcr.into(),
                e.event_type,
                e.digest(Bank::Sha1).unwrap(),
                &e.data,
            ));
        }
        let log = EventLog::parse(&legacy_log).unwrap();
        assert_eq!(log.format, LogFormat::LegacySha1);
        assert_eq!(log.banks, vec![Bank::Sha1]);
        assert!(log.spec_id.is_none());
        assert_eq!(log.events.len(), 39);
        assert_eq!(log.events[3].describe(), four.events[4].describe());
        let replay = log.replay();
        let theirs = yaml("ovmf-uki-4banks").pcrs;
        for (pcr, value) in replay.pcrs.bank(Bank::Sha1) {
            assert_eq!(
                hex::encode(value),
                theirs[&("sha1".to_owned(), pcr)],
                "sha1:{pcr}"
            );
        }
        assert_eq!(replay.pcrs.bank(Bank::Sha1).count(), 10);
        // A legacy log cut inside a record is an error naming the legacy structure.
        let err = EventLog::parse(&legacy_log[..legacy_log.len() - 1]).unwrap_err();
        assert_eq!(err.field, "TCG_PCClientPCREvent.eventDataSize");
    }

    /// The sha256 fixture with a StartupLocality event after the header.
    fn with_locality(locality: u8, after_first_event: bool) -> Vec<u8> {
        let bytes = fixture("ovmf-uki-sha256");
        let log = parse("ovmf-uki-sha256");
        let split = if after_first_event {
            log.events[2].offset
        } else {
            log.events[1].offset
        };
        let mut out = bytes[..split].to_vec();
        out.extend(startup_locality(&[(0x000b, vec![0; 32])], locality));
        out.extend_from_slice(&bytes[split..]);
        out
    }

    #[test]
    fn startup_locality_sets_pcr_0s_starting_value() {
        let log = EventLog::parse(&with_locality(3, false)).unwrap();
        assert_eq!(log.startup_locality, Some(3));
        assert_eq!(log.events[1].describe(), "StartupLocality 3");
        assert!(!log.events[1].is_extended());
        let mut pcr0 = vec![0u8; 32];
        pcr0[31] = 3;
        for e in log.events.iter().filter(|e| e.pcr == 0 && e.is_extended()) {
            pcr0 = Bank::Sha256.extend(&pcr0, e.digest(Bank::Sha256).unwrap());
        }
        let replay = log.replay();
        assert_eq!(replay.value(Bank::Sha256, 0), Some(pcr0.as_slice()));
        assert_ne!(
            replay.value(Bank::Sha256, 0),
            parse("ovmf-uki-sha256").replay().value(Bank::Sha256, 0)
        );
        // Other PCRs are unaffected.
        assert_eq!(
            replay.value(Bank::Sha256, 7),
            guest_pcrs("ovmf-uki-sha256").get(Bank::Sha256, 7)
        );
        // A log with only the locality event still reports PCR 0's starting value.
        let mut only = spec_id(&[(0x000b, 32)]);
        only.extend(startup_locality(&[(0x000b, vec![0; 32])], 4));
        let replay = EventLog::parse(&only).unwrap().replay();
        let mut start = vec![0u8; 32];
        start[31] = 4;
        assert_eq!(replay.value(Bank::Sha256, 0), Some(start.as_slice()));
        assert!(replay.events_for(0).is_empty());
    }

    #[test]
    fn misplaced_or_impossible_startup_locality_is_refused() {
        let late = EventLog::parse(&with_locality(3, true)).unwrap_err();
        assert_eq!(late.field, "StartupLocality");
        assert!(late.problem.contains("after event 1"), "{late}");
        let bad = EventLog::parse(&with_locality(9, false)).unwrap_err();
        assert!(bad.problem.contains("locality 9"), "{bad}");
        let mut twice = spec_id(&[(0x000b, 32)]);
        twice.extend(startup_locality(&[(0x000b, vec![0; 32])], 3));
        twice.extend(startup_locality(&[(0x000b, vec![0; 32])], 0));
        assert!(
            EventLog::parse(&twice)
                .unwrap_err()
                .problem
                .contains("second")
        );
    }

    #[test]
    fn unknown_algorithms_are_skipped_by_their_declared_size() {
        let log = parse("ovmf-uki-sha256");
        let mut bytes = spec_id(&[(0x000b, 32), (0x0099, 7)]);
        for e in log.events.iter().skip(1) {
            let digests = [
                (0x0099, vec![0xee; 7]),
                (0x000b, e.digest(Bank::Sha256).unwrap().to_vec()),
            ];
            bytes.extend(event2(e.pcr.into(), e.event_type, &digests, &e.data));
        }
        let parsed = EventLog::parse(&bytes).unwrap();
        assert_eq!(parsed.banks, vec![Bank::Sha256]);
        let algs = &parsed.spec_id.as_ref().unwrap().algorithms;
        assert_eq!(
            (algs[1].alg_id, algs[1].digest_size, algs[1].bank),
            (0x0099, 7, None)
        );
        assert_eq!(parsed.replay().pcrs, log.replay().pcrs);
        assert!(parsed.events[0].describe().contains("0x0099 (7 bytes)"));
    }

    #[test]
    fn sm3_banks_replay_like_any_other() {
        let data = b"Calling EFI Application from Boot Option";
        let mut bytes = spec_id(&[(0x0012, 32), (0x000b, 32)]);
        let digests = [
            (0x0012, Bank::Sm3_256.hash(data)),
            (0x000b, Bank::Sha256.hash(data)),
        ];
        bytes.extend(event2(4, EV_EFI_ACTION, &digests, data));
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(log.banks, vec![Bank::Sm3_256, Bank::Sha256]);
        assert_eq!(log.events[1].data_matches_digest(), Some(true));
        let expected = Bank::Sm3_256.extend(&[0; 32], &Bank::Sm3_256.hash(data));
        assert_eq!(
            log.replay().value(Bank::Sm3_256, 4),
            Some(expected.as_slice())
        );
    }
}

mod malformed {
    use super::*;
    use build::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Records the largest single allocation this thread asks for, so a test can show that a
    /// lying length field never becomes an allocation.
    struct Tracking;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    // SAFETY: every method forwards to the system allocator with the caller's arguments; the
    // bookkeeping only touches a const-initialised thread-local without a destructor.
    unsafe impl GlobalAlloc for Tracking {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(layout.size())));
            // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
            unsafe { System.alloc(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` through this allocator with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(new_size)));
            // SAFETY: forwarded unchanged; the caller upholds `realloc`'s contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: Tracking = Tracking;

    fn largest_allocation_while<T>(f: impl FnOnce() -> T) -> (T, usize) {
        LARGEST.with(|l| l.set(0));
        let out = f();
        (out, LARGEST.with(Cell::get))
    }

    #[test]
    fn every_truncation_is_an_error_or_ends_on_a_record_boundary() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let full = parse(name);
            let boundaries: Vec<usize> = full.events.iter().skip(1).map(|e| e.offset).collect();
            for cut in 0..bytes.len() {
                match EventLog::parse(&bytes[..cut]) {
                    Ok(log) => {
                        assert!(boundaries.contains(&cut), "{name}: Ok when cut at {cut}");
                        assert_eq!(log.events[..], full.events[..log.events.len()]);
                        assert_eq!(full.events[log.events.len()].offset, cut);
                    }
                    Err(e) => {
                        assert!(!boundaries.contains(&cut), "{name}: {e} at boundary {cut}");
                        assert!(e.offset <= cut, "{name} cut {cut}: {e}");
                        assert!(!e.field.is_empty() && !e.problem.is_empty());
                        assert!(e.to_string().ends_with(&format!(" at byte {}", e.offset)));
                    }
                }
            }
        }
        let empty = EventLog::parse(&[]).unwrap_err();
        assert_eq!(
            empty.to_string(),
            "TCG_PCClientPCREvent: empty log at byte 0"
        );
    }

    #[test]
    fn a_huge_event_size_is_refused_without_allocating_it() {
        let bytes = fixture("ovmf-uki-sha256");
        let log = parse("ovmf-uki-sha256");
        // Event 5: pcrIndex, eventType, count, algId + 32-byte digest, then eventSize.
        let at = log.events[5].offset + 12 + 2 + 32;
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (result, largest) = largest_allocation_while(|| EventLog::parse(&bad));
        let err = result.unwrap_err();
        assert_eq!(
            err,
            ParseError {
                offset: at,
                field: "TCG_PCR_EVENT2.eventSize",
                problem: format!("4294967295 bytes, {} remain", bytes.len() - at - 4),
            }
        );
        assert_eq!(
            err.to_string(),
            format!(
                "TCG_PCR_EVENT2.eventSize: 4294967295 bytes, {} remain at byte {at}",
                bytes.len() - at - 4
            )
        );
        assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
    }

    #[test]
    fn a_huge_digest_or_algorithm_count_is_refused_without_allocating_it() {
        let bytes = fixture("ovmf-uki-4banks");
        let log = parse("ovmf-uki-4banks");
        let at = log.events[3].offset + 8;
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (result, largest) = largest_allocation_while(|| EventLog::parse(&bad));
        let err = result.unwrap_err();
        assert_eq!(
            (err.offset, err.field),
            (at, "TCG_PCR_EVENT2.digests.count")
        );
        assert_eq!(
            err.problem,
            "4294967295 digests, the Spec ID event declares 4 algorithms"
        );
        assert!(largest < 64 * 1024, "largest allocation {largest} bytes");

        // numberOfAlgorithms at byte 32 (header) + 24.
        let mut bad = bytes.clone();
        bad[56..60].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        let (result, largest) = largest_allocation_while(|| EventLog::parse(&bad));
        let err = result.unwrap_err();
        assert_eq!(
            (err.offset, err.field),
            (56, "TCG_EfiSpecIdEvent.numberOfAlgorithms")
        );
        assert!(largest < 64 * 1024, "largest allocation {largest} bytes");
    }

    #[test]
    fn impossible_fields_are_named() {
        let sha256 = |d: &[u8]| (0x000b, Bank::Sha256.hash(d));
        let header = spec_id(&[(0x000b, 32)]);
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                [
                    header.clone(),
                    event2(24, EV_SEPARATOR, &[sha256(&[0; 4])], &[0; 4]),
                ]
                .concat(),
                "TCG_PCR_EVENT2.pcrIndex",
                "PCR 24 does not exist",
            ),
            (
                [
                    header.clone(),
                    event2(0, EV_SEPARATOR, &[(0x000c, vec![0; 48])], &[0; 4]),
                ]
                .concat(),
                "TCG_PCR_EVENT2.digests.hashAlg",
                "0x000c is not declared",
            ),
            (
                [
                    header.clone(),
                    event2(
                        0,
                        EV_SEPARATOR,
                        &[sha256(&[0; 4]), sha256(&[0; 4])],
                        &[0; 4],
                    ),
                ]
                .concat(),
                "TCG_PCR_EVENT2.digests.count",
                "2 digests",
            ),
            (
                [header.clone(), vec![0, 0, 0]].concat(),
                "TCG_PCR_EVENT2.pcrIndex",
                "needs 4 bytes, 3 remain",
            ),
            (
                spec_id(&[(0x000b, 20)]),
                "TCG_EfiSpecIdEvent.digestSizes.digestSize",
                "20 bytes for sha256",
            ),
            (
                spec_id(&[(0x000b, 32), (0x000b, 32)]),
                "TCG_EfiSpecIdEvent.digestSizes.algorithmId",
                "declared twice",
            ),
            (
                spec_id(&[]),
                "TCG_EfiSpecIdEvent.numberOfAlgorithms",
                "0 algorithms",
            ),
            (
                spec_id(&[(0x0099, 0)]),
                "TCG_EfiSpecIdEvent.digestSizes.digestSize",
                "0 bytes for algorithm 0x0099",
            ),
        ];
        for (bytes, field, problem) in cases {
            let err = EventLog::parse(&bytes).unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.problem.contains(problem), "{err}");
        }
        // Two declared banks, one event with the same algorithm twice.
        let two = spec_id(&[(0x000b, 32), (0x0004, 20)]);
        let dup = [
            two,
            event2(
                0,
                EV_SEPARATOR,
                &[sha256(&[0; 4]), sha256(&[0; 4])],
                &[0; 4],
            ),
        ]
        .concat();
        let err = EventLog::parse(&dup).unwrap_err();
        assert!(err.problem.contains("a second digest"), "{err}");
    }

    #[test]
    fn malformed_event_data_is_described_not_fatal() {
        let mut event = parse("ovmf-uki-sha256").events[11].clone();
        // UnicodeNameLength claims 2^62 characters.
        event.data[16..24].copy_from_slice(&(1u64 << 62).to_le_bytes());
        let (text, largest) = largest_allocation_while(|| event.describe());
        assert!(
            text.starts_with("<malformed UEFI_VARIABLE_DATA: UEFI_VARIABLE_DATA.UnicodeNameLength"),
            "{text}"
        );
        assert!(largest < 64 * 1024);
        assert_eq!(event.data_matches_digest(), Some(false));
        let mut gpt = parse("ovmf-uki-sha256").events[22].clone();
        gpt.data[92..100].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(
            gpt.describe().contains("NumberOfPartitions"),
            "{}",
            gpt.describe()
        );
    }
}

mod mutations {
    use super::*;

    /// xorshift64: a small deterministic generator, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap()).unwrap()
        }
    }

    const INTERESTING: [u32; 8] = [0, 1, 4, 0x7f, 0xffff, 0x7fff_ffff, 0x8000_0000, u32::MAX];

    fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>, donors: &[Vec<u8>]) {
        for _ in 0..=rng.below(3) {
            let len = bytes.len();
            match rng.below(6) {
                0 if len > 0 => {
                    let i = rng.below(len);
                    bytes[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let at = rng.below(len + 1);
                    let n = 1 + rng.below(16);
                    let fill: Vec<u8> = (0..n).map(|_| rng.next().to_le_bytes()[0]).collect();
                    bytes.splice(at..at, fill);
                }
                2 if len > 0 => {
                    let at = rng.below(len);
                    let n = 1 + rng.below(32);
                    bytes.drain(at..(at + n).min(len));
                }
                3 => {
                    let donor = &donors[rng.below(donors.len())];
                    let from = rng.below(donor.len());
                    let n = 1 + rng.below(256);
                    let chunk = &donor[from..(from + n).min(donor.len())];
                    let at = rng.below(len + 1);
                    let end = (at + rng.below(256)).min(len);
                    bytes.splice(at..end, chunk.iter().copied());
                }
                4 if len >= 4 => {
                    let at = rng.below(len - 3);
                    let v = INTERESTING[rng.below(INTERESTING.len())];
                    bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
                _ if len > 0 => {
                    let i = rng.below(len);
                    bytes[i] = rng.next().to_le_bytes()[0];
                }
                _ => {}
            }
        }
    }

    /// Everything a caller may do with a parsed log.
    fn exercise(log: &EventLog) {
        let replay = log.replay();
        for e in &log.events {
            let _ = e.describe();
            let _ = e.data_matches_digest();
        }
        let _ = log.to_string();
        let _ = replay.to_string();
        serde_json::to_string(log).unwrap();
        serde_json::to_string(&replay).unwrap();
    }

    #[test]
    fn random_mutations_of_every_fixture_never_panic() {
        let donors: Vec<Vec<u8>> = FIXTURES.iter().map(|n| fixture(n)).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut parsed = 0;
        for original in &donors {
            for _ in 0..1500 {
                let mut bytes = original.clone();
                mutate(&mut rng, &mut bytes, &donors);
                if let Ok(log) = EventLog::parse(&bytes) {
                    exercise(&log);
                    parsed += 1;
                }
            }
        }
        // Some mutations must survive parsing, or the decoders were not exercised.
        assert!(parsed > 100, "{parsed}");
    }

    #[test]
    fn random_event_data_never_panics_the_decoders() {
        // Mutations confined to event data keep the framing intact, so every one parses and
        // reaches the decoders for its event type.
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for name in FIXTURES {
            let bytes = fixture(name);
            let log = parse(name);
            let ranges = data_ranges(&log, bytes.len());
            for _ in 0..1500 {
                let mut bad = bytes.clone();
                let range = &ranges[1 + rng.below(ranges.len() - 1)];
                if range.is_empty() {
                    continue;
                }
                for _ in 0..=rng.below(4) {
                    let i = range.start + rng.below(range.len());
                    if rng.below(3) == 0 && i + 8 <= range.end {
                        let v = u64::from(INTERESTING[rng.below(INTERESTING.len())]);
                        bad[i..i + 8].copy_from_slice(&v.to_le_bytes());
                    } else {
                        bad[i] = rng.next().to_le_bytes()[0];
                    }
                }
                exercise(&EventLog::parse(&bad).unwrap());
            }
        }
        // And every event type with random data.
        for kind in (0..=0x13)
            .chain(0x8000_0000..=0x8000_0010)
            .chain(0x8000_00e0..=0x8000_00e4)
        {
            for _ in 0..40 {
                let len = rng.below(300);
                let data: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
                let event = Event {
                    index: 0,
                    offset: 0,
                    pcr: 0,
                    event_type: kind,
                    digests: vec![(Bank::Sha256, vec![0; 32])],
                    data,
                };
                let _ = event.describe();
                let _ = event.data_matches_digest();
            }
        }
    }
}

mod runtime {
    use super::*;
    use hearth_eventlog::{ReplayError, RuntimeEvent, RuntimeLog, replay_all};

    fn line(pcr: u8, data: &str) -> String {
        RuntimeEvent::measure(pcr, "hearth-config", data, &[Bank::Sha256]).to_line()
    }

    #[test]
    fn runtime_events_extend_pcr_15_after_the_firmware_log() {
        let text = format!(
            "{}\n\n  \n{}\r\n",
            line(15, "appliance id 42"),
            line(15, "config sha256:abcd")
        );
        let runtime = RuntimeLog::parse(text.as_bytes()).unwrap();
        assert_eq!(runtime.events.len(), 2);
        assert_eq!(runtime.events[0].line, 1);
        assert_eq!(runtime.events[1].line, 4);
        assert_eq!(runtime.events[1].kind, "hearth-config");
        assert!(runtime.events.iter().all(RuntimeEvent::data_matches_digest));

        let firmware = parse("ovmf-uki-sha256");
        let replay = replay_all(&firmware, &runtime).unwrap();
        let mut pcr15 = vec![0u8; 32];
        for d in ["appliance id 42", "config sha256:abcd"] {
            pcr15 = Bank::Sha256.extend(&pcr15, &Bank::Sha256.hash(d.as_bytes()));
        }
        assert_eq!(replay.value(Bank::Sha256, 15), Some(pcr15.as_slice()));
        assert_eq!(
            replay.events_for(15),
            &[EventRef::Runtime(0), EventRef::Runtime(1)]
        );
        // The firmware PCRs are those of the firmware log alone.
        let guest = guest_pcrs("ovmf-uki-sha256");
        for pcr in [0, 4, 7, 11] {
            assert_eq!(
                replay.value(Bank::Sha256, pcr),
                guest.get(Bank::Sha256, pcr)
            );
        }
        assert_eq!(replay, firmware.replay().with_runtime(&runtime).unwrap());
        let json = serde_json::to_value(&replay).unwrap();
        assert_eq!(
            json["events"]["15"],
            serde_json::json!([{"runtime": 0}, {"runtime": 1}])
        );
    }

    #[test]
    fn runtime_events_continue_a_pcr_the_firmware_touched() {
        let firmware = parse("ovmf-uki-sha256");
        let runtime = RuntimeLog::parse(line(11, "late section").as_bytes()).unwrap();
        let replay = firmware.replay().with_runtime(&runtime).unwrap();
        let expected = Bank::Sha256.extend(
            guest_pcrs("ovmf-uki-sha256").get(Bank::Sha256, 11).unwrap(),
            &Bank::Sha256.hash(b"late section"),
        );
        assert_eq!(replay.value(Bank::Sha256, 11), Some(expected.as_slice()));
        assert_eq!(replay.events_for(11).last(), Some(&EventRef::Runtime(0)));
        assert_eq!(replay.events_for(11).len(), 9);
    }

    #[test]
    fn every_bank_of_the_replay_needs_a_runtime_digest() {
        let firmware = parse("ovmf-uki-4banks");
        let runtime = RuntimeLog::parse(format!("\n{}", line(15, "x")).as_bytes()).unwrap();
        assert_eq!(
            firmware.replay().with_runtime(&runtime).unwrap_err(),
            ReplayError::MissingDigest {
                line: 2,
                pcr: 15,
                bank: Bank::Sha1
            }
        );
        let all = RuntimeEvent::measure(15, "t", "x", &Bank::ALL);
        let runtime = RuntimeLog { events: vec![all] };
        let replay = firmware.replay().with_runtime(&runtime).unwrap();
        assert_eq!(replay.banks.len(), 4);
        assert!(replay.value(Bank::Sm3_256, 15).is_none());
        assert_eq!(
            replay.value(Bank::Sha384, 15),
            Some(
                Bank::Sha384
                    .extend(&[0; 48], &Bank::Sha384.hash(b"x"))
                    .as_slice()
            )
        );
    }

    #[test]
    fn lines_round_trip_through_text() {
        let log = RuntimeLog {
            events: vec![
                RuntimeEvent::measure(15, "identity", "id \"7\"\n", &[Bank::Sha256, Bank::Sha1]),
                RuntimeEvent::measure(15, "config", "", &[Bank::Sha384]),
            ],
        };
        let text = log.to_text();
        assert!(
            text.starts_with("{\"pcr\":15,\"digests\":{\"sha256\":\""),
            "{text}"
        );
        let back = RuntimeLog::parse(text.as_bytes()).unwrap();
        for (a, b) in back.events.iter().zip(&log.events) {
            assert_eq!(
                (a.pcr, &a.digests, &a.kind, &a.data),
                (b.pcr, &b.digests, &b.kind, &b.data)
            );
        }
        let json = serde_json::to_value(&back.events[0]).unwrap();
        assert_eq!(json["type"], "identity");
        assert_eq!(json["line"], 1);
        assert_eq!(json["data_matches_digest"], true);
    }

    #[test]
    fn bad_lines_are_refused_naming_line_and_field() {
        let good = line(15, "ok");
        let z = "00".repeat(32);
        let cases: Vec<(String, &str, &str)> = vec![
            (
                format!(
                    r#"{{"pcr":15,"digests":{{"sha256":"{z}"}},"type":"t","data":"d","extra":1}}"#
                ),
                "extra",
                "unknown field",
            ),
            (
                r#"{"pcr":15,"digests":{"sha256":"zz"},"type":"t","data":"d"}"#.to_owned(),
                "digests.sha256",
                "not hex",
            ),
            (
                r#"{"pcr":15,"digests":{"sha256":"abcd"},"type":"t","data":"d"}"#.to_owned(),
                "digests.sha256",
                "2 bytes, a sha256 digest is 32",
            ),
            (
                format!(r#"{{"pcr":15,"digests":{{"SHA256":"{z}"}},"type":"t","data":"d"}}"#),
                "digests.SHA256",
                "unknown bank",
            ),
            (
                format!(
                    r#"{{"pcr":15,"digests":{{"sha256":"{z}","sha256":"{z}"}},"type":"t","data":"d"}}"#
                ),
                "digests.sha256",
                "given twice",
            ),
            (
                format!(
                    r#"{{"pcr":15,"pcr":14,"digests":{{"sha256":"{z}"}},"type":"t","data":"d"}}"#
                ),
                "pcr",
                "given twice",
            ),
            (
                format!(r#"{{"pcr":24,"digests":{{"sha256":"{z}"}},"type":"t","data":"d"}}"#),
                "pcr",
                "PCR 24 does not exist",
            ),
            (
                format!(r#"{{"pcr":-1,"digests":{{"sha256":"{z}"}},"type":"t","data":"d"}}"#),
                "pcr",
                "a negative number",
            ),
            (
                format!(r#"{{"pcr":15,"digests":{{"sha256":"{z}"}},"type":"t"}}"#),
                "data",
                "missing",
            ),
            (
                r#"{"pcr":15,"digests":{},"type":"t","data":"d"}"#.to_owned(),
                "digests",
                "no digest",
            ),
            (
                format!(r#"{{"pcr":15,"digests":{{"sha256":"{z}"}},"type":7,"data":"d"}}"#),
                "type",
                "the number 7 where a string belongs",
            ),
            ("[1,2]".to_owned(), "line", "an array is not a JSON object"),
            ("{\"pcr\":".to_owned(), "line", "EOF"),
        ];
        for (bad, field, problem) in cases {
            let text = format!("{good}\n\n{bad}\n{good}\n");
            let err = RuntimeLog::parse(text.as_bytes()).unwrap_err();
            assert_eq!((err.line, err.field.as_str()), (3, field), "{bad}: {err}");
            assert!(err.problem.contains(problem), "{bad}: {err}");
            assert!(
                err.to_string().starts_with(&format!("line 3: {field}: ")),
                "{err}"
            );
        }
        let mut not_utf8 = format!("{good}\n{good}\n").into_bytes();
        not_utf8.extend_from_slice(b"\xff\n");
        let err = RuntimeLog::parse(&not_utf8).unwrap_err();
        assert_eq!((err.line, err.problem.as_str()), (3, "not UTF-8"));
        assert_eq!(RuntimeLog::parse(b"").unwrap().events.len(), 0);
    }
}
