//! The journal on disk: append, reopen, tamper refusal, torn-tail recovery, entry rules.

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use hearth_audit::{
    AppendError, AuditLog, BreakKind, CreateError, Entry, FieldProblem, GENESIS, Head, MAX_LINE,
    Malformed, OpenError, Outcome, ParentProblem, Role, TornTail, verify_export,
};

use crate::{TestLog, key, other_key, time};

fn started(i: u64) -> Entry {
    Entry::started("alice", Role::Admin, "users.create", format!("user:{i}"))
}

/// Appends `pairs` started/succeeded pairs.
fn append_pairs(log: &mut TestLog, pairs: u64) {
    for i in 0..pairs {
        let s = log.log.append_at(started(i), time(2 * i)).unwrap();
        log.log
            .append_at(Entry::succeeded(&s), time(2 * i + 1))
            .unwrap();
    }
}

fn tampered(
    result: Result<(AuditLog, hearth_audit::OpenReport), OpenError>,
) -> hearth_audit::Break {
    match result {
        Err(OpenError::Tampered { at, .. }) => *at,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn seqs_count_from_zero_and_each_prev_is_the_last_hash() {
    let mut log = TestLog::create();
    assert_eq!(log.log.head(), Head::GENESIS);
    assert_eq!(log.log.audit_head(), [0; 32]);
    let mut prev = GENESIS;
    let mut heads = HashSet::from([log.log.audit_head()]);
    for i in 0..10 {
        let r = log.log.append_at(started(i), time(i)).unwrap();
        assert_eq!(r.seq, i);
        assert_eq!(r.prev, prev);
        assert_eq!(r.hash, r.compute_hash());
        assert!(key().verify(&r.hash, &r.mac));
        assert_eq!(r.time, time(i));
        assert_eq!(
            log.log.head(),
            Head {
                seq: Some(i),
                hash: r.hash
            }
        );
        assert!(
            heads.insert(log.log.audit_head()),
            "the head moves with every append"
        );
        prev = r.hash;
    }
}

#[test]
fn reopening_round_trips_the_chain_and_continues_it() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 5);
    let head = log.log.head();
    let bytes = log.bytes();

    let report = log.reopen();
    assert_eq!(report.records, 10);
    assert_eq!(report.head, head);
    assert_eq!(report.unfinished, Vec::<u64>::new());
    assert_eq!(report.torn, None);
    assert_eq!(log.log.head(), head);
    assert_eq!(log.bytes(), bytes, "opening changes nothing");

    let next = log.log.append_at(started(99), time(99)).unwrap();
    assert_eq!(next.seq, 10);
    assert_eq!(next.prev, head.hash);
    // A completion may close a record started before the reopen.
    let report = log.reopen();
    assert_eq!(report.unfinished, vec![10]);
    let s =
        hearth_audit::Record::from_json_line(log.bytes().split(|&b| b == b'\n').nth(10).unwrap())
            .unwrap();
    log.log
        .append_at(Entry::failed(&s, "disk full"), time(100))
        .unwrap();
    let export = log.export();
    let verified = verify_export(&export, Some(&key())).unwrap();
    assert!(verified.is_intact());
    assert_eq!(verified.records, 12);
    assert_eq!(verified.head, log.log.head());
    assert_eq!(export, log.bytes());
}

