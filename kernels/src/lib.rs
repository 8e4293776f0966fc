//! hearth-kernels: the appliance's own CUDA kernels and a CPU reference for each.
//!
//! What it is for: the kernel sources (`kernels/*.cu`: plain CUDA C, `extern "C"` entry points,
//! no `#include`), embedded here with `include_str!` so the binary carries them and NVRTC
//! compiles them at run time for whatever GPU the appliance has ([`SOURCES`],
//! [`NVRTC_OPTIONS`]); and [`reference`], a CPU implementation of every entry point with exactly
//! the same semantics, against which the GPU tests compare each kernel.
//!
//! [`cuda`] is the launcher (NVRTC compile per device, bounds-checked typed launches);
//! [`device`] puts the kernels behind one trait with two implementations, a real GPU and the
//! references, so code that drives the kernels is testable on any machine.
//!
//! What it is not for: choosing a backend or training (hearth-ml), GPU inventory (hearth-gpu).
//!
//! Invariants:
//! - Every entry point in [`SOURCES`] has a reference function of the same name and argument
//!   order in [`reference`] (checked by a test).
//! - `kernels/check-nvrtc.py` compiles every source with the same options; CI runs it
//!   (`just kernels-check`), so a kernel that does not compile fails CI with its file and line.

pub mod cuda;
pub mod device;
pub mod reference;

/// One `.cu` file and the kernels it defines.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    pub file: &'static str,
    pub source: &'static str,
    pub entry_points: &'static [&'static str],
}

/// Every kernel source, compiled as one NVRTC program each.
pub const SOURCES: &[KernelSource] = &[
    KernelSource {
        file: "data.cu",
        source: include_str!("../data.cu"),
        entry_points: &["gather_rows"],
    },
    KernelSource {
        file: "gemm.cu",
        source: include_str!("../gemm.cu"),
        entry_points: &["gemm_f32", "gemm_tf32", "gemm_reduce"],
    },
    KernelSource {
        file: "activation.cu",
        source: include_str!("../activation.cu"),
        entry_points: &["bias_act_forward", "relu_backward", "column_sums"],
    },
    KernelSource {
        file: "loss.cu",
        source: include_str!("../loss.cu"),
        entry_points: &["sigmoid_bce", "softmax_ce", "mse"],
    },
    KernelSource {
        file: "optim.cu",
        source: include_str!("../optim.cu"),
        entry_points: &["adam_update", "reduce_sum"],
    },
];

/// NVRTC options besides `--gpu-architecture` (which comes from the device). Keep
/// `kernels/check-nvrtc.py` in step.
pub const NVRTC_OPTIONS: &[&str] = &["--std=c++17"];

/// The arithmetic of a matrix product: [`Math::F32`] is `gemm_f32` (float32 products on the
/// CUDA cores), [`Math::Tf32`] is `gemm_tf32` (operands rounded to TF32, products on the tensor
/// cores, float32 sums; compute capability 8.0 and later). Both take and give float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Math {
    F32,
    Tf32,
}

impl Math {
    /// The kernel entry point.
    pub fn kernel(self) -> &'static str {
        match self {
            Math::F32 => "gemm_f32",
            Math::Tf32 => "gemm_tf32",
        }
    }

    /// The kernel's CPU reference ([`reference::gemm_f32`] or [`reference::gemm_tf32`]).
    pub fn reference(self) -> reference::GemmFn {
        match self {
            Math::F32 => reference::gemm_f32,
            Math::Tf32 => reference::gemm_tf32,
        }
    }
}

/// Block size the loss and reduction kernels assume.
pub const REDUCTION_BLOCK: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_point_is_defined_extern_c_and_has_a_reference() {
        for s in SOURCES {
            assert!(!s.source.contains("#include"), "{}: no #include", s.file);
            for name in s.entry_points {
                // `extern "C" __global__ void [__launch_bounds__(…)] name(` on one line.
                let decl = s.source.lines().any(|l| {
                    l.strip_prefix("extern \"C\" __global__ void ")
                        .map(|rest| rest.rsplit_once(") ").map_or(rest, |(_, f)| f))
                        .is_some_and(|f| f.starts_with(&format!("{name}(")))
                });
                assert!(
                    decl,
                    "{} lacks extern \"C\" __global__ void {name}(",
                    s.file
                );
                assert!(
                    reference::ENTRY_POINTS.contains(name),
                    "{name} has no CPU reference"
                );
            }
        }
        let all: Vec<&str> = SOURCES
            .iter()
            .flat_map(|s| s.entry_points.iter().copied())
            .collect();
        for name in reference::ENTRY_POINTS {
            assert!(all.contains(name), "reference {name} has no kernel");
        }
        // Every .cu file in the folder is listed.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".cu"))
                    .collect()
            })
            .unwrap_or_default();
        on_disk.sort();
        let mut listed: Vec<String> = SOURCES.iter().map(|s| s.file.to_owned()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
