//! crash-verify DIR ACKFILE...
//!
//! Reopens the store in DIR (running crash recovery) and checks that every key listed in the
//! ACKFILEs (one decimal key per line, as crash-writer prints them) is present with exactly the
//! value crash-writer wrote. Prints `missing=N corrupt=M`; exits 0 only when both are 0, 1 when
//! either is not, 2 when it could not check.

use std::path::PathBuf;
use std::process::ExitCode;

#[path = "crash/common.rs"]
mod common;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((dir, files)) = args.split_first() else {
        eprintln!("usage: crash-verify DIR ACKFILE...");
        return ExitCode::from(2);
    };
    let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
    match common::verify(&PathBuf::from(dir), &files) {
        Ok((missing, corrupt)) => {
            println!("missing={missing} corrupt={corrupt}");
            if missing == 0 && corrupt == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
