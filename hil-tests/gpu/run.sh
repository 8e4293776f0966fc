#!/usr/bin/env bash
# The GPU group of the hardware-in-the-loop tests, in one call: builds the GPU tests and the GPU
# benchmark (release), then runs every GPU test (each kernel against its CPU reference, training
# parity CPU vs GPU, inventory, NVML, leases) and the benchmark (GEMM vs cuBLAS, training vs
# PyTorch on the same GPU). A GPU is promised here: without one the tests fail, loudly.
#
#   hil-tests/gpu/run.sh                 build (needs cargo) and run, on a machine with a GPU
#   hil-tests/gpu/run.sh --build DIR     only build, copying the two binaries into DIR
#   hil-tests/gpu/run.sh --prebuilt DIR  only run the binaries in DIR (a GPU host without Rust)
#
# Logs and the benchmark record go to $OUT (default target/gpu-report).
set -euo pipefail
cd "$(dirname "$0")/../.."

mode=all dir=target/gpu-bin
case "${1:-}" in
    --build) mode=build dir=${2:?--build needs a folder} ;;
    --prebuilt) mode=run dir=${2:?--prebuilt needs a folder} ;;
    "") ;;
    *) echo "usage: $0 [--build DIR | --prebuilt DIR]" >&2; exit 2 ;;
esac

executable() { # cargo subcommand args… → the path of the one executable it built
    cargo "$@" --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
paths=[m["executable"] for m in map(json.loads,sys.stdin) if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="gpu"]
print(paths[-1])'
}

if [ "$mode" != run ]; then
    mkdir -p "$dir"
    cp "$(executable test --release -p hearth-hil-tests --features gpu --test gpu --no-run)" "$dir/gpu-tests"
    cp "$(executable bench -p hearth-hil-tests --features gpu --bench gpu --no-run)" "$dir/gpu-bench"
    strip "$dir/gpu-tests" "$dir/gpu-bench" 2>/dev/null || true
    ls -la "$dir"
    [ "$mode" = build ] && exit 0
fi

out=${OUT:-target/gpu-report}
mkdir -p "$out"

# cudarc loads libcuda, libnvrtc.so.13 and (the benchmark's peer) libcublas.so.13 at run time:
# put wherever this host keeps them on the library path.
for lib in libnvrtc.so.13 libcublas.so.13; do
    found=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib /usr/lib/x86_64-linux-gnu \
        /opt /usr/local/lib -name "$lib" 2>/dev/null | head -1 || true)
    if [ -n "$found" ]; then
        export LD_LIBRARY_PATH="$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    else
        echo "warning: $lib not found on this host" >&2
    fi
done
echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
nvidia-smi -L || echo "nvidia-smi: not found"

status=0
echo "=== GPU tests"
"$dir/gpu-tests" --test-threads 1 --nocapture 2>&1 | tee "$out/tests.log" || status=1
echo "=== GPU benchmark"
"$dir/gpu-bench" --record "$out/bench.json" --peer services/ml/parity/torch_peer.py 2>&1 |
    tee "$out/bench.log" || status=1
exit $status
