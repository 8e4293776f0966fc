//! Writes a synthetic table as CSV:
//! `cargo run -p hearth-ml --release --example synth -- fraud|patient_risk ROWS SEED OUT.csv`.

use std::error::Error;
use std::fs::File;
use std::io::BufWriter;

use hearth_ml::synth;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, rows, seed, out] = args.as_slice() else {
        return Err("usage: synth fraud|patient_risk ROWS SEED OUT.csv".into());
    };
    let rows: usize = rows.parse().map_err(|e| format!("ROWS {rows:?}: {e}"))?;
    let seed: u64 = seed.parse().map_err(|e| format!("SEED {seed:?}: {e}"))?;
    let frame = match kind.as_str() {
        "fraud" => synth::fraud(rows, seed),
        "patient_risk" => synth::patient_risk(rows, seed),
        other => return Err(format!("unknown table {other:?}: fraud or patient_risk").into()),
    };
    let file = File::create(out).map_err(|e| format!("{out}: {e}"))?;
    synth::write_csv(&frame, BufWriter::new(file))?;
    eprintln!("wrote {rows} rows of {kind} (seed {seed}) to {out}");
    Ok(())
}
