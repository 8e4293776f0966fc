//! Compute for training jobs: the GPUs found at start (hearth-gpu), who holds which, and the
//! backend each job runs on. A job takes a GPU lease when one is free and the configuration
//! allows it, and the CPU otherwise; what it ran on is recorded with the job and its model.

use hearth_gpu::{Inventory, Lease, Leases, Preference};
use hearth_ml::train::Compute as Backend;

use crate::service::Backend as Shown;

pub struct Compute {
    pub preference: Preference,
    pub inventory: Inventory,
    pub leases: Leases,
}

impl std::fmt::Debug for Compute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compute")
            .field("preference", &self.preference)
            .field("inventory", &self.inventory)
            .finish_non_exhaustive()
    }
}

/// What a job runs on, and the lease that keeps the GPU its own while it does.
pub struct Assigned {
    pub backend: Backend,
    pub lease: Option<Lease>,
    /// Why a GPU was wanted but not used, when that happened.
    pub note: Option<String>,
    /// NVML's energy counter of the leased GPU at the start, in joules.
    gpu_energy_start: Option<f64>,
}

impl Compute {
    /// Probes the GPUs unless the preference is the CPU (then no driver is even loaded).
    pub fn probe(preference: Preference) -> Compute {
        let inventory = if preference == Preference::Cpu {
            Inventory::none("the configuration says compute.backend = \"cpu\"")
        } else {
            hearth_gpu::probe()
        };
        let leases = Leases::new(inventory.devices.len());
        Compute {
            preference,
            inventory,
            leases,
        }
    }

    /// Whether some GPU here has TF32 tensor cores (compute capability 8.0 or later), so that
    /// a job may ask for `tf32` products.
    pub fn tensor_cores(&self) -> bool {
        self.inventory
            .devices
            .iter()
            .any(hearth_gpu::GpuInfo::tensor_cores)
    }

    /// The backends shown on the overview and in `GET /api/v1/status`.
    pub fn shown(&self) -> Vec<Shown> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let precision = if hearth_ml::bf16::available() {
            "mixed precision (bfloat16 products, AVX-512 BF16)"
        } else {
            "float32"
        };
        let mut out = vec![Shown {
            kind: "cpu",
            detail: format!("{threads} threads, {precision}"),
        }];
        let holders = self.leases.holders();
        for d in &self.inventory.devices {
            let held = match holders.get(d.index).cloned().flatten() {
                Some(job) => format!("training job {job}"),
                None => "free".into(),
            };
            // Health, where NVML reports it.
            let health = self.inventory.telemetry(d.index).map(|t| {
                let mut parts = Vec::new();
                if let Some(w) = t.power_watts {
                    parts.push(format!("{w:.0} W"));
                }
                if let Some(c) = t.temperature_c {
                    parts.push(format!("{c} °C"));
                }
                if let Some(u) = t.utilization_percent {
                    parts.push(format!("{u} % busy"));
                }
                if let Some(m) = t.memory_used_bytes {
                    parts.push(format!("{} MiB in use", m >> 20));
                }
                parts.join(", ")
            });
            let held = match health {
                Some(h) if !h.is_empty() => format!("{held}; {h}"),
                _ => held,
            };
            let arithmetic = if d.tensor_cores() {
                "mixed precision (TF32 tensor-core products)"
            } else {
                "float32"
            };
            out.push(Shown {
                kind: "cuda",
                detail: format!(
                    "GPU {}: {}, {} MiB, compute capability {}.{}, {arithmetic}, {} ({held})",
                    d.index,
                    d.name,
                    d.memory_bytes >> 20,
                    d.compute_capability.0,
                    d.compute_capability.1,
                    d.uuid
                ),
            });
        }
        if self.inventory.devices.is_empty()
            && let Some(why) = &self.inventory.problem
        {
            out.push(Shown {
                kind: "gpu",
                detail: format!("none: {why}"),
            });
        }
        out
    }

    /// A GPU for job `id` when one is free (with its kernels compiled), else the CPU.
    pub fn assign(&self, id: &str) -> Assigned {
        let cpu = |note: Option<String>| Assigned {
            backend: Backend::Cpu,
            lease: None,
            note,
            gpu_energy_start: None,
        };
        if self.inventory.devices.is_empty() {
            return cpu(None);
        }
        let Some(lease) = self.leases.try_lease(id) else {
            return cpu(Some("every GPU is busy; trained on the CPU".into()));
        };
        match hearth_kernels::cuda::Gpu::open(lease.index()) {
            Ok(gpu) => {
                if let Some(problem) = gpu.tensor_core_problem() {
                    tracing::warn!(
                        component = "jobs",
                        job = %id,
                        gpu = lease.index(),
                        problem,
                        "tensor-core kernel failed its start-up check: auto trains in float32 here, tf32 is refused"
                    );
                }
                let gpu_energy_start = self
                    .inventory
                    .telemetry(lease.index())
                    .and_then(|t| t.energy_joules);
                Assigned {
                    backend: Backend::Cuda(gpu),
                    lease: Some(lease),
                    note: None,
                    gpu_energy_start,
                }
            }
            Err(e) => {
                tracing::warn!(component = "jobs", job = %id, error = %e, "GPU unusable");
                cpu(Some(format!(
                    "GPU {} unusable ({e}); trained on the CPU",
                    lease.index()
                )))
            }
        }
    }

    /// The leased GPU's energy since [`Compute::assign`], from NVML.
    pub fn gpu_energy(&self, assigned: &Assigned) -> Option<f64> {
        let lease = assigned.lease.as_ref()?;
        let start = assigned.gpu_energy_start?;
        let now = self.inventory.telemetry(lease.index())?.energy_joules?;
        Some(now - start)
    }
}
