//! hearth-image: builds the bootable Hearth disk image and the reference manifest of the PCR
//! values it produces.
//!
//! The image is a GPT disk: an EFI system partition holding the Hearth UKI (systemd's EFI stub,
//! Debian's kernel, an initrd with the whole userland, the command line and os-release) as
//! `EFI/BOOT/BOOTX64.EFI` (slot A; the partition has room for a slot B), and an empty data
//! partition that hearth-init formats on first boot. Next to it the builder writes
//! `reference.json` (hearth-attest's Reference format, PCRs 4, 9 and 11 computed here, plus the
//! runtime event hearth-init will log) and signs it with Ed25519.
//!
//! What it is not for: running the image ([`qemu`] has the launcher the tests and `just vm`
//! share) or deciding what an auditor accepts (that is hearth-attest's verifier).
//!
//! Invariants: the same inputs give byte-identical outputs (names sorted, times zero, fixed
//! GUIDs and volume ids, objcopy's time stamp cleared); no root, no loop devices, nothing
//! downloaded.

pub mod cpio;
pub mod gpt;
pub mod inputs;
pub mod pcrs;
pub mod pe;
pub mod qemu;
pub mod sign;

use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use hearth_attest::reference::{AllowedRuntimeEvent, Reference};
use hearth_eventlog::pcr::Bank;
use hearth_init::config::{INIT_CONFIG_PATH, InitConfig};
use serde::Serialize;

pub use inputs::Inputs;
pub use sign::SigningKey;

