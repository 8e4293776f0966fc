//! Compiles every kernels/*.cu as C++20 under cpp/emu.h (the CUDA emulation) with the launcher.
use std::path::PathBuf;

fn main() {
    let here = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let kernels = here.join("..");
    let emu_h = here.join("cpp/emu.h");
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++20")
        .opt_level(2)
        .warnings(false)
        .include(here.join("cpp"))
        .file(here.join("cpp/launch.cpp"));
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&kernels)
        .expect("kernels/ is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .collect();
    sources.sort();
    // Each .cu is C++ here, with the emulation force-included (the files include nothing).
    build
        .flag("-include")
        .flag(emu_h.to_str().expect("a UTF-8 path"));
    build.flag("-x").flag("c++");
    for s in &sources {
        build.file(s);
        println!("cargo:rerun-if-changed={}", s.display());
    }
    println!("cargo:rerun-if-changed={}", here.join("cpp").display());
    build.compile("hearth_kernels_emu");
}
