//! GPU discovery, health, telemetry and leases (see docs/gpu.md).
