//! The PCR values a Hearth image produces, computed from its bytes at build time.
//!
//! - PCR 4: OVMF's "Calling EFI Application from Boot Option" action and the separator, then
//!   the Authenticode digests of the UKI and of the kernel the stub loads from it.
//! - PCR 11: systemd-stub measures each UKI section it uses, in the order .linux, .osrel,
//!   .cmdline, .initrd: first the section name with its NUL, then the contents.
//! - PCR 9: the kernel's EFI stub measures its load options (the command line as UTF-16LE with
//!   a NUL, which systemd-stub hands it) and the initrd.

use hearth_eventlog::pcr::Bank;

/// The EV_EFI_ACTION string OVMF measures before starting a boot option.
pub const BOOT_ATTEMPT_ACTION: &[u8] = b"Calling EFI Application from Boot Option";

/// The UKI sections systemd-stub measures into PCR 11, in its order.
pub const UKI_SECTIONS: [&str; 4] = [".linux", ".osrel", ".cmdline", ".initrd"];

fn sha256(data: &[u8]) -> Vec<u8> {
    Bank::Sha256.hash(data)
}

fn replay(digests: &[Vec<u8>]) -> Vec<u8> {
    digests
        .iter()
        .fold(vec![0u8; 32], |pcr, d| Bank::Sha256.extend(&pcr, d))
}

/// PCR 4 after booting the UKI whose Authenticode digest is `uki` and whose kernel's is `kernel`.
pub fn pcr4(uki: &[u8; 32], kernel: &[u8; 32]) -> Vec<u8> {
    replay(&[
        sha256(BOOT_ATTEMPT_ACTION),
        sha256(&[0, 0, 0, 0]),
        uki.to_vec(),
        kernel.to_vec(),
    ])
}

/// PCR 11 after systemd-stub measured the sections (name, contents) given in [`UKI_SECTIONS`]
/// order.
pub fn pcr11(sections: &[(&str, &[u8])]) -> Vec<u8> {
    let mut digests = Vec::new();
    for (name, contents) in sections {
        let mut n = name.as_bytes().to_vec();
        n.push(0);
        digests.push(sha256(&n));
        digests.push(sha256(contents));
    }
    replay(&digests)
}

/// The kernel's load options as systemd-stub passes them: UTF-16LE with a terminating NUL.
pub fn load_options(cmdline: &str) -> Vec<u8> {
    cmdline
        .encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// PCR 9 after the kernel measured its command line and the initrd.
pub fn pcr9(cmdline: &str, initrd: &[u8]) -> Vec<u8> {
    replay(&[sha256(&load_options(cmdline)), sha256(initrd)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests from a real OVMF + swtpm boot of a UKI (shared/fixtures, ovmf-uki-sha256).
    fn fixture_pcr4_events() -> Vec<Vec<u8>> {
        [
            "3d6772b4f84ed47595d72a2c4c5ffd15f5bb72c7507fe26f2aaee2c69d5633ba",
            "df3f619804a92fdb4057192dc43dd748ea778adc52bc498ce80524c014b81119",
            "78d8bb5e08dd42b43705c3fd65a4eeff87c75bcc9fa634dd36a8e980e084e4f9",
            "6b1bf35c3bee9918250f593a6fff889c75c1e239cd2fe9e5bb0cd3de9dcb8e51",
        ]
        .iter()
        .map(|h| hex::decode(h).unwrap())
        .collect()
    }

    #[test]
    fn pcr4_matches_a_real_boot() {
        let e = fixture_pcr4_events();
        assert_eq!(sha256(BOOT_ATTEMPT_ACTION), e[0]);
        assert_eq!(sha256(&[0; 4]), e[1]);
        let uki: [u8; 32] = e[2].clone().try_into().unwrap();
        let kernel: [u8; 32] = e[3].clone().try_into().unwrap();
        assert_eq!(
            hex::encode(pcr4(&uki, &kernel)),
            "36670bf4df5ae895de7d9b316060c23e53b6a6831d04deb8981c3ef78cc6c532"
        );
    }

    #[test]
    fn section_names_are_hashed_with_their_nul() {
        // The fixture's first PCR 11 event: sha256(".linux\0").
        assert_eq!(
            hex::encode(sha256(b".linux\0")),
            "0da293e37ad5511c59be47993769aacb91b243f7d010288e118dc90e95aaef5a"
        );
        let one = pcr11(&[(".linux", b"k")]);
        let manual = replay(&[sha256(b".linux\0"), sha256(b"k")]);
        assert_eq!(one, manual);
    }

    #[test]
    fn load_options_are_utf16_with_nul() {
        assert_eq!(load_options("a b"), [b'a', 0, b' ', 0, b'b', 0, 0, 0]);
    }
}
