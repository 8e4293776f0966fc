//! hearth-audit against real files: journals in temp directories, exports edited the ways an
//! attacker would, random mutations, and a writer process killed with SIGKILL.

#![allow(clippy::unwrap_used)]

#[path = "audit/crash.rs"]
mod crash;
#[path = "audit/export.rs"]
mod export;
#[path = "audit/journal.rs"]
mod journal;
#[path = "audit/robustness.rs"]
mod robustness;

use std::path::PathBuf;

use hearth_audit::{AuditKey, AuditLog, Entry, Head, Outcome, Record, Role, Timestamp};
use tempfile::TempDir;

pub fn key() -> AuditKey {
    AuditKey::from_bytes(&[0x42; 32])
}

pub fn other_key() -> AuditKey {
    AuditKey::from_bytes(&[0x43; 32])
}

/// A fixed time `i` seconds into a test session.
pub fn time(i: u64) -> Timestamp {
    Timestamp::from_unix_millis(1_700_000_000_000 + i * 1000 + i % 1000).unwrap()
}

/// A journal in its own temp directory.
pub struct TestLog {
    pub dir: TempDir,
    pub path: PathBuf,
    pub log: AuditLog,
}

impl TestLog {
    pub fn create() -> TestLog {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = AuditLog::create(&path, key()).unwrap();
        TestLog { dir, path, log }
    }

    /// Closes and reopens the journal, returning what open found.
    pub fn reopen(&mut self) -> hearth_audit::OpenReport {
        let (log, report) = AuditLog::open(&self.path, key()).unwrap();
        self.log = log;
        report
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    pub fn export(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.log.export_to(&mut out).unwrap();
        out
    }
}

/// A scripted console session of 50 records: 25 actions by three actors, each a started record
/// and its completion; every fifth fails; some actions overlap (two started before either
/// completes), as concurrent requests do.
pub struct Session {
    pub log: TestLog,
    pub records: Vec<Record>,
    pub export: Vec<u8>,
    pub head: Head,
}

pub const ACTORS: [(&str, Role); 4] = [
    ("alice", Role::Admin),
    ("bob", Role::Operator),
    ("carol", Role::Auditor),
    ("system", Role::System),
];

pub fn scripted_session() -> Session {
    let mut log = TestLog::create();
    let mut records = Vec::new();
    let mut clock = 0;
    let mut tick = || {
        clock += 1;
        time(clock)
    };
    let actions = [
        "users.create",
        "datasets.upload",
        "models.train",
        "endpoints.deploy",
        "tokens.create",
    ];
    let mut i = 0;
    while i < 25 {
        let start = |log: &mut TestLog, i: usize, t| {
            let (actor, role) = ACTORS[i % ACTORS.len()];
            let entry = Entry::started(actor, role, actions[i % actions.len()], format!("obj:{i}"));
            log.log.append_at(entry, t).unwrap()
        };
        let finish = |log: &mut TestLog, started: &Record, i: usize, t| {
            let entry = if i % 5 == 4 {
                Entry::failed(started, format!("step {i} failed: \"quota\" exceeded"))
            } else {
                Entry::succeeded(started)
            };
            log.log.append_at(entry, t).unwrap()
        };
        if i % 4 == 1 && i + 1 < 25 {
            // Two overlapping actions, completed in reverse order.
            let a = start(&mut log, i, tick());
            let b = start(&mut log, i + 1, tick());
            let b_done = finish(&mut log, &b, i + 1, tick());
            let a_done = finish(&mut log, &a, i, tick());
            records.extend([a, b, b_done, a_done]);
            i += 2;
        } else {
            let a = start(&mut log, i, tick());
            let a_done = finish(&mut log, &a, i, tick());
            records.extend([a, a_done]);
            i += 1;
        }
    }
    assert_eq!(records.len(), 50);
    assert!(
        records
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed(_)))
    );
    let export = log.export();
    let head = log.log.head();
    Session {
        log,
        records,
        export,
        head,
    }
}

/// The export's lines, without newlines.
pub fn lines(export: &[u8]) -> Vec<Vec<u8>> {
    let body = export.strip_suffix(b"\n").unwrap_or(export);
    body.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect()
}

/// Lines joined back into an export, each ending in a newline.
pub fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}
