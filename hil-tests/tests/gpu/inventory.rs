//! hearth-gpu on a real GPU.

use hearth_gpu::{Leases, probe};

#[test]
fn the_probe_finds_the_gpu_and_describes_it() {
    let inv = probe();
    println!("{}", inv.summary());
    assert_eq!(inv.backend(), "cuda", "{:?}", inv.problem);
    let d = &inv.devices[0];
    assert!(!d.name.is_empty());
    assert!(d.memory_bytes > 1 << 30, "{d:?}");
    assert!(d.compute_capability >= (7, 0), "{d:?}");
    assert!(d.uuid.starts_with("GPU-") && d.uuid.len() == 40, "{d:?}");
    // The launcher and the probe agree on what device 0 is.
    let gpu = super::gpu();
    assert_eq!(gpu.name(), d.name);
    let (major, minor) = d.compute_capability;
    assert_eq!(gpu.arch(), format!("compute_{major}{minor}"));
}

#[test]
fn nvml_reports_power_and_energy() {
    let inv = probe();
    assert!(inv.has_telemetry(), "NVML did not load");
    let t = inv.telemetry(0).unwrap();
    println!(
        "telemetry: {t:?}, driver CUDA {:?}",
        inv.driver_cuda_version
    );
    let watts = t.power_watts.unwrap();
    assert!(watts > 1.0 && watts < 2000.0, "{t:?}");
    assert!(t.memory_used_bytes.is_some(), "{t:?}");
    assert!(inv.driver_cuda_version.is_some());
}

#[test]
fn two_jobs_never_share_the_gpu() {
    let inv = probe();
    let leases = Leases::new(inv.devices.len());
    let held: Vec<_> = (0..inv.devices.len())
        .map(|i| leases.try_lease(&format!("job-{i}")).unwrap())
        .collect();
    assert!(leases.try_lease("one-too-many").is_none());
    drop(held);
    assert!(leases.try_lease("again").is_some());
}
