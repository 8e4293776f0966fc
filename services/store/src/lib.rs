//! hearth-store: Encrypted key-value store (redb) and encrypted blob store (being built).
