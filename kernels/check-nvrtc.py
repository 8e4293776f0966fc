#!/usr/bin/env python3
"""Compile every kernels/*.cu with NVRTC, as hearth-kernels does at run time, without a GPU.

Usage: check-nvrtc.py LIBNVRTC [ARCH...]

LIBNVRTC is libnvrtc.so from PyPI's nvidia-cuda-nvrtc wheel (`just kernels-check` installs it).
Each file is compiled for every ARCH (default: compute_75 compute_80 compute_90: Turing, without
TF32 tensor cores, where gemm_tf32 compiles to a trap; Ampere; Hopper) with the options the runtime
uses. A kernel that does not compile fails with NVRTC's log, which names the file and line;
warnings are printed too. Exit 0 only when every file compiles for every architecture.
"""

import ctypes
import pathlib
import sys

# The options hearth-kernels passes besides the architecture (kernels/src/lib.rs,
# NVRTC_OPTIONS): keep the two lists in step.
OPTIONS = ["--std=c++17"]


def check(lib, path, arch):
    source = path.read_bytes()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(ctypes.byref(prog), source, path.name.encode(), 0, None, None)
    if rc != 0:
        return False, f"nvrtcCreateProgram failed ({rc})"
    opts = [f"--gpu-architecture={arch}".encode()] + [o.encode() for o in OPTIONS]
    arr = (ctypes.c_char_p * len(opts))(*opts)
    rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    ptx_size = ctypes.c_size_t()
    if rc == 0:
        lib.nvrtcGetPTXSize(prog, ctypes.byref(ptx_size))
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    text = log.value.decode(errors="replace").strip()
    if rc != 0:
        return False, text or f"nvrtcCompileProgram failed ({rc})"
    return True, (text + "\n" if text else "") + f"{ptx_size.value} bytes of PTX"


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    lib = ctypes.CDLL(sys.argv[1])
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    archs = sys.argv[2:] or ["compute_75", "compute_80", "compute_90"]
    files = sorted(pathlib.Path(__file__).resolve().parent.glob("*.cu"))
    if not files:
        print("no kernels/*.cu found")
        return 1
    print(f"NVRTC {major.value}.{minor.value}: {len(files)} kernel files x {archs}")
    failed = 0
    for path in files:
        for arch in archs:
            ok, message = check(lib, path, arch)
            status = "ok  " if ok else "FAIL"
            print(f"  {status} {path.name} ({arch}): {message.splitlines()[-1] if ok else ''}")
            if not ok:
                failed += 1
                print(message)
    if failed:
        print(f"{failed} compilation(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
