//! crash-writer DIR START BATCH
//!
//! Writes 1 KiB records with keys START, START+1, ... to the store in DIR (created with a dev
//! key file, `DIR/dev-root.key`, if absent), BATCH records per transaction, and prints each key
//! on stdout, one per line, flushed, only after its transaction is durable. Runs until killed:
//! it exists to be killed (`kill -9`) at random moments, after which `crash-verify` checks that
//! every printed key is present and intact. Progress markers (`opening`, `opened`) go to stderr.

#[path = "crash/common.rs"]
mod common;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, start, batch) = common::writer_args(&args)?;
    common::write_until_killed(&dir, start, batch)
}
