//! `hearth tpm …`: PCRs, sealing, quotes, counters, EK certificates.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Subcommand, ValueEnum};
use hearth_tpm::{Bank, PcrSelection, SealedBlob, Secret, TpmConfig, TpmHandle};
use zeroize::Zeroizing;

#[derive(Subcommand, Debug)]
pub enum TpmCommand {
    /// Show what the TPM is: manufacturer, firmware, software or hardware, PCR banks.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Print PCR values.
    Pcrs {
        /// Bank to read, or `all` for every allocated bank.
        #[arg(long, default_value = "sha256")]
        bank: String,
        /// Which PCRs, e.g. `0-7,11`.
        #[arg(long, default_value = "0-23")]
        pcrs: String,
        #[arg(long)]
        json: bool,
    },
    /// Extend a PCR in every allocated bank with the hash of the data (stdin unless --data).
    Extend {
        #[arg(long)]
        pcr: u8,
        #[arg(long)]
        data: Option<String>,
    },
    /// Seal a secret (stdin, 1 to 128 bytes) to the current values of PCRs; the sealed blob
    /// (JSON) goes to stdout.
    Seal {
        /// PCRs of one bank, e.g. `7,11` (sha256) or `sha1:0-7`.
        #[arg(long, default_value = "7,11")]
        pcrs: String,
    },
    /// Unseal a sealed blob (stdin); the secret goes to stdout. Exits 3 if the PCRs changed.
    Unseal,
    /// Quote PCRs with the attestation key and write quote.msg, quote.sig, ak.pem, ak.pub and
    /// pcrs.json into a directory (tpm2_checkquote accepts them).
    Quote {
        /// Qualifying data in hex, at most 64 bytes: a fresh nonce from the verifier.
        #[arg(long)]
        nonce: String,
        #[arg(long, default_value = "0-15")]
        pcrs: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Read or increment an NV monotonic counter (incrementing defines it when absent).
    Counter {
        action: CounterAction,
        /// NV index in hex, 0x01000000 to 0x01ffffff.
        #[arg(long)]
        index: String,
        #[arg(long)]
        json: bool,
    },
    /// Write the endorsement key certificates (DER) found in NV storage into a directory.
    EkCerts {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum CounterAction {
    Read,
    Increment,
}

/// Largest sealed blob read from stdin: real ones are about 1 KiB.
const MAX_BLOB: u64 = 64 * 1024;

pub async fn run(config: TpmConfig, cmd: TpmCommand) -> Result<()> {
    let tpm = TpmHandle::open(config).await?;
    match cmd {
        TpmCommand::Info { json } => info(&tpm, json),
        TpmCommand::Pcrs { bank, pcrs, json } => print_pcrs(&tpm, &bank, &pcrs, json).await,
        TpmCommand::Extend { pcr, data } => {
            let data = match data {
                Some(d) => d.into_bytes(),
                None => read_stdin(MAX_BLOB, "data")?.to_vec(),
            };
            tpm.pcr_extend(pcr, data).await?;
            Ok(())
        }
        TpmCommand::Seal { pcrs } => {
            let selection: PcrSelection = pcrs.parse()?;
            let limit = u64::try_from(hearth_tpm::MAX_SEALED_SECRET).unwrap_or(u64::MAX);
            let secret = read_stdin(limit, "secret")?;
            let blob = tpm.seal(Secret::new(secret), selection).await?;
            println!("{}", blob.to_json());
            Ok(())
        }
        TpmCommand::Unseal => {
            let input = read_stdin(MAX_BLOB, "sealed blob")?;
            let blob = SealedBlob::from_json(&input)?;
            let secret = tpm.unseal(blob).await?;
            let mut out = std::io::stdout().lock();
            out.write_all(secret.expose())?;
            out.flush()?;
            Ok(())
        }
        TpmCommand::Quote { nonce, pcrs, out } => quote(&tpm, &nonce, &pcrs, &out).await,
        TpmCommand::Counter {
            action,
            index,
            json,
        } => {
            let index = parse_index(&index)?;
            let value = match action {
                CounterAction::Read => tpm.counter_read(index).await?,
                CounterAction::Increment => tpm.counter_increment(index).await?,
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "index": format!("{index:#010x}"), "value": value })
                );
            } else {
                println!("{value}");
            }
            Ok(())
        }
        TpmCommand::EkCerts { out } => {
            let certs = tpm.ek_certificates().await?;
            if certs.is_empty() {
                bail!("this TPM has no EK certificate in NV storage");
            }
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            for cert in certs {
                let path = out.join(format!("ek-{}.der", cert.algorithm));
                write(&path, &cert.der)?;
                println!(
                    "{} (NV {:#010x}) -> {}",
                    cert.algorithm,
                    cert.nv_index,
                    path.display()
                );
            }
            Ok(())
        }
    }
}