/// The time every file in the image claims (1 January 1980, FAT's epoch, as SOURCE_DATE_EPOCH).
pub const SOURCE_DATE_EPOCH: &str = "315532800";
/// The ESP's FAT volume id and label.
pub const ESP_VOLUME_ID: &str = "48454152";
pub const ESP_LABEL: &str = "HEARTH";
/// Where hearthd's configuration lives in the image.
pub const HEARTHD_CONFIG_PATH: &str = "/etc/hearth/hearthd.toml";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("missing: {what}")]
    Missing { what: String },
    #[error("{tool} failed: {message}")]
    Tool { tool: String, message: String },
    #[error(transparent)]
    Pe(#[from] pe::PeError),
    #[error(transparent)]
    Sign(#[from] sign::SignError),
    #[error("the image's {what} does not fit: {message}")]
    Layout { what: &'static str, message: String },
}

impl ImageError {
    pub fn io(path: &str, source: std::io::Error) -> ImageError {
        ImageError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, ImageError> {
    std::fs::read(path).map_err(|e| ImageError::io(&path.display().to_string(), e))
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    std::fs::write(path, bytes).map_err(|e| ImageError::io(&path.display().to_string(), e))
}

/// Who the image is for: QEMU (swtpm behind tpm-tis: hearthd's dev profile, which allows a
/// software TPM with a loud warning) or a real box (production profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Flavor {
    Vm,
    Box,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Vm => "vm",
            Flavor::Box => "box",
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub flavor: Flavor,
    pub cmdline: String,
    pub esp_mib: u64,
    pub data_mib: u64,
    pub network: hearth_init::config::NetworkSection,
    /// Files added to the initrd as they are (path, contents), after everything else.
    pub extra_files: Vec<(String, Vec<u8>)>,
    pub zstd_level: i32,
}

impl Default for ImageSpec {
    fn default() -> Self {
        ImageSpec {
            flavor: Flavor::Vm,
            cmdline: "console=ttyS0,115200 loglevel=4 panic=-1 random.trust_cpu=on".to_owned(),
            esp_mib: 128,
            data_mib: 1024,
            network: hearth_init::config::NetworkSection::default(),
            extra_files: Vec::new(),
            zstd_level: 9,
        }
    }
}

impl ImageSpec {
    /// hearthd's configuration on the box.
    pub fn hearthd_toml(&self) -> String {
        let (profile, note) = match self.flavor {
            Flavor::Vm => (
                "dev",
                "# VM image: the TPM is swtpm behind QEMU's tpm-tis, which only the dev profile accepts.\n",
            ),
            Flavor::Box => ("production", ""),
        };
        format!(
            "# hearthd on the Hearth image (written by hearth-image).\n{note}\
             profile = \"{profile}\"\n\
             data_dir = \"/var/lib/hearth\"\n\
             listen = \"0.0.0.0:8443\"\n\n\
             [tpm]\ntcti = \"device:/dev/tpmrm0\"\n\n\
             [console]\nserver_names = [\"localhost\", \"127.0.0.1\", \"hearth\", \"{addr}\"]\n\n\
             [attestation]\n\
             # PCR 10 is IMA's (the kernel extends its boot_aggregate, which no event log here explains).\n\
             pcrs = \"sha256:0-9,11-15\"\n\
             eventlog = \"/sys/kernel/security/tpm0/binary_bios_measurements\"\n\
             runtime_log = \"/run/hearth/runtime-log.jsonl\"\n",
            addr = self.network.address
        )
    }

    fn os_release(&self) -> String {
        let v = env!("CARGO_PKG_VERSION");
        format!(
            "NAME=\"Hearth\"\nID=hearth\nVERSION_ID={v}\nVARIANT_ID={}\nPRETTY_NAME=\"Hearth {v} ({})\"\n",
            self.flavor.as_str(),
            self.flavor.as_str()
        )
    }
}

/// One file of the build output.
#[derive(Clone, Debug, Serialize)]
pub struct Artifact {
    /// The file's name in the output directory.
    pub file: String,
    pub size: u64,
    pub sha256: String,
}

/// The build manifest (`manifest.json`), for people and release tooling.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    pub format: &'static str,
    pub version: &'static str,
    pub flavor: Flavor,
    pub kernel_version: String,
    pub cmdline: String,
    pub image: Artifact,
    pub uki: Artifact,
    pub initrd: Artifact,
    pub initrd_uncompressed_size: u64,
    pub initrd_files: usize,
    pub modules: Vec<String>,
    /// sha256 PCR values this image produces.
    pub pcrs: std::collections::BTreeMap<u8, String>,
    pub reference: Artifact,
    /// Ed25519 over reference.json's bytes, hex.
    pub reference_signature: String,
    pub signing_public_key: String,
    /// True when the signature is by a generated development key, not a release key.
    pub dev_key: bool,
    pub layout: LayoutInfo,
}

#[derive(Clone, Debug, Serialize)]
pub struct LayoutInfo {
    pub disk_bytes: u64,
    pub esp_offset: u64,
    pub esp_bytes: u64,
    pub data_offset: u64,
    pub data_bytes: u64,
}

/// The files the build wrote.
#[derive(Clone, Debug)]
pub struct Output {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Output {
    pub fn image(&self) -> PathBuf {
        self.dir.join("hearth.img")
    }
    pub fn reference(&self) -> PathBuf {
        self.dir.join("reference.json")
    }
}

/// SHA-256 and size of a file, read in 1 MiB pieces (the disk image is large and sparse).
pub fn file_sha256(path: &Path) -> Result<(u64, [u8; 32]), ImageError> {
    use std::io::Read as _;
    let io = |e| ImageError::io(&path.display().to_string(), e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        ctx.update(&buf[..n]);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok((size, out))
}

fn artifact(name: &str, bytes: &[u8]) -> Artifact {
    Artifact {
        file: name.to_owned(),
        size: bytes.len() as u64,
        sha256: hex::encode(Bank::Sha256.hash(bytes)),
    }
}

fn run(cmd: &mut Command) -> Result<(), ImageError> {
    let tool = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd.output().map_err(|e| ImageError::io(&tool, e))?;
    if !out.status.success() {
        return Err(ImageError::Tool {
            tool,
            message: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok(())
}

/// The initrd's contents (uncompressed archive) and the module list it loads.
pub fn initrd(
    inputs: &Inputs,
    spec: &ImageSpec,
    work: &Path,
) -> Result<(cpio::Archive, Vec<String>), ImageError> {
    let mut a = cpio::Archive::new();
    for d in [
        "dev",
        "proc",
        "sys",
        "run",
        "tmp",
        "root",
        "var/lib/hearth",
        "usr/bin",
        "usr/sbin",
        "usr/lib",
        "usr/lib64",
        "etc/hearth",
    ] {
        a.dir(d);
    }
    for (link, target) in [
        ("bin", "usr/bin"),
        ("sbin", "usr/sbin"),
        ("lib", "usr/lib"),
        ("lib64", "usr/lib64"),
    ] {
        a.symlink(link, target);
    }
    a.insert(
        "dev/console",
        cpio::Node::CharDev {
            mode: 0o600,
            major: 5,
            minor: 1,
        },
    );

    // Our binaries, stripped; the tools they need; every shared library of all of them.
    let mut elves: Vec<(String, PathBuf)> = Vec::new();
    for (name, dest) in [
        ("hearth-init", "init"),
        ("hearthd", "usr/bin/hearthd"),
        ("hearth", "usr/bin/hearth"),
    ] {
        let stripped = work.join(name);
        run(Command::new("objcopy")
            .arg("--strip-all")
            .arg(inputs.binary(name))
            .arg(&stripped))?;
        elves.push((dest.to_owned(), stripped));
    }
    elves.push(("usr/sbin/mke2fs".to_owned(), PathBuf::from(inputs::MKE2FS)));
    let mut libs = std::collections::BTreeSet::new();
    for (dest, path) in &elves {
        a.file(dest, 0o755, read(path)?);
        libs.extend(inputs::shared_libraries(path)?);
    }
    let tcti = PathBuf::from(inputs::TCTI_DEVICE);
    libs.extend(inputs::shared_libraries(&tcti)?);
    libs.insert(tcti);
    for lib in libs {
        a.file(&inputs::initrd_path(&lib)?, 0o755, read(&lib)?);
    }

    // Kernel modules, dependencies first.
    let dep_path = inputs.modules_dir.join("modules.dep");
    let dep = String::from_utf8_lossy(&read(&dep_path)?).into_owned();
    let modules = inputs::resolve_modules(&dep, &inputs::MODULES)?;
    let mod_root = format!("usr/lib/modules/{}", inputs.kernel_version);
    for m in &modules {
        a.file(
            &format!("{mod_root}/{m}"),
            0o644,
            read(&inputs.modules_dir.join(m))?,
        );
    }

    // Configuration.
    let init = InitConfig {
        modules: modules
            .iter()
            .map(|m| PathBuf::from(format!("/{mod_root}/{m}")))
            .collect(),
        network: spec.network.clone(),
        ..InitConfig::default()
    };
    a.file(INIT_CONFIG_PATH, 0o644, init.to_toml().into_bytes());
    a.file(HEARTHD_CONFIG_PATH, 0o644, spec.hearthd_toml().into_bytes());
    a.file("etc/os-release", 0o644, spec.os_release().into_bytes());
    a.file("etc/hostname", 0o644, b"hearth\n".to_vec());
    a.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/usr/bin/hearth\n".to_vec(),
    );
    a.file("etc/group", 0o644, b"root:x:0:\n".to_vec());
    for (path, bytes) in &spec.extra_files {
        a.file(path, 0o644, bytes.clone());
    }
    Ok((a, modules))
}

/// The runtime event hearth-init logs for the configuration in `archive`.
pub fn config_event(archive: &cpio::Archive) -> Result<hearth_eventlog::RuntimeEvent, ImageError> {
    let file = |p: &str| match archive.get(p) {
        Some(cpio::Node::File { data, .. }) => Ok(data.clone()),
        _ => Err(ImageError::Missing {
            what: format!("{p} in the initrd"),
        }),
    };
    let init = file(INIT_CONFIG_PATH)?;
    let hearthd = file(HEARTHD_CONFIG_PATH)?;
    Ok(hearth_init::measure::config_event(&[
        ("init.toml", &init),
        ("hearthd.toml", &hearthd),
    ]))
}

/// Assembles the UKI from the stub and the four sections with objcopy, then clears the PE
/// time stamp and checksum.
fn uki(inputs: &Inputs, work: &Path, sections: &[(&str, &Path)]) -> Result<Vec<u8>, ImageError> {
    let stub = read(&inputs.stub)?;
    let pe = pe::Pe::parse("the systemd EFI stub", &stub)?;
    let mut vma = pe.end_of_sections();
    let mut cmd = Command::new("objcopy");
    for (name, path) in sections {
        let size = std::fs::metadata(path)
            .map_err(|e| ImageError::io(&path.display().to_string(), e))?
            .len();
        cmd.arg("--add-section")
            .arg(format!("{name}={}", path.display()));
        cmd.arg("--change-section-vma")
            .arg(format!("{name}={:#x}", pe.image_base + vma));
        vma = pe::align_up(vma + size, u64::from(pe.section_alignment.max(4096)));
    }
    let out = work.join("hearth.efi");
    cmd.arg(&inputs.stub).arg(&out);
    run(&mut cmd)?;
    let mut bytes = read(&out)?;
    let parsed = pe::Pe::parse("the UKI", &bytes)?;
    pe::zero_timestamp_and_checksum(&mut bytes, &parsed);
    Ok(bytes)
}

/// The ESP as a FAT32 file system image with the UKI as EFI/BOOT/BOOTX64.EFI.
fn esp(work: &Path, size: u64, uki: &Path) -> Result<Vec<u8>, ImageError> {
    let path = work.join("esp.img");
    {
        let f = std::fs::File::create(&path)
            .map_err(|e| ImageError::io(&path.display().to_string(), e))?;
        f.set_len(size)
            .map_err(|e| ImageError::io(&path.display().to_string(), e))?;
    }
    let mtools = |tool: &str| {
        let mut c = Command::new(tool);
        c.env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env("TZ", "UTC")
            .env("MTOOLS_SKIP_CHECK", "1")
            .arg("-i")
            .arg(&path);
        c
    };
    let sectors = size / gpt::SECTOR;
    run(mtools("mformat")
        .args(["-F", "-N", ESP_VOLUME_ID, "-v", ESP_LABEL])
        .args(["-T", &sectors.to_string(), "-h", "64", "-s", "32"])
        .arg("::"))?;
    run(mtools("mmd").args(["::/EFI", "::/EFI/BOOT"]))?;
    run(mtools("mcopy").arg(uki).arg("::/EFI/BOOT/BOOTX64.EFI"))?;
    read(&path)
}

/// Writes the disk: GPT, the ESP at its offset, the data partition left empty (sparse).
fn disk(path: &Path, layout: &gpt::Layout, esp: &[u8]) -> Result<(), ImageError> {
    let io = |e| ImageError::io(&path.display().to_string(), e);
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::File::create(path).map_err(io)?;
    f.set_len(layout.size()).map_err(io)?;
    for (offset, bytes) in layout.tables() {
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
    }
    f.seek(SeekFrom::Start(layout.esp.offset())).map_err(io)?;
    f.write_all(esp).map_err(io)?;
    f.sync_all().map_err(io)
}

/// Copies the disk image `from` to `to`, leaving all-zero MiB as holes (the empty data
/// partition stays sparse).
pub fn copy_sparse(from: &Path, to: &Path) -> Result<(), ImageError> {
    use std::io::Read as _;
    let mut src =
        std::fs::File::open(from).map_err(|e| ImageError::io(&from.display().to_string(), e))?;
    let io = |e| ImageError::io(&to.display().to_string(), e);
    let _ = std::fs::remove_file(to);
    let mut dst = std::fs::File::create(to).map_err(io)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            let got = src
                .read(&mut buf[n..])
                .map_err(|e| ImageError::io(&from.display().to_string(), e))?;
            if got == 0 {
                break;
            }
            n += got;
        }
        if n == 0 {
            break;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            dst.seek(SeekFrom::Start(size)).map_err(io)?;
            dst.write_all(&buf[..n]).map_err(io)?;
        }
        size += n as u64;
    }
    dst.set_len(size).map_err(io)?;
    dst.sync_all().map_err(io)
}

/// Copies the ESP of the image at `from` over the ESP of the disk at `to`, keeping its data
/// partition: what an update of slot A does (both must have the same layout).
pub fn install_esp(from: &Path, to: &Path, layout: &gpt::Layout) -> Result<(), ImageError> {
    use std::io::Read as _;
    let mut src =
        std::fs::File::open(from).map_err(|e| ImageError::io(&from.display().to_string(), e))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .open(to)
        .map_err(|e| ImageError::io(&to.display().to_string(), e))?;
    let mut esp = vec![0u8; usize::try_from(layout.esp.size()).unwrap_or(0)];
    src.seek(SeekFrom::Start(layout.esp.offset()))
        .and_then(|_| src.read_exact(&mut esp))
        .map_err(|e| ImageError::io(&from.display().to_string(), e))?;
    dst.seek(SeekFrom::Start(layout.esp.offset()))
        .and_then(|_| dst.write_all(&esp))
        .and_then(|()| dst.sync_all())
        .map_err(|e| ImageError::io(&to.display().to_string(), e))
}

/// Builds everything into `out_dir`: hearth.img, hearth.efi, initrd.cpio.zst, reference.json
/// (+ .sig), manifest.json.
pub fn build(
    inputs: &Inputs,
    spec: &ImageSpec,
    out_dir: &Path,
    key: &SigningKey,
) -> Result<Output, ImageError> {
    inputs.check()?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| ImageError::io(&out_dir.display().to_string(), e))?;
    let work = tempfile::tempdir_in(out_dir)
        .map_err(|e| ImageError::io(&out_dir.display().to_string(), e))?;
    let work = work.path();

    let (archive, modules) = initrd(inputs, spec, work)?;
    let event = config_event(&archive)?;
    let cpio = archive.to_bytes();
    let initrd =
        zstd::bulk::compress(&cpio, spec.zstd_level).map_err(|e| ImageError::io("zstd", e))?;

    let kernel = read(&inputs.kernel)?;
    let osrel = spec.os_release();
    let files = [
        (".osrel", work.join("osrel"), osrel.as_bytes().to_vec()),
        (
            ".cmdline",
            work.join("cmdline"),
            spec.cmdline.as_bytes().to_vec(),
        ),
        (".linux", inputs.kernel.clone(), Vec::new()),
        (".initrd", work.join("initrd"), initrd.clone()),
    ];
    for (_, path, bytes) in &files {
        if !bytes.is_empty() {
            write(path, bytes)?;
        }
    }
    let sections: Vec<(&str, &Path)> = files.iter().map(|(n, p, _)| (*n, p.as_path())).collect();
    let uki = uki(inputs, work, &sections)?;
    let uki_path = out_dir.join("hearth.efi");
    write(&uki_path, &uki)?;

    let layout = gpt::Layout::new(spec.esp_mib, spec.data_mib);
    // Slot A plus room for slot B.
    if 2 * uki.len() as u64 + 4 * 1024 * 1024 > layout.esp.size() {
        return Err(ImageError::Layout {
            what: "ESP",
            message: format!(
                "the UKI is {} MiB; {} MiB cannot hold two (raise --esp-mib)",
                uki.len() >> 20,
                spec.esp_mib
            ),
        });
    }
    let esp = esp(work, layout.esp.size(), &uki_path)?;
    let image_path = out_dir.join("hearth.img");
    disk(&image_path, &layout, &esp)?;

    // The measurements.
    let uki_auth = pe::authenticode_sha256("the UKI", &uki)?;
    let kernel_auth = pe::authenticode_sha256("the kernel", &kernel)?;
    let pcr4 = pcrs::pcr4(&uki_auth, &kernel_auth);
    let pcr11 = pcrs::pcr11(&[
        (".linux", &kernel),
        (".osrel", osrel.as_bytes()),
        (".cmdline", spec.cmdline.as_bytes()),
        (".initrd", &initrd),
    ]);
    let pcr9 = pcrs::pcr9(&spec.cmdline, &initrd);

    let key_note = if key.dev {
        "signed with a DEVELOPMENT key, not a release key"
    } else {
        "signed with the release key"
    };
    let mut reference = Reference::new(Some(format!(
        "hearth {} {} image ({key_note})",
        env!("CARGO_PKG_VERSION"),
        spec.flavor.as_str()
    )));
    for (pcr, value) in [(4u8, &pcr4), (9, &pcr9), (11, &pcr11)] {
        reference.pcrs.insert(Bank::Sha256, pcr, value.clone());
    }
    reference.runtime_events = Some(vec![AllowedRuntimeEvent {
        pcr: event.pcr,
        kind: event.kind.clone(),
        sha256: hex::encode(event.digest(Bank::Sha256).unwrap_or_default()),
    }]);
    let mut reference_json = reference.to_json();
    reference_json.push('\n');
    let signature = key.sign(reference_json.as_bytes());
    write(&out_dir.join("reference.json"), reference_json.as_bytes())?;
    write(
        &out_dir.join("reference.json.sig"),
        format!("{}\n", hex::encode(signature)).as_bytes(),
    )?;
    write(
        &out_dir.join("signing-key.pub"),
        format!("{}\n", hex::encode(key.public_key())).as_bytes(),
    )?;
    write(&out_dir.join("initrd.cpio.zst"), &initrd)?;

    let (image_size, image_sha256) = file_sha256(&image_path)?;
    let manifest = Manifest {
        format: "hearth-image-manifest/1",
        version: env!("CARGO_PKG_VERSION"),
        flavor: spec.flavor,
        kernel_version: inputs.kernel_version.clone(),
        cmdline: spec.cmdline.clone(),
        image: Artifact {
            file: "hearth.img".to_owned(),
            size: image_size,
            sha256: hex::encode(image_sha256),
        },
        uki: artifact("hearth.efi", &uki),
        initrd: artifact("initrd.cpio.zst", &initrd),
        initrd_uncompressed_size: cpio.len() as u64,
        initrd_files: archive.paths().count(),
        modules,
        pcrs: [(4u8, &pcr4), (9, &pcr9), (11, &pcr11)]
            .into_iter()
            .map(|(p, v)| (p, hex::encode(v)))
            .collect(),
        reference: artifact("reference.json", reference_json.as_bytes()),
        reference_signature: hex::encode(signature),
        signing_public_key: hex::encode(key.public_key()),
        dev_key: key.dev,
        layout: LayoutInfo {
            disk_bytes: layout.size(),
            esp_offset: layout.esp.offset(),
            esp_bytes: layout.esp.size(),
            data_offset: layout.data.offset(),
            data_bytes: layout.data.size(),
        },
    };
    let mut text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    text.push('\n');
    write(&out_dir.join("manifest.json"), text.as_bytes())?;
    Ok(Output {
        dir: out_dir.to_owned(),
        manifest,
    })
}

/// Checks `reference.json` in `dir` against its `.sig` and `signing-key.pub`.
pub fn verify_reference_signature(dir: &Path) -> Result<bool, ImageError> {
    let reference = read(&dir.join("reference.json"))?;
    let sig = String::from_utf8_lossy(&read(&dir.join("reference.json.sig"))?)
        .trim()
        .to_owned();
    let key = String::from_utf8_lossy(&read(&dir.join("signing-key.pub"))?)
        .trim()
        .to_owned();
    let (Ok(sig), Ok(key)) = (hex::decode(sig), hex::decode(key)) else {
        return Ok(false);
    };
    Ok(sign::verify(&key, &reference, &sig))
}
