//! hearth-gpu: which GPUs this appliance has, how they are doing, and who is using them.
//!
//! What it is for: the probe that decides the compute backend at start-up ([`probe`]: CUDA
//! when a driver and at least one device are found, else the CPU, with the reason), the
//! inventory the console shows (name, memory, compute capability, UUID), telemetry through
//! NVML where the library is present (power, energy, temperature, utilization, memory in use),
//! and [`Leases`], so that two training jobs never share a GPU by accident.
//!
//! What it is not for: compiling or launching kernels (`hearth-kernels`), training (`hearth-ml`).
//!
//! Invariants:
//! - Probing never panics and never fails: a missing `libcuda`, a driver error or no device
//!   yields an inventory with no devices and a [`Inventory::problem`] that says why (cudarc
//!   panics when `libcuda` is absent, so its presence is checked first).
//! - A GPU is leased to at most one holder at a time; dropping the [`Lease`] returns it.

use std::sync::{Arc, Mutex};

use hearth_kernels::cuda::{self, cudarc::driver::CudaContext};
use serde::{Deserialize, Serialize};

/// Which backend training may use, from the appliance's configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preference {
    /// A GPU when one is found, else the CPU (the console says which, and why).
    #[default]
    Auto,
    /// The CPU even where GPUs are present.
    Cpu,
    /// GPUs only: start-up fails when none can be used, rather than training on the CPU by
    /// accident.
    Cuda,
}

impl Preference {
    pub fn as_str(self) -> &'static str {
        match self {
            Preference::Auto => "auto",
            Preference::Cpu => "cpu",
            Preference::Cuda => "cuda",
        }
    }
}

/// One CUDA device as the driver describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GpuInfo {
    pub index: usize,
    pub name: String,
    pub memory_bytes: u64,
    /// (major, minor), e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    /// `GPU-xxxxxxxx-xxxx-…`, as nvidia-smi prints it.
    pub uuid: String,
}

impl GpuInfo {
    /// Whether the device has tensor cores that take TF32 (compute capability 8.0 or later).
    pub fn tensor_cores(&self) -> bool {
        self.compute_capability.0 >= 8
    }
}

/// A reading from NVML; a field is `None` where the device or driver does not report it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Telemetry {
    pub power_watts: Option<f64>,
    /// Energy since the driver loaded, in joules (a counter: subtract two readings).
    pub energy_joules: Option<f64>,
    pub temperature_c: Option<u32>,
    pub utilization_percent: Option<u32>,
    pub memory_used_bytes: Option<u64>,
}

/// What [`probe`] found.
pub struct Inventory {
    pub devices: Vec<GpuInfo>,
    /// Why there is no GPU backend (no driver, no device, a driver error); `None` with devices.
    pub problem: Option<String>,
    /// The driver's CUDA version, e.g. "13.0" (read through NVML).
    pub driver_cuda_version: Option<String>,
    nvml: Option<nvml_wrapper::Nvml>,
}

impl std::fmt::Debug for Inventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inventory")
            .field("devices", &self.devices)
            .field("problem", &self.problem)
            .field("nvml", &self.nvml.is_some())
            .finish()
    }
}

impl Inventory {
    /// No GPU, for `reason`, without probing anything (no driver loaded, no CUDA context).
    pub fn none(reason: impl Into<String>) -> Inventory {
        Inventory {
            devices: Vec::new(),
            problem: Some(reason.into()),
            driver_cuda_version: None,
            nvml: None,
        }
    }

    /// The backend training uses: `cuda` with at least one device, else `cpu`.
    pub fn backend(&self) -> &'static str {
        if self.devices.is_empty() {
            "cpu"
        } else {
            "cuda"
        }
    }

    /// Whether NVML telemetry is available.
    pub fn has_telemetry(&self) -> bool {
        self.nvml.is_some()
    }

    /// A telemetry reading of device `index` (matched by UUID, since NVML and CUDA may number
    /// devices differently); `None` without NVML or for an unknown device.
    pub fn telemetry(&self, index: usize) -> Option<Telemetry> {
        let nvml = self.nvml.as_ref()?;
        let info = self.devices.get(index)?;
        let device = nvml.device_by_uuid(info.uuid.as_str()).ok()?;
        Some(Telemetry {
            power_watts: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
            #[allow(clippy::cast_precision_loss)]
            energy_joules: device
                .total_energy_consumption()
                .ok()
                .map(|mj| mj as f64 / 1000.0),
            temperature_c: device
                .temperature(nvml_wrapper::enum_wrappers::device::TemperatureSensor::Gpu)
                .ok(),
            utilization_percent: device.utilization_rates().ok().map(|u| u.gpu),
            memory_used_bytes: device.memory_info().ok().map(|m| m.used),
        })
    }

    /// One line per device, or the reason there is none, for logs and the CLI.
    pub fn summary(&self) -> String {
        if self.devices.is_empty() {
            return format!(
                "compute: cpu (no GPU: {})",
                self.problem.as_deref().unwrap_or("none found")
            );
        }
        let list: Vec<String> = self
            .devices
            .iter()
            .map(|d| {
                format!(
                    "cuda:{} {} ({} MiB, sm_{}{})",
                    d.index,
                    d.name,
                    d.memory_bytes >> 20,
                    d.compute_capability.0,
                    d.compute_capability.1
                )
            })
            .collect();
        format!("compute: cuda: {}", list.join(", "))
    }
}

