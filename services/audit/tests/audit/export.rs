//! Exports of a scripted session: intact, then edited, deleted, inserted, reordered, truncated,
//! re-MAC'd and checked with the wrong key. Each is caught at the exact line.

use hearth_audit::{
    Break, BreakKind, Digest, ExportError, GENESIS, HeadCheck, Malformed, Outcome, ParentProblem,
    Record, Report, Role, Timestamp, verify_export, verify_export_file,
};
use serde_json::Value;

use crate::{join, key, lines, other_key, scripted_session};

fn verify(bytes: &[u8], with_key: bool) -> Report {
    let key = key();
    verify_export(bytes, with_key.then_some(&key)).unwrap()
}

/// Asserts that both with and without the key the chain breaks first at `line` as `kind` says.
fn assert_break(
    bytes: &[u8],
    with_key: bool,
    line: u64,
    seq: Option<u64>,
    kind: &dyn Fn(&BreakKind) -> bool,
) {
    let report = verify(bytes, with_key);
    let at = report
        .first_break
        .clone()
        .unwrap_or_else(|| panic!("no break found (key: {with_key})"));
    assert_eq!(at.line, line, "{at}");
    assert_eq!(at.expected_seq, line - 1, "{at}");
    assert_eq!(at.seq, seq, "{at}");
    assert!(kind(&at.kind), "{at}");
    assert_eq!(report.records, line - 1, "only the prefix is counted");
    assert_eq!(report.head.seq, (line - 1).checked_sub(1));
}

type Edit = dyn Fn(&mut serde_json::Map<String, Value>);

fn edit_json(line: &[u8], edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(line).unwrap();
    edit(value.as_object_mut().unwrap());
    serde_json::to_vec(&value).unwrap()
}

