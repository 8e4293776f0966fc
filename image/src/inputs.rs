//! Where the image's ingredients come from on the build machine: Debian's kernel and its
//! modules, systemd's EFI stub, the Hearth binaries and the shared libraries they need.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ImageError;

/// systemd-boot-efi's stub.
pub const STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// The TCTI libtss2-tctildr loads for `device:` at run time (dlopen, so ldd misses it).
pub const TCTI_DEVICE: &str = "/usr/lib/x86_64-linux-gnu/libtss2-tcti-device.so.0";
/// mke2fs, which hearth-init runs to format the data partition on first boot.
pub const MKE2FS: &str = "/usr/sbin/mke2fs";

/// The kernel modules the image loads, by name; their dependencies are added from
/// modules.dep. virtio for the disk, the network and entropy; ext4 (and the crc32c its
/// metadata checksums need) for the data partition.
pub const MODULES: [&str; 6] = [
    "crc32c_generic",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_rng",
    "ext4",
];

/// Everything the build reads from the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inputs {
    pub kernel_version: String,
    pub kernel: PathBuf,
    pub modules_dir: PathBuf,
    pub stub: PathBuf,
    /// Directory holding `hearth-init`, `hearthd` and `hearth`.
    pub bin_dir: PathBuf,
}

impl Inputs {
    /// The newest kernel that has both `/boot/vmlinuz-V` and `/lib/modules/V`.
    pub fn detect(bin_dir: &Path) -> Result<Inputs, ImageError> {
        let mut versions: Vec<String> = std::fs::read_dir("/lib/modules")
            .map_err(|e| ImageError::io("/lib/modules", e))?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|v| Path::new(&format!("/boot/vmlinuz-{v}")).exists())
            .collect();
        versions.sort_by_key(|v| version_key(v));
        let Some(version) = versions.pop() else {
            return Err(ImageError::Missing {
                what: "a kernel with modules (/boot/vmlinuz-V and /lib/modules/V; `just setup` installs linux-image-amd64)".to_owned(),
            });
        };
        Ok(Inputs {
            kernel: PathBuf::from(format!("/boot/vmlinuz-{version}")),
            modules_dir: PathBuf::from(format!("/lib/modules/{version}")),
            kernel_version: version,
            stub: PathBuf::from(STUB),
            bin_dir: bin_dir.to_owned(),
        })
    }

    pub fn binary(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// Checks that every input exists and is readable, naming the first that is not.
    pub fn check(&self) -> Result<(), ImageError> {
        let mut paths = vec![
            self.kernel.clone(),
            self.stub.clone(),
            self.modules_dir.join("modules.dep"),
        ];
        for b in ["hearth-init", "hearthd", "hearth"] {
            paths.push(self.binary(b));
        }
        paths.push(PathBuf::from(TCTI_DEVICE));
        paths.push(PathBuf::from(MKE2FS));
        for p in paths {
            if let Err(e) = std::fs::File::open(&p) {
                return Err(ImageError::io(&p.display().to_string(), e));
            }
        }
        Ok(())
    }
}

/// A kernel version's numbers, for ordering (`6.1.0-56` after `6.1.0-9`).
fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

/// The modules to load for `names`, dependencies first, as paths relative to the modules
/// directory, from the text of `modules.dep`.
pub fn resolve_modules(modules_dep: &str, names: &[&str]) -> Result<Vec<String>, ImageError> {
    let mut deps: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for line in modules_dep.lines() {
        let Some((module, rest)) = line.split_once(':') else {
            continue;
        };
        let name = module
            .rsplit('/')
            .next()
            .unwrap_or(module)
            .trim_end_matches(".ko")
            .replace('-', "_");
        by_name.insert(name, module.to_owned());
        deps.insert(
            module.to_owned(),
            rest.split_whitespace().map(str::to_owned).collect(),
        );
    }
    fn visit(
        m: &str,
        deps: &BTreeMap<String, Vec<String>>,
        seen: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if !seen.insert(m.to_owned()) {
            return;
        }
        // modules.dep lists dependencies so that loading them in reverse order works.
        for d in deps.get(m).into_iter().flatten().rev() {
            visit(d, deps, seen, out);
        }
        out.push(m.to_owned());
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for name in names {
        let module = by_name
            .get(&name.replace('-', "_"))
            .ok_or_else(|| ImageError::Missing {
                what: format!("kernel module {name} in modules.dep"),
            })?;
        visit(module, &deps, &mut seen, &mut out);
    }
    Ok(out)
}

/// The shared libraries `binary` needs (the dynamic loader included), as absolute paths, from
/// `ldd`.
pub fn shared_libraries(binary: &Path) -> Result<BTreeSet<PathBuf>, ImageError> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ImageError::io("ldd", e))?;
    if !out.status.success() {
        return Err(ImageError::Tool {
            tool: "ldd".to_owned(),
            message: format!(
                "{}: {}",
                binary.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let mut libs = BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim();
        if line.contains("not found") {
            return Err(ImageError::Missing {
                what: format!("{} needs {line}", binary.display()),
            });
        }
        let path = match line.split_once("=>") {
            Some((_, right)) => right.trim(),
            None => line,
        };
        let path = path.split_whitespace().next().unwrap_or("");
        if path.starts_with('/') {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Where a host file goes in the initrd: its directory with symlinks resolved (Debian's
/// merged /usr: /lib is /usr/lib), its own name kept (a library's soname, not the file the
/// soname link points to).
pub fn initrd_path(host: &Path) -> Result<String, ImageError> {
    let parent = host.parent().unwrap_or(Path::new("/"));
    let dir = std::fs::canonicalize(parent)
        .map_err(|e| ImageError::io(&parent.display().to_string(), e))?;
    let name = host
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(format!("{}/{name}", dir.display())
        .trim_start_matches('/')
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_versions_order_numerically() {
        let mut v = vec!["6.1.0-56-amd64", "6.1.0-9-amd64", "6.10.0-1-amd64"];
        v.sort_by_key(|v| version_key(v));
        assert_eq!(v, ["6.1.0-9-amd64", "6.1.0-56-amd64", "6.10.0-1-amd64"]);
    }

    #[test]
    fn modules_come_dependencies_first_once_each() {
        let dep = "kernel/a/virtio_ring.ko:\n\
                   kernel/a/virtio.ko: kernel/a/virtio_ring.ko\n\
                   kernel/b/virtio_blk.ko: kernel/a/virtio.ko kernel/a/virtio_ring.ko\n\
                   kernel/c/crc32c_generic.ko:\n";
        let out = resolve_modules(dep, &["virtio_blk", "crc32c-generic", "virtio"]).unwrap();
        assert_eq!(
            out,
            [
                "kernel/a/virtio_ring.ko",
                "kernel/a/virtio.ko",
                "kernel/b/virtio_blk.ko",
                "kernel/c/crc32c_generic.ko"
            ]
        );
        resolve_modules(dep, &["nope"]).unwrap_err();
    }
}