fn info(tpm: &TpmHandle, json: bool) -> Result<()> {
    let info = tpm.info();
    if json {
        println!("{}", serde_json::to_string_pretty(info)?);
        return Ok(());
    }
    let banks: Vec<&str> = info.banks.iter().map(|b| b.name()).collect();
    println!("transport:     {}", info.transport);
    println!("manufacturer:  {}", info.manufacturer);
    println!("vendor:        {}", info.vendor);
    println!("firmware:      {}", info.firmware_version);
    println!("pcr banks:     {}", banks.join(", "));
    if info.software {
        println!("root of trust: NONE (software TPM: dev and test only)");
    } else {
        println!("root of trust: hardware TPM");
    }
    Ok(())
}

async fn print_pcrs(tpm: &TpmHandle, bank: &str, pcrs: &str, json: bool) -> Result<()> {
    let banks: Vec<Bank> = if bank.eq_ignore_ascii_case("all") {
        tpm.info().banks.clone()
    } else {
        vec![bank.parse()?]
    };
    let mut selection = PcrSelection::default();
    for b in &banks {
        let one: PcrSelection = format!("{b}:{pcrs}").parse()?;
        for (bank, list) in one.iter() {
            selection.add(bank, list.iter().copied())?;
        }
    }
    let values = tpm.pcr_read(selection).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&values)?);
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    for bank in values.banks() {
        writeln!(out, "{bank}:")?;
        for (pcr, value) in values.bank(bank) {
            writeln!(out, "  {pcr:>2} : 0x{}", hex::encode_upper(value))?;
        }
    }
    Ok(())
}

async fn quote(tpm: &TpmHandle, nonce: &str, pcrs: &str, out: &Path) -> Result<()> {
    let nonce = crate::attest::parse_hex("--nonce", nonce)?;
    if nonce.is_empty() {
        bail!("--nonce is empty: a verifier must supply fresh qualifying data");
    }
    let selection: PcrSelection = pcrs.parse()?;
    let ak = tpm.ak_public().await?;
    let quote = tpm.quote(nonce, selection).await?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write(&out.join("quote.msg"), &quote.attest)?;
    write(&out.join("quote.sig"), &quote.signature)?;
    write(&out.join("ak.pem"), ak.pem.as_bytes())?;
    write(&out.join("ak.pub"), &ak.tpm2b_public)?;
    let mut pcrs_json = serde_json::to_string_pretty(&quote.pcrs)?;
    pcrs_json.push('\n');
    write(&out.join("pcrs.json"), pcrs_json.as_bytes())?;
    println!(
        "wrote quote.msg, quote.sig, ak.pem, ak.pub, pcrs.json to {}",
        out.display()
    );
    Ok(())
}

fn parse_index(text: &str) -> Result<u32> {
    let digits = text
        .trim()
        .trim_start_matches("0x")
        .trim_start_matches("0X");
    u32::from_str_radix(digits, 16)
        .with_context(|| format!("--index {text:?} is not a hex NV index"))
}

/// Reads stdin up to `limit` bytes; more is an error, not a silent truncation.
fn read_stdin(limit: u64, what: &str) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .take(limit + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("reading the {what} from stdin"))?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > limit {
        bail!("the {what} on stdin is larger than {limit} bytes");
    }
    if buf.is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(buf)
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}
