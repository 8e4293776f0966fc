//! Errors of TPM operations.

use std::time::Duration;

use tss_esapi::constants::response_code::Tss2ResponseCodeKind;

/// Everything that can go wrong talking to the TPM.
///
/// Policy failures are reported by value ([`TpmError::PolicyMismatch`] names the PCRs that
/// moved), so callers can tell "the measurements changed" from "the TPM is broken".
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    /// The TPM could not be reached, or did not answer within the configured timeout.
    #[error("TPM unreachable at {tcti}")]
    Unreachable {
        tcti: String,
        #[source]
        source: std::io::Error,
    },

    /// The owner thread's queue is full; maps to HTTP 503.
    #[error("TPM busy: {queued} requests already queued")]
    Busy { queued: usize },

    /// The owner thread is gone (it panicked or its TPM connection failed for good).
    #[error("TPM owner thread has stopped")]
    Unavailable,

    /// Unsealing failed because these PCRs differ from their values at sealing time.
    #[error("policy mismatch: {}", describe_changed(changed))]
    PolicyMismatch { changed: Vec<u8> },

    /// The TPM is in dictionary-attack lockout and refuses authorizations for a while.
    #[error("TPM is in dictionary-attack lockout; authorizations are refused until it recovers")]
    Lockout,

    /// A TPM command failed; the source decodes the response code.
    #[error("TPM command {command} failed")]
    Tpm {
        command: &'static str,
        #[source]
        source: TssError,
    },

    /// The caller passed something the TPM cannot take.
    #[error("{0}")]
    InvalidInput(String),

    /// A sealed blob that does not parse or does not fit the TPM's formats.
    #[error("sealed blob is malformed: {reason}")]
    MalformedBlob { reason: String },

    /// An NV counter that was never defined.
    #[error("NV index {index:#010x} is not defined (incrementing it defines it)")]
    CounterNotDefined { index: u32 },

    /// An NV index that exists but is not a counter.
    #[error("NV index {index:#010x} is not a monotonic counter")]
    NotACounter { index: u32 },

    /// The persistent handle holds a key that is not a Hearth attestation key.
    #[error(
        "persistent handle {handle:#010x} holds a key that is not an ECC P-256 restricted signing key"
    )]
    ForeignAk { handle: u32 },

    /// The TPM answered with something the TPM specification does not allow.
    #[error("TPM returned an unexpected value: {0}")]
    Unexpected(String),
}

impl From<hearth_eventlog::pcr::PcrError> for TpmError {
    fn from(e: hearth_eventlog::pcr::PcrError) -> Self {
        TpmError::InvalidInput(e.0)
    }
}

impl TpmError {
    /// Wraps a tss-esapi error from `command`, lifting the response codes callers act on.
    pub(crate) fn tss(command: &'static str, source: tss_esapi::Error) -> TpmError {
        if let tss_esapi::Error::Tss2Error(rc) = source
            && rc.kind() == Some(Tss2ResponseCodeKind::Lockout)
        {
            return TpmError::Lockout;
        }
        TpmError::Tpm {
            command,
            source: TssError(source),
        }
    }

    pub(crate) fn timeout(tcti: &str, after: Duration) -> TpmError {
        TpmError::Unreachable {
            tcti: tcti.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} ms", after.as_millis()),
            ),
        }
    }

    /// The response-code kind of a TPM error, if this is one.
    pub fn tpm_kind(&self) -> Option<Tss2ResponseCodeKind> {
        match self {
            TpmError::Tpm {
                source: TssError(tss_esapi::Error::Tss2Error(rc)),
                ..
            } => rc.kind(),
            _ => None,
        }
    }
}

/// A tss-esapi error, shown once: tss-esapi repeats its message down its source chain, so this
/// wrapper prints the decoded text and the raw response code on one line and ends the chain.
#[derive(Debug)]
pub struct TssError(pub tss_esapi::Error);

impl std::fmt::Display for TssError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut messages: Vec<String> = Vec::new();
        let mut next: Option<&dyn std::error::Error> = Some(&self.0);
        while let Some(e) = next {
            let text = e.to_string();
            if !messages.contains(&text) {
                messages.push(text);
            }
            next = e.source();
        }
        let code = messages
            .iter()
            .position(|m| m.starts_with("Response code value: "))
            .map(|i| messages.remove(i));
        f.write_str(&messages.join(": "))?;
        if let Some(code) = code {
            write!(
                f,
                " (TPM response code {})",
                code.trim_start_matches("Response code value: ")
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for TssError {}

fn describe_changed(changed: &[u8]) -> String {
    match changed {
        [] => "the policy no longer matches, although no selected PCR changed".to_owned(),
        [one] => format!("PCR {one} changed since sealing"),
        many => {
            let list: Vec<String> = many.iter().map(u8::to_string).collect();
            format!("PCRs {} changed since sealing", list.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_mismatch_names_the_pcrs() {
        let one = TpmError::PolicyMismatch { changed: vec![11] };
        assert_eq!(
            one.to_string(),
            "policy mismatch: PCR 11 changed since sealing"
        );
        let two = TpmError::PolicyMismatch {
            changed: vec![7, 11],
        };
        assert_eq!(
            two.to_string(),
            "policy mismatch: PCRs 7, 11 changed since sealing"
        );
    }
}
