//! hearth-keys: TPM-bound key hierarchy: sealed root secret, recovery key, HKDF purpose keys, AEAD records, STREAM blobs (being built).
