# Hearth developer commands. Each recipe is one line; the logic lives in the crates.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Debian packages the build, the tests and `just run` need.
packages := "swtpm swtpm-tools tpm2-tools libtss2-dev pkg-config chromium chromium-driver"
swtpm_port := "2321"
# What the image build and its QEMU boot need (hearth-image, `just vm`, the hil-tests).
image_packages := "linux-image-amd64 systemd-boot-efi ovmf qemu-system-x86 mtools e2fsprogs binutils"

# List the recipes.
default:
    @just --list

# Install missing Debian packages (idempotent; quiet when everything is there).
setup: (_apt packages) (_apt image_packages)

_apt pkgs:
    @missing=$(for p in {{pkgs}}; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"; done); if [ -n "$missing" ]; then echo "installing:" $missing; sudo=$([ "$(id -u)" = 0 ] || echo sudo); $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null; fi

# Start the appliance as on the box: a software TPM (state in ./.hearth/), then hearthd with its
# encrypted store in ./.hearth/data and the console at https://127.0.0.1:8443 (Ctrl-C stops it).
run: setup
    cargo build -q -p hearth-cli -p hearth-tpm-testkit -p hearthd && target/debug/hearth-dev-swtpm --state .hearth/tpm --port {{swtpm_port}} && exec target/debug/hearthd --config services/hearthd/dev.toml

# Stop the software TPM that `just run` started (its state and the store stay in ./.hearth/).
stop:
    cargo run -q -p hearth-tpm-testkit --bin hearth-dev-swtpm -- --state .hearth/tpm --stop

# Run the whole test suite (every test against real swtpm processes).
test: setup
    cargo test --workspace --locked

# Build target/image/hearth.img and its signed reference.json (flavor: vm = for QEMU + swtpm, box).
image flavor="vm": setup
    cargo run -q --locked -p hearth-image -- build --flavor {{flavor}}

# Boot target/image/hearth.img in QEMU with OVMF and swtpm; console on https://127.0.0.1:8443.
vm: setup
    cargo run -q --locked -p hearth-image -- vm

# The hardware-in-the-loop tests: build the image, boot it in QEMU, verify, claim, tamper.
hil: setup
    cargo test --locked -p hearth-hil-tests --test boot -- --nocapture

# Formatting and clippy, as CI runs them.
lint:
    cargo fmt --all -- --check && cargo clippy --workspace --all-targets --locked -- -D warnings

# Benchmarks, each with its peer measured in the same run (docs/benchmarks.md).
bench: setup (_apt "wrk")
    cargo bench -p hearth-cli --bench tpm && cargo bench -p hearth-eventlog --bench eventlog && cargo bench -p hearth-cli --bench verify && cargo bench -p hearth-store --bench store && cargo bench -p hearthd --bench console && cargo bench -p hearth-ml --bench train && cargo bench -p hearthd --bench serving

# The GPU test group and the GPU benchmark, in one go (needs a GPU; see docs/gpu.md).
gpu:
    hil-tests/gpu/run.sh

# Compile every kernels/*.cu with NVRTC (from PyPI's nvidia-cuda-nvrtc wheel; no GPU needed).
kernels-check:
    @[ -e target/nvrtc/nvidia/cu13/lib/libnvrtc.so.13 ] || python3 -m pip install --quiet --disable-pip-version-check --no-deps --target target/nvrtc "nvidia-cuda-nvrtc==13.5.37"
    python3 kernels/check-nvrtc.py target/nvrtc/nvidia/cu13/lib/libnvrtc.so.13

# Build the fuzz targets, uninstrumented (CI keeps them compiling).
fuzz-build:
    cd fuzz && cargo build --locked --release --bins

# Fuzz one target for a while, e.g. `just fuzz quote_attest 60` (needs `cargo install cargo-fuzz`).
fuzz target seconds="60":
    cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none {{target}} -- -max_total_time={{seconds}}

# Check licences, duplicate crates and sources (needs `cargo install cargo-deny`; add
# `advisories` where the RustSec database can be fetched).
deny:
    cargo deny check licenses bans sources
