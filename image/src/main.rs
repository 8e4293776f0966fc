//! hearth-image: builds the bootable Hearth disk image and its signed reference manifest
//! (`build`), or boots a built image in QEMU with OVMF and swtpm for a person to try (`vm`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hearth_image::qemu::{Vm, VmConfig};
use hearth_image::{Flavor, ImageSpec, Inputs, SigningKey};

#[derive(Parser)]
#[command(name = "hearth-image", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum FlavorArg {
    /// For QEMU + swtpm: hearthd's dev profile (accepts the software TPM, loudly).
    Vm,
    /// For a real box: hearthd's production profile.
    Box,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build target/image/{hearth.img, hearth.efi, reference.json(.sig), manifest.json}.
    Build {
        /// Output directory (default: <target>/image).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Take hearth-init, hearthd and hearth from here instead of building them.
        #[arg(long)]
        bin_dir: Option<PathBuf>,
        /// Cargo profile the binaries are built with.
        #[arg(long, default_value = "image")]
        profile: String,
        #[arg(long, value_enum, default_value = "vm")]
        flavor: FlavorArg,
        /// Release signing key (Ed25519 PKCS#8); without it a development key is generated
        /// once in the output directory and the reference says so.
        #[arg(long, env = "HEARTH_SIGNING_KEY")]
        signing_key: Option<PathBuf>,
        #[arg(long, default_value_t = 128)]
        esp_mib: u64,
        #[arg(long, default_value_t = 1024)]
        data_mib: u64,
        /// The appliance's static address (default: 10.0.2.15/24, QEMU user networking).
        #[arg(long)]
        address: Option<String>,
        /// Its default gateway (default: 10.0.2.2; "none" for no default route).
        #[arg(long)]
        gateway: Option<String>,
    },
    /// Boot the image in QEMU (OVMF + swtpm); the console is forwarded to 127.0.0.1:PORT.
    Vm {
        /// Default: <target>/image/hearth.img.
        #[arg(long)]
        image: Option<PathBuf>,
        /// TPM and UEFI state, kept between boots (default: <target>/image/vm-state).
        #[arg(long)]
        state: Option<PathBuf>,
        #[arg(long, default_value_t = 8443)]
        port: u16,
    },
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Build {
            out,
            bin_dir,
            profile,
            flavor,
            signing_key,
            esp_mib,
            data_mib,
            address,
            gateway,
        } => {
            let t = std::time::Instant::now();
            let bin_dir = match bin_dir {
                Some(d) => d,
                None => {
                    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
                    let status = Command::new(cargo)
                        .current_dir(workspace_root())
                        .args(["build", "--locked", "--profile", &profile])
                        .args(["-p", "hearth-init", "-p", "hearthd", "-p", "hearth-cli"])
                        .status()
                        .context("cannot run cargo")?;
                    if !status.success() {
                        bail!("cargo build of the image's binaries failed");
                    }
                    let dir = if profile == "dev" {
                        "debug"
                    } else {
                        profile.as_str()
                    };
                    target_dir().join(dir)
                }
            };
            let out = out.unwrap_or_else(|| target_dir().join("image"));
            let key = match signing_key {
                Some(path) => SigningKey::load(&path)?,
                None => SigningKey::dev(&out.join("dev-signing-key.pk8"))?,
            };
            let mut network = hearth_init::config::NetworkSection::default();
            if let Some(a) = address {
                let (ip, prefix) = a.split_once('/').unwrap_or((a.as_str(), "24"));
                network.address = ip.parse().with_context(|| format!("--address {a}"))?;
                network.prefix_len = prefix.parse().with_context(|| format!("--address {a}"))?;
                if network.prefix_len > 32 {
                    bail!("--address {a}: the prefix is at most 32");
                }
            }
            match gateway.as_deref() {
                None => {}
                Some("none") => network.gateway = None,
                Some(g) => {
                    network.gateway = Some(g.parse().with_context(|| format!("--gateway {g}"))?)
                }
            }
            let spec = ImageSpec {
                network,
                flavor: match flavor {
                    FlavorArg::Vm => Flavor::Vm,
                    FlavorArg::Box => Flavor::Box,
                },
                esp_mib,
                data_mib,
                ..ImageSpec::default()
            };
            let inputs = Inputs::detect(&bin_dir)?;
            let built = hearth_image::build(&inputs, &spec, &out, &key)?;
            let m = &built.manifest;
            println!(
                "image:      {} ({} MiB, {} MiB UKI)",
                built.image().display(),
                m.image.size >> 20,
                m.uki.size >> 20
            );
            println!("kernel:     {}", m.kernel_version);
            println!(
                "initrd:     {} files, {} MiB compressed from {} MiB",
                m.initrd_files,
                m.initrd.size >> 20,
                m.initrd_uncompressed_size >> 20
            );
            for (pcr, value) in &m.pcrs {
                println!("PCR {pcr:<2}     sha256:{value}");
            }
            println!("reference:  {}", built.reference().display());
            if m.dev_key {
                println!(
                    "signed with a DEVELOPMENT key ({}): not for release",
                    m.signing_public_key
                );
            } else {
                println!("signed with the release key {}", m.signing_public_key);
            }
            println!("built in {:.1} s", t.elapsed().as_secs_f64());
            Ok(())
        }
        Cmd::Vm { image, state, port } => {
            let image = image.unwrap_or_else(|| target_dir().join("image/hearth.img"));
            if !image.exists() {
                bail!("{} does not exist: run `just image` first", image.display());
            }
            let state = state.unwrap_or_else(|| target_dir().join("image/vm-state"));
            std::fs::create_dir_all(&state)?;
            // The machine's own disk: a copy of the image the first time; later, the image's ESP
            // installed over it (an update of slot A) so the data partition stays.
            let disk = state.join("disk.img");
            if disk.exists() {
                let manifest: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(image.with_file_name("manifest.json"))
                        .context("the image's manifest.json")?,
                )?;
                let mib = |k: &str| manifest["layout"][k].as_u64().unwrap_or(0) >> 20;
                let layout = hearth_image::gpt::Layout::new(mib("esp_bytes"), mib("data_bytes"));
                hearth_image::install_esp(&image, &disk, &layout)?;
                println!(
                    "installed {} into slot A of {} (data kept)",
                    image.display(),
                    disk.display()
                );
            } else {
                hearth_image::copy_sparse(&image, &disk)?;
            }
            println!(
                "booting {} (state in {}); console at https://127.0.0.1:{port}/ once hearthd prints it; Ctrl-A X quits QEMU",
                disk.display(),
                state.display()
            );
            let mut config = VmConfig::new(&disk, &state, port);
            config.interactive = true;
            Vm::start(config)?.wait()?;
            Ok(())
        }
    }
}