#[test]
fn create_refuses_an_existing_journal_and_open_refuses_a_missing_one() {
    let log = TestLog::create();
    assert!(matches!(
        AuditLog::create(&log.path, key()),
        Err(CreateError::AlreadyExists { .. })
    ));
    let missing = log.dir.path().join("gone.jsonl");
    match AuditLog::open(&missing, key()) {
        Err(OpenError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_journal_edited_on_disk_refuses_to_open_naming_the_record() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 5);
    let original = log.bytes();
    let text = String::from_utf8(original.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // An edited field.
    let edited = text.replacen("user:3", "user:X", 1);
    std::fs::write(&log.path, &edited).unwrap();
    let at = tampered(AuditLog::open(&log.path, key()));
    assert_eq!((at.line, at.expected_seq, at.seq), (7, 6, Some(6)), "{at}");
    assert!(matches!(at.kind, BreakKind::HashMismatch { .. }));

    // A deleted record.
    let mut deleted = lines.clone();
    deleted.remove(3);
    std::fs::write(&log.path, deleted.join("\n") + "\n").unwrap();
    let at = tampered(AuditLog::open(&log.path, key()));
    assert_eq!(
        (at.line, at.kind),
        (
            4,
            BreakKind::SeqGap {
                expected: 3,
                found: 4
            }
        )
    );

    // Garbage in the middle, and a garbled last line that does end in a newline.
    let mut garbled = lines.clone();
    garbled[9] = "{\"seq\":9,";
    std::fs::write(&log.path, garbled.join("\n") + "\n").unwrap();
    let at = tampered(AuditLog::open(&log.path, key()));
    assert_eq!((at.line, at.seq), (10, None));
    assert!(matches!(
        at.kind,
        BreakKind::Malformed(Malformed::Json { .. })
    ));

    // The right journal under another key.
    std::fs::write(&log.path, &original).unwrap();
    let at = tampered(AuditLog::open(&log.path, other_key()));
    assert_eq!((at.line, at.kind), (1, BreakKind::MacMismatch));

    // Refusal changed nothing on disk.
    assert_eq!(log.bytes(), original);
    AuditLog::open(&log.path, key()).unwrap();
}

#[test]
fn a_torn_final_line_is_cut_off_reported_and_the_chain_goes_on() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 3);
    let good = log.bytes();
    let head = log.log.head();

    // A crash mid-append: part of the next line reached the file, no newline.
    let mut complete = TestLog::create();
    append_pairs(&mut complete, 4);
    let next_line: Vec<u8> = complete
        .bytes()
        .split(|&b| b == b'\n')
        .nth(6)
        .unwrap()
        .to_vec();
    for torn_len in [1, 40, next_line.len()] {
        let torn = &next_line[..torn_len];
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log.path)
            .unwrap();
        file.write_all(torn).unwrap();
        drop(file);

        let report = log.reopen();
        assert_eq!(
            report.torn,
            Some(TornTail {
                offset: good.len() as u64,
                bytes: torn.to_vec()
            }),
            "the whole tail is cut, even a complete record without its newline"
        );
        assert_eq!(report.records, 6);
        assert_eq!(report.head, head);
        assert_eq!(
            log.bytes(),
            good,
            "cut back to the last acknowledged record"
        );
        assert_eq!(log.reopen().torn, None, "recovery is done once");
    }

    // Zeros from a size that got ahead of the data, too.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log.path)
        .unwrap();
    file.write_all(&[0; 300]).unwrap();
    drop(file);
    assert_eq!(log.reopen().torn.unwrap().bytes.len(), 300);

    let r = log.log.append_at(started(50), time(50)).unwrap();
    assert_eq!((r.seq, r.prev), (6, head.hash));
    assert!(
        verify_export(&log.bytes(), Some(&key()))
            .unwrap()
            .is_intact()
    );
}

#[test]
fn a_tail_longer_than_any_line_is_refused_not_cut() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 2);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log.path)
        .unwrap();
    file.write_all(&vec![b'x'; MAX_LINE + 1]).unwrap();
    drop(file);
    let at = tampered(AuditLog::open(&log.path, key()));
    assert_eq!(at.line, 5);
    assert!(matches!(
        at.kind,
        BreakKind::Malformed(Malformed::TooLong { .. })
    ));
}