/// Finds the GPUs. Never panics; see [`Inventory::problem`] for why there are none.
pub fn probe() -> Inventory {
    let nvml = nvml_wrapper::Nvml::init().ok();
    let mut inventory = Inventory {
        devices: Vec::new(),
        problem: None,
        driver_cuda_version: None,
        nvml,
    };
    if !cuda::driver_present() {
        inventory.problem = Some("no CUDA driver (libcuda.so) is installed".into());
        return inventory;
    }
    let count = match cuda::device_count() {
        Ok(0) => {
            inventory.problem = Some("the CUDA driver reports no device".into());
            return inventory;
        }
        Ok(n) => n,
        Err(e) => {
            inventory.problem = Some(e.to_string());
            return inventory;
        }
    };
    if let Some(v) = inventory
        .nvml
        .as_ref()
        .and_then(|n| n.sys_cuda_driver_version().ok())
    {
        inventory.driver_cuda_version = Some(format!("{}.{}", v / 1000, (v % 1000) / 10));
    }
    for index in 0..count {
        match describe(index) {
            Ok(info) => inventory.devices.push(info),
            Err(e) => {
                inventory.problem = Some(format!("device {index}: {e}"));
            }
        }
    }
    if inventory.devices.is_empty() && inventory.problem.is_none() {
        inventory.problem = Some("no usable device".into());
    }
    inventory
}

fn describe(index: usize) -> Result<GpuInfo, cuda::cudarc::driver::DriverError> {
    let ctx = CudaContext::new(index)?;
    let uuid = ctx.uuid()?;
    Ok(GpuInfo {
        index,
        name: ctx.name()?,
        memory_bytes: u64::try_from(ctx.total_mem()?).unwrap_or(u64::MAX),
        compute_capability: ctx.compute_capability()?,
        uuid: format_uuid(&uuid.bytes),
    })
}

/// `GPU-` and the 16 bytes as 8-4-4-4-12 hex digits, as nvidia-smi and NVML print them.
pub fn format_uuid(bytes: &[std::ffi::c_char; 16]) -> String {
    #[allow(clippy::cast_sign_loss)]
    let b: Vec<u8> = bytes.iter().map(|&c| c as u8).collect();
    let h = |r: std::ops::Range<usize>| hex::encode(&b[r]);
    format!(
        "GPU-{}-{}-{}-{}-{}",
        h(0..4),
        h(4..6),
        h(6..8),
        h(8..10),
        h(10..16)
    )
}

/// Exclusive use of GPUs by jobs.
#[derive(Clone, Debug)]
pub struct Leases {
    holders: Arc<Mutex<Vec<Option<String>>>>,
}

/// One GPU held by one holder until dropped.
#[derive(Debug)]
pub struct Lease {
    index: usize,
    holders: Arc<Mutex<Vec<Option<String>>>>,
}

impl Lease {
    /// The CUDA device index held.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = holders.get_mut(self.index) {
            *slot = None;
        }
    }
}

impl Leases {
    /// Leases over `devices` GPUs (numbered 0..devices).
    pub fn new(devices: usize) -> Leases {
        Leases {
            holders: Arc::new(Mutex::new(vec![None; devices])),
        }
    }

    pub fn devices(&self) -> usize {
        self.holders.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The first free GPU for `holder` (a job id, say), or `None` when every GPU is held.
    pub fn try_lease(&self, holder: &str) -> Option<Lease> {
        let mut holders = self.holders.lock().unwrap_or_else(|p| p.into_inner());
        let index = holders.iter().position(Option::is_none)?;
        holders[index] = Some(holder.to_owned());
        Some(Lease {
            index,
            holders: self.holders.clone(),
        })
    }

    /// Who holds each GPU (`None`: free), for the console.
    pub fn holders(&self) -> Vec<Option<String>> {
        self.holders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gpu_is_leased_to_one_holder_at_a_time() {
        let leases = Leases::new(2);
        let a = leases.try_lease("job-a").unwrap();
        let b = leases.try_lease("job-b").unwrap();
        assert_ne!(a.index(), b.index());
        assert!(leases.try_lease("job-c").is_none());
        assert_eq!(
            leases.holders(),
            [Some("job-a".to_owned()), Some("job-b".to_owned())]
        );
        drop(a);
        let c = leases.try_lease("job-c").unwrap();
        assert_eq!(c.index(), 0);
        assert!(Leases::new(0).try_lease("x").is_none());
    }

    #[test]
    fn probing_never_panics_and_explains_an_empty_inventory() {
        let inv = probe();
        if inv.devices.is_empty() {
            assert_eq!(inv.backend(), "cpu");
            let why = inv.problem.as_deref().unwrap();
            assert!(!why.is_empty());
            assert!(inv.summary().contains(why), "{}", inv.summary());
        } else {
            assert_eq!(inv.backend(), "cuda");
            assert!(inv.summary().contains(&inv.devices[0].name));
        }
    }

    #[test]
    fn a_configured_cpu_inventory_says_why_and_has_no_telemetry() {
        let inv = Inventory::none("configured");
        assert_eq!(inv.backend(), "cpu");
        assert!(!inv.has_telemetry());
        assert_eq!(inv.problem.as_deref(), Some("configured"));
        assert!(inv.summary().contains("configured"), "{}", inv.summary());
    }

    #[test]
    fn uuids_print_as_nvidia_smi_does() {
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation)]
        let bytes: [std::ffi::c_char; 16] = std::array::from_fn(|i| (i * 17) as std::ffi::c_char);
        assert_eq!(
            format_uuid(&bytes),
            "GPU-00112233-4455-6677-8899-aabbccddeeff"
        );
    }
}