fn flip_hex(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[10] = if chars[10] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

fn record(line: &[u8]) -> Record {
    Record::from_json_line(line).unwrap()
}

#[test]
fn scripted_session_verifies_with_and_without_the_key() {
    let session = scripted_session();
    for with_key in [false, true] {
        let report = verify(&session.export, with_key);
        assert!(report.is_intact(), "{:?}", report.first_break);
        assert_eq!(report.records, 50);
        assert_eq!(report.lines, 50);
        assert_eq!(report.head, session.head);
        assert_eq!(report.head.seq, Some(49));
        assert_eq!(report.mac_checked, with_key);
        assert_eq!(report.unfinished, Vec::<u64>::new());
        assert_eq!(report.time_regressions, 0);
        assert_eq!(
            report.time_range,
            Some((session.records[0].time, session.records[49].time))
        );
        assert_eq!(report.check_head(&session.head.hash), HeadCheck::Matches);
        assert_eq!(
            report.check_head_hex(&session.head.hash.to_hex().to_uppercase()),
            Ok(HeadCheck::Matches)
        );
    }
    // The export is the journal, byte for byte, one record per line.
    assert_eq!(session.export, session.log.bytes());
    let parsed: Vec<Record> = lines(&session.export).iter().map(|l| record(l)).collect();
    assert_eq!(parsed, session.records);
}

#[test]
fn editing_any_field_of_a_record_names_that_record() {
    let session = scripted_session();
    let all = lines(&session.export);
    // A failed completion, so that it has every field (reason and parent included).
    let target = session
        .records
        .iter()
        .position(|r| r.seq > 10 && matches!(r.outcome, Outcome::Failed(_)))
        .unwrap();
    let seq = session.records[target].seq;
    let parent = session.records[target].parent.unwrap();
    let edits: Vec<(&str, Box<Edit>)> = vec![
        (
            "seq",
            Box::new(move |m| {
                m["seq"] = (seq + 1).into();
            }),
        ),
        (
            "time",
            Box::new(|m| {
                let t = Timestamp::parse_rfc3339(m["time"].as_str().unwrap()).unwrap();
                let later = Timestamp::from_unix_millis(t.unix_millis() + 1).unwrap();
                m["time"] = later.to_string().into();
            }),
        ),
        (
            "actor",
            Box::new(|m| {
                m["actor"] = "mallory".into();
            }),
        ),
        (
            "role",
            Box::new(|m| {
                let other = if m["role"] == "admin" {
                    Role::Operator
                } else {
                    Role::Admin
                };
                m["role"] = other.as_str().into();
            }),
        ),
        (
            "action",
            Box::new(|m| {
                m["action"] = "users.delete".into();
            }),
        ),
        (
            "object",
            Box::new(|m| {
                m["object"] = "obj:other".into();
            }),
        ),
        (
            "outcome",
            Box::new(|m| {
                m["outcome"] = "succeeded".into();
                m.remove("reason");
            }),
        ),
        (
            "reason",
            Box::new(|m| {
                m["reason"] = "nothing to see".into();
            }),
        ),
        (
            "parent",
            Box::new(move |m| {
                m["parent"] = (parent - 1).into();
            }),
        ),
        (
            "prev",
            Box::new(|m| {
                m["prev"] = flip_hex(m["prev"].as_str().unwrap()).into();
            }),
        ),
        (
            "hash",
            Box::new(|m| {
                m["hash"] = flip_hex(m["hash"].as_str().unwrap()).into();
            }),
        ),
    ];
    for (field, edit) in &edits {
        let mut edited = all.clone();
        edited[target] = edit_json(&all[target], edit);
        let claimed = if *field == "seq" { seq + 1 } else { seq };
        for with_key in [false, true] {
            let report = verify(&join(&edited), with_key);
            let at = report
                .first_break
                .clone()
                .unwrap_or_else(|| panic!("{field} edit missed"));
            assert_eq!(
                (at.line, at.expected_seq, at.seq),
                (seq + 1, seq, Some(claimed)),
                "{field}: {at}"
            );
            assert!(
                matches!(at.kind, BreakKind::HashMismatch { .. }),
                "{field}: {at}"
            );
            assert_eq!(report.records, seq, "{field}");
            assert!(at.to_string().contains("edited"), "{at}");
        }
    }
    assert_eq!(edits.len(), 11, "every field but mac (below)");

    // The MAC is outside the hash: only the key sees an edit of it.
    let mut edited = all.clone();
    edited[target] = edit_json(&all[target], |m| {
        m["mac"] = flip_hex(m["mac"].as_str().unwrap()).into();
    });
    let bytes = join(&edited);
    assert!(verify(&bytes, false).is_intact());
    assert_break(&bytes, true, seq + 1, Some(seq), &|k| {
        matches!(k, BreakKind::MacMismatch)
    });
}

#[test]
fn an_edited_and_rehashed_record_fails_its_mac_and_the_next_link() {
    let session = scripted_session();
    let mut all = lines(&session.export);
    let mut forged = record(&all[20]);
    forged.actor = "mallory".into();
    forged.hash = forged.compute_hash();
    all[20] = forged.to_json_line().into_bytes();
    let bytes = join(&all);
    assert_break(&bytes, true, 21, Some(20), &|k| {
        matches!(k, BreakKind::MacMismatch)
    });
    assert_break(
        &bytes,
        false,
        22,
        Some(21),
        &|k| matches!(k, BreakKind::PrevMismatch { expected, .. } if *expected == forged.hash),
    );
}

#[test]
fn a_chain_rebuilt_without_the_key_is_caught_by_the_key_and_by_the_attested_head() {
    let session = scripted_session();
    let mut all = lines(&session.export);
    let mut prev = record(&all[29]).hash;
    for (i, line) in all.iter_mut().enumerate().skip(30) {
        let mut r = record(line);
        if i == 30 {
            r.actor = "mallory".into();
        }
        r.prev = prev;
        r.hash = r.compute_hash();
        prev = r.hash;
        *line = r.to_json_line().into_bytes();
    }
    let bytes = join(&all);
    let report = verify(&bytes, false);
    assert!(
        report.is_intact(),
        "a consistent chain without the key cannot be told apart"
    );
    assert_eq!(report.check_head(&session.head.hash), HeadCheck::Missing);
    assert_break(&bytes, true, 31, Some(30), &|k| {
        matches!(k, BreakKind::MacMismatch)
    });
}

#[test]
fn deleting_a_record_is_a_seq_gap_at_the_next_line() {
    let session = scripted_session();
    for deleted in [0usize, 20, 48] {
        let mut all = lines(&session.export);
        all.remove(deleted);
        let seq = deleted as u64;
        for with_key in [false, true] {
            assert_break(&join(&all), with_key, seq + 1, Some(seq + 1), &|k| {
                *k == BreakKind::SeqGap {
                    expected: seq,
                    found: seq + 1,
                }
            });
        }
    }
}

#[test]
fn inserting_a_record_is_caught_where_it_shows() {
    let session = scripted_session();
    let all = lines(&session.export);

    // A copy of an earlier record: its seq repeats.
    let mut copied = all.clone();
    copied.insert(30, all[10].clone());
    for with_key in [false, true] {
        assert_break(&join(&copied), with_key, 31, Some(10), &|k| {
            *k == BreakKind::SeqRepeated {
                expected: 30,
                found: 10,
            }
        });
    }

    // A forged record that fits the chain (right seq, prev and hash, made-up MAC): the key
    // names it; without the key the genuine record after it repeats its seq.
    let genuine = record(&all[30]);
    let mut forged = genuine.clone();
    forged.action = "users.delete".into();
    forged.outcome = Outcome::Started;
    forged.parent = None;
    forged.hash = forged.compute_hash();
    let mut inserted = all.clone();
    inserted.insert(30, forged.to_json_line().into_bytes());
    let bytes = join(&inserted);
    assert_break(&bytes, true, 31, Some(30), &|k| {
        matches!(k, BreakKind::MacMismatch)
    });
    assert_break(&bytes, false, 32, Some(30), &|k| {
        *k == BreakKind::SeqRepeated {
            expected: 31,
            found: 30,
        }
    });
}

#[test]
fn swapping_two_adjacent_records_is_reported_as_reordered() {
    let session = scripted_session();
    for first in [0usize, 20, 48] {
        let mut all = lines(&session.export);
        all.swap(first, first + 1);
        let seq = first as u64;
        for with_key in [false, true] {
            assert_break(&join(&all), with_key, seq + 1, Some(seq + 1), &|k| {
                *k == BreakKind::Reordered {
                    expected: seq,
                    found: seq + 1,
                }
            });
        }
    }
}

#[test]
fn a_truncated_export_verifies_but_misses_the_attested_head() {
    let session = scripted_session();
    let all = lines(&session.export);
    let truncated = join(&all[..47]);
    let report = verify(&truncated, true);
    // Cutting records off the end leaves a valid chain: the export alone cannot show it.
    assert!(report.is_intact());
    assert_eq!(report.records, 47);
    assert_eq!(report.head.seq, Some(46));
    assert_eq!(report.head.hash, session.records[46].hash);
    // Against the head an attestation quote carried, it shows.
    assert_eq!(report.check_head(&session.head.hash), HeadCheck::Missing);
    // The other way round, a later export extends an earlier attested head.
    let full = verify(&session.export, false);
    assert_eq!(
        full.check_head(&report.head.hash),
        HeadCheck::Extends { records_after: 3 }
    );
    assert_eq!(
        full.check_head(&GENESIS),
        HeadCheck::Extends { records_after: 50 }
    );
    assert_eq!(full.check_head(&Digest([7; 32])), HeadCheck::Missing);
    full.check_head_hex("not hex").unwrap_err();
    full.check_head_hex(&"ab".repeat(31)).unwrap_err();
}

#[test]
fn head_checks_only_trust_records_before_a_break() {
    let session = scripted_session();
    let mut all = lines(&session.export);
    all.remove(40);
    let report = verify(&join(&all), true);
    assert_eq!(report.records, 40);
    assert_eq!(
        report.check_head(&session.records[39].hash),
        HeadCheck::Matches
    );
    assert_eq!(report.check_head(&session.head.hash), HeadCheck::Missing);
}

#[test]
fn a_changed_mac_or_a_wrong_key_fails_at_the_first_record_it_touches() {
    let session = scripted_session();
    let mut all = lines(&session.export);
    all[33] = edit_json(&all[33], |m| {
        m["mac"] = Digest([0; 32]).to_hex().into();
    });
    assert_break(&join(&all), true, 34, Some(33), &|k| {
        matches!(k, BreakKind::MacMismatch)
    });
    assert!(verify(&join(&all), false).is_intact());

    let wrong = other_key();
    let report = verify_export(&session.export, Some(&wrong)).unwrap();
    let at = report.first_break.unwrap();
    assert_eq!(
        (at.line, at.seq, at.kind),
        (1, Some(0), BreakKind::MacMismatch)
    );
    assert_eq!(report.records, 0);
    assert_eq!(report.head.hash, GENESIS);
}

#[test]
fn a_malformed_line_is_named_by_its_number() {
    let session = scripted_session();
    let all = lines(&session.export);
    type Expect = fn(&Malformed) -> bool;
    let cases: [(&[u8], Expect); 5] = [
        (b"garbage", |m| matches!(m, Malformed::Json { .. })),
        (b"", |m| *m == Malformed::Empty),
        (b"{}", |m| matches!(m, Malformed::Json { .. })),
        (&[0xff, 0xfe, b'{'], |m| matches!(m, Malformed::Json { .. })),
        (&[b'x'; hearth_audit::MAX_LINE + 1], |m| {
            matches!(m, Malformed::TooLong { .. })
        }),
    ];
    for (bad, expected) in cases {
        let mut edited = all.clone();
        edited[4] = bad.to_vec();
        for with_key in [false, true] {
            let report = verify(&join(&edited), with_key);
            let at = report.first_break.unwrap();
            assert_eq!((at.line, at.expected_seq, at.seq), (5, 4, None), "{at}");
            assert!(
                matches!(&at.kind, BreakKind::Malformed(m) if expected(m)),
                "{at}"
            );
            assert_eq!(report.records, 4);
            assert_eq!(report.lines, 50);
        }
    }
    // A torn half line at the end of an export is malformed too: exports are complete.
    let mut torn = session.export.clone();
    torn.extend_from_slice(&all[0][..30]);
    let at = verify(&torn, true).first_break.unwrap();
    assert_eq!((at.line, at.expected_seq), (51, 50));
}

#[test]
fn completions_must_close_an_open_started_record_of_the_same_action() {
    let session = scripted_session();
    let key = key();
    let last = session.records.last().unwrap();
    let started = session
        .records
        .iter()
        .find(|r| r.outcome == Outcome::Started)
        .unwrap();
    let completion = session.records.iter().find(|r| r.parent.is_some()).unwrap();
    let open_started = {
        // A new started record, appended by forging with the key (as only the appliance can).
        let mut r = started.clone();
        r.seq = 50;
        r.prev = last.hash;
        r.object = "obj:new".into();
        r.hash = r.compute_hash();
        r.mac = key.mac(&r.hash);
        r
    };
    let cases = [
        (
            started.seq,
            started.object.clone(),
            ParentProblem::AlreadyCompleted,
        ),
        (
            completion.seq,
            completion.object.clone(),
            ParentProblem::NotStarted,
        ),
        (50, "obj:other".to_owned(), ParentProblem::OtherAction),
    ];
    for (parent, object, problem) in cases {
        let mut done = open_started.clone();
        done.seq = 51;
        done.prev = open_started.hash;
        done.outcome = Outcome::Succeeded;
        done.parent = Some(parent);
        done.object = object;
        done.hash = done.compute_hash();
        done.mac = key.mac(&done.hash);
        let mut bytes = session.export.clone();
        for r in [&open_started, &done] {
            bytes.extend_from_slice(r.to_json_line().as_bytes());
            bytes.push(b'\n');
        }
        let report = verify_export(&bytes, Some(&key)).unwrap();
        let at = report.first_break.unwrap();
        assert_eq!((at.line, at.seq), (52, Some(51)), "{at}");
        assert_eq!(at.kind, BreakKind::BadParent { parent, problem }, "{at}");
        assert_eq!(report.unfinished, vec![50]);
    }
}

#[test]
fn empty_and_unterminated_exports() {
    let empty = verify(b"", true);
    assert!(empty.is_intact());
    assert_eq!((empty.records, empty.lines, empty.head.seq), (0, 0, None));
    assert_eq!(empty.head.hash, GENESIS);
    assert_eq!(empty.time_range, None);
    assert_eq!(empty.check_head(&GENESIS), HeadCheck::Matches);

    let newline_only = verify(b"\n", true);
    assert_eq!(newline_only.first_break.unwrap().line, 1);

    // An export whose last newline was lost still verifies: the line is complete.
    let session = scripted_session();
    let unterminated = session.export.strip_suffix(b"\n").unwrap();
    let report = verify(unterminated, true);
    assert!(report.is_intact());
    assert_eq!(report.records, 50);
}

#[test]
fn export_files_are_bounded_and_read_errors_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.jsonl");
    let file = std::fs::File::create(&big).unwrap();
    // Sparse: no disk space used.
    file.set_len(hearth_audit::MAX_EXPORT as u64 + 1).unwrap();
    assert!(matches!(
        verify_export_file(&big, None),
        Err(ExportError::TooLarge { .. })
    ));
    assert!(matches!(
        verify_export_file(&dir.path().join("missing"), None),
        Err(ExportError::Read { .. })
    ));
    let session = scripted_session();
    let good = dir.path().join("good.jsonl");
    std::fs::write(&good, &session.export).unwrap();
    assert!(verify_export_file(&good, Some(&key())).unwrap().is_intact());
}