#[test]
fn invalid_entries_are_refused_before_anything_is_written() {
    let mut log = TestLog::create();
    let s = log.log.append_at(started(1), time(1)).unwrap();
    let done = log.log.append_at(Entry::succeeded(&s), time(2)).unwrap();
    let other = log.log.append_at(started(2), time(3)).unwrap();
    let before = log.bytes();

    let invalid = |r| match r {
        Err(AppendError::Invalid(e)) => (e.field, e.problem),
        other => panic!("{other:?}"),
    };
    let mut e = started(3);
    e.action = "Users Create".into();
    assert_eq!(
        invalid(log.log.append_at(e, time(4))),
        ("action", FieldProblem::ActionCharacter)
    );
    let mut e = started(3);
    e.actor = String::new();
    assert_eq!(
        invalid(log.log.append_at(e, time(4))),
        ("actor", FieldProblem::Empty)
    );
    let mut e = started(3);
    e.object = "x".repeat(hearth_audit::MAX_OBJECT + 1);
    assert!(matches!(
        invalid(log.log.append_at(e, time(4))),
        ("object", FieldProblem::TooLong { .. })
    ));
    let mut e = started(3);
    e.parent = Some(0);
    assert_eq!(
        invalid(log.log.append_at(e, time(4))),
        ("parent", FieldProblem::ParentOnStarted)
    );
    assert_eq!(
        invalid(log.log.append_at(Entry::failed(&other, ""), time(4))),
        ("reason", FieldProblem::Empty)
    );

    let parent = |r| match r {
        Err(AppendError::Parent { parent, problem }) => (parent, problem),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        parent(log.log.append_at(Entry::succeeded(&s), time(4))),
        (0, ParentProblem::AlreadyCompleted)
    );
    assert_eq!(
        parent(log.log.append_at(Entry::succeeded(&done), time(4))),
        (1, ParentProblem::NotStarted)
    );
    let mut e = Entry::succeeded(&other);
    e.object = "user:someone-else".into();
    assert_eq!(
        parent(log.log.append_at(e, time(4))),
        (2, ParentProblem::OtherAction)
    );
    let mut e = Entry::succeeded(&other);
    e.parent = Some(77);
    assert_eq!(
        parent(log.log.append_at(e, time(4))),
        (77, ParentProblem::NotStarted)
    );

    assert_eq!(log.bytes(), before, "refused entries leave no trace");
    let r = log
        .log
        .append_at(Entry::succeeded(&other), time(5))
        .unwrap();
    assert_eq!((r.seq, r.outcome), (3, Outcome::Succeeded));
}

#[test]
fn concurrent_requests_share_the_log_behind_a_mutex() {
    // `test.dir` (the temp dir) lives to the end of the test; only the log moves.
    let test = TestLog::create();
    let path = test.path.clone();
    let shared = Arc::new(Mutex::new(test.log));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let entry = Entry::started(
                        format!("user{t}"),
                        Role::Operator,
                        "jobs.run",
                        format!("job:{t}:{i}"),
                    );
                    let s = shared.lock().unwrap().append(entry).unwrap();
                    shared.lock().unwrap().append(Entry::succeeded(&s)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = shared.lock().unwrap();
    assert_eq!(log.head().seq, Some(79));
    let report = verify_export(&std::fs::read(&path).unwrap(), Some(&key())).unwrap();
    assert!(report.is_intact(), "{:?}", report.first_break);
    assert_eq!(report.records, 80);
    assert!(report.unfinished.is_empty());
}

#[test]
fn debug_output_carries_no_key_material() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 1);
    let shown = format!("{:?} {:#?} {:?}", log.log, log.log, key());
    assert!(!shown.contains("4242"), "{shown}");
    assert!(!shown.contains("66, 66"), "{shown}");
    assert!(shown.contains("AuditLog"));
    assert!(format!("{:?}", key()).contains("redacted"));
}

#[test]
fn a_crash_during_the_first_append_leaves_an_empty_log() {
    let log = TestLog::create();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log.path)
        .unwrap();
    file.write_all(b"{\"seq\":0,\"ti").unwrap();
    drop(file);
    let (mut reopened, report) = AuditLog::open(&log.path, key()).unwrap();
    assert_eq!(report.records, 0);
    assert_eq!(report.head, Head::GENESIS);
    assert_eq!(report.torn.unwrap().offset, 0);
    assert_eq!(std::fs::metadata(&log.path).unwrap().len(), 0);
    assert_eq!(reopened.append_at(started(0), time(0)).unwrap().seq, 0);
}

#[test]
fn refusals_say_where_and_why() {
    let mut log = TestLog::create();
    append_pairs(&mut log, 2);
    let text = String::from_utf8(log.bytes())
        .unwrap()
        .replacen("user:1", "user:9", 1);
    std::fs::write(&log.path, text).unwrap();
    let err = AuditLog::open(&log.path, key()).unwrap_err();
    let cause = std::error::Error::source(&err).unwrap().to_string();
    assert!(err.to_string().contains("does not verify"), "{err}");
    assert!(
        cause.starts_with("line 3 (expected seq 2, found seq 2): edited"),
        "{cause}"
    );
}

#[test]
fn the_log_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<AuditLog>();
}
