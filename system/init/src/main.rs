//! hearth-init: PID 1 inside the Hearth image.

fn main() {}