#[test]
fn unfinished_actions_and_clock_steps_are_reported_not_breaks() {
    let mut log = crate::TestLog::create();
    let a = log
        .log
        .append_at(
            hearth_audit::Entry::started("alice", Role::Admin, "users.create", "user:x"),
            crate::time(10),
        )
        .unwrap();
    log.log
        .append_at(
            hearth_audit::Entry::started("bob", Role::Operator, "models.train", "m"),
            crate::time(5),
        )
        .unwrap();
    log.log
        .append_at(hearth_audit::Entry::succeeded(&a), crate::time(11))
        .unwrap();
    let report = verify(&log.export(), true);
    assert!(report.is_intact());
    assert_eq!(report.unfinished, vec![1]);
    assert_eq!(report.time_regressions, 1);
    assert_eq!(report.time_range, Some((crate::time(10), crate::time(11))));
    assert_eq!(log.log.unfinished(), vec![1]);
}

#[test]
fn break_messages_name_the_line_and_seq() {
    let at = Break {
        line: 21,
        expected_seq: 20,
        seq: Some(21),
        kind: BreakKind::SeqGap {
            expected: 20,
            found: 21,
        },
    };
    assert_eq!(
        at.to_string(),
        "line 21 (expected seq 20, found seq 21): seq gap: records 20..21 are missing (deleted)"
    );
}

#[test]
fn an_export_written_from_the_spec_alone_verifies() {
    // Written by data/spec-vector.py, an independent implementation of the documented format.
    let bytes = include_bytes!("data/spec-vector.jsonl");
    let key = hearth_audit::AuditKey::from_bytes(&[7; 32]);
    let report = verify_export(bytes, Some(&key)).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 4);
    assert_eq!(
        report.check_head_hex("91daa261293435dcc90cfe4cf44f0bf8ba8700c2e0f49b7f908947df28e11d6a"),
        Ok(HeadCheck::Matches)
    );
    let failed = Record::from_json_line(lines(bytes)[3].as_slice()).unwrap();
    assert_eq!(failed.outcome, Outcome::Failed("out of \"memory\"".into()));
    assert_eq!(failed.object, "model:é");
    // And the crate writes those records byte for byte as Python's json.dumps did.
    for line in lines(bytes) {
        assert_eq!(
            Record::from_json_line(&line)
                .unwrap()
                .to_json_line()
                .as_bytes(),
            line
        );
    }
}
