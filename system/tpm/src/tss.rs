//! Conversions between hearth-attest's pure PCR types and tss-esapi's.

use hearth_eventlog::pcr::{Bank, PcrSelection};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{PcrSelectionList, PcrSelectionListBuilder, PcrSlot};

use crate::error::TpmError;

pub(crate) fn alg(bank: Bank) -> HashingAlgorithm {
    match bank {
        Bank::Sha1 => HashingAlgorithm::Sha1,
        Bank::Sha256 => HashingAlgorithm::Sha256,
        Bank::Sha384 => HashingAlgorithm::Sha384,
        Bank::Sha512 => HashingAlgorithm::Sha512,
        Bank::Sm3_256 => HashingAlgorithm::Sm3_256,
    }
}

pub(crate) fn bank(alg: HashingAlgorithm) -> Option<Bank> {
    match alg {
        HashingAlgorithm::Sha1 => Some(Bank::Sha1),
        HashingAlgorithm::Sha256 => Some(Bank::Sha256),
        HashingAlgorithm::Sha384 => Some(Bank::Sha384),
        HashingAlgorithm::Sha512 => Some(Bank::Sha512),
        HashingAlgorithm::Sm3_256 => Some(Bank::Sm3_256),
        _ => None,
    }
}

/// The PCR index of a selection slot (slots are bit masks).
pub(crate) fn pcr_index(slot: PcrSlot) -> u8 {
    // trailing_zeros of a u32 is at most 32, which fits a u8.
    u8::try_from(u32::from(slot).trailing_zeros()).unwrap_or(u8::MAX)
}

pub(crate) fn selection(selection: &PcrSelection) -> Result<PcrSelectionList, TpmError> {
    let mut builder = PcrSelectionListBuilder::new();
    for (b, pcrs) in selection.iter() {
        let slots: Vec<PcrSlot> = pcrs
            .iter()
            .map(|&p| PcrSlot::try_from(1u32 << p))
            .collect::<Result<_, _>>()
            .map_err(|e| TpmError::tss("PcrSelection", e))?;
        builder = builder.with_selection(alg(b), &slots);
    }
    builder
        .build()
        .map_err(|e| TpmError::tss("PcrSelection", e))
}
