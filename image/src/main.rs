//! hearth-image: builds the bootable disk image and the reference manifest.

fn main() {}
