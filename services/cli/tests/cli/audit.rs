//! `hearth audit verify` on real exports of a real journal.

use hearth_audit::{AuditKey, AuditLog, Entry, Role};

use crate::{ok, run, stderr};

/// A journal of `pairs` started/succeeded actions, exported; returns the export and its head.
fn export(dir: &std::path::Path, pairs: usize) -> (Vec<u8>, String) {
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::create(&path, AuditKey::from_bytes(&[7; 32])).unwrap();
    for i in 0..pairs {
        let started = log
            .append(Entry::started(
                "alice",
                Role::Admin,
                "users.create",
                format!("user:u{i}"),
            ))
            .unwrap();
        log.append(Entry::succeeded(&started)).unwrap();
    }
    let mut out = Vec::new();
    log.export_to(&mut out).unwrap();
    (out, log.head().hash.to_hex())
}

#[test]
fn an_intact_export_passes_and_every_edit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, head) = export(dir.path(), 5);
    let file = dir.path().join("export.jsonl");
    std::fs::write(&file, &bytes).unwrap();
    let f = file.to_str().unwrap();

    let text = String::from_utf8(ok(run(
        None,
        &["audit", "verify", f, "--head", &head],
        b"",
        "off",
    )))
    .unwrap();
    assert!(text.starts_with("audit log intact: 10 records"), "{text}");
    assert!(text.contains("ends exactly at the attested head"), "{text}");

    // Edit one record (the third line's actor): exit 1, the line named.
    let edited = String::from_utf8(bytes.clone())
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 2 {
                l.replace("alice", "mallory")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    std::fs::write(&file, edited).unwrap();
    let out = run(None, &["audit", "verify", f], b"", "off");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("audit log BROKEN after 2 intact records: line 3"),
        "{text}"
    );

    // Cut the last two records: the chain is intact, but the attested head is not reached.
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    std::fs::write(&file, lines[..8].concat()).unwrap();
    let out = run(
        None,
        &["audit", "verify", f, "--head", &head, "--json"],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["records"], 8);
    assert_eq!(report["attested_head"], "missing");
    assert_eq!(report["intact"], false);

    let out = run(
        None,
        &["audit", "verify", "/nonexistent/export"],
        b"",
        "off",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: unusable input: reading /nonexistent/export"),
        "{}",
        stderr(&out)
    );
}
