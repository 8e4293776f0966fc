//! kill -9: a writer process appends as fast as it can and prints each record it got back from
//! `append` (so each printed record was acknowledged); it is killed with SIGKILL at a random
//! moment. After every kill, the journal must open (cutting a torn tail if there is one), and
//! every acknowledged record must be in it, unchanged.
//!
//! The writer is this test binary itself, run with a filter for `crash::writer_process` and
//! `HEARTH_AUDIT_CRASH_JOURNAL` set; without that variable, `writer_process` does nothing.
//! SIGKILL loses no page cache, so this checks the process-crash path (torn writes by a killed
//! process, recovery, no lost acknowledgement), not power loss.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use hearth_audit::{AuditLog, Entry, Record, Role, verify_export};

use crate::{key, lines};

const ENV: &str = "HEARTH_AUDIT_CRASH_JOURNAL";
const ROUNDS: u64 = 6;

/// Kills the child if the test panics first.
struct Killer(Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn writer_process() {
    let Some(path) = std::env::var_os(ENV) else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    let mut log = if path.exists() {
        AuditLog::open(&path, key()).unwrap().0
    } else {
        AuditLog::create(&path, key()).unwrap()
    };
    for i in 0u64.. {
        let s = log
            .append(Entry::started(
                "system",
                Role::System,
                "jobs.run",
                format!("job:{i}"),
            ))
            .unwrap();
        println!("acked {}", s.to_json_line());
        let done = log.append(Entry::succeeded(&s)).unwrap();
        println!("acked {}", done.to_json_line());
    }
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut acked: Vec<Record> = Vec::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..ROUNDS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 5 + seed % 60;
        let child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::writer_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut child = Killer(child);
        let stdout = child.0.stdout.take().unwrap();
        let mut seen = 0;
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap() > 0 {
            // libtest may print "test crash::writer_process ... " before the first ack.
            if let Some((_, json)) = line.trim_end().split_once("acked ") {
                acked.push(Record::from_json_line(json.as_bytes()).unwrap());
                seen += 1;
                if seen == kill_after {
                    child.0.kill().unwrap();
                }
            }
            line.clear();
        }
        drop(child);
        assert!(seen >= kill_after, "round {round}: the writer died early");

        let (log, report) = AuditLog::open(&path, key()).unwrap();
        let export = {
            let mut out = Vec::new();
            log.export_to(&mut out).unwrap();
            out
        };
        let verified = verify_export(&export, Some(&key())).unwrap();
        assert!(
            verified.is_intact(),
            "round {round}: {:?}",
            verified.first_break
        );
        let on_disk: Vec<Record> = lines(&export)
            .iter()
            .map(|l| Record::from_json_line(l).unwrap())
            .collect();
        assert!(
            on_disk.len() >= acked.len(),
            "round {round}: acknowledged records lost"
        );
        assert_eq!(&on_disk[..acked.len()], &acked[..], "round {round}");
        assert_eq!(report.records, on_disk.len() as u64);
        // Records written but not yet printed when the kill came belong to the log too.
        acked = on_disk;
    }
}
