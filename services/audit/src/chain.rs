//! The chain rules, shared by the journal (on open and on append) and by export verification.

use std::collections::HashMap;
use std::fmt;

use crate::digest::Digest;
use crate::key::AuditKey;
use crate::record::{GENESIS, Malformed, Outcome, Record};
use crate::time::Timestamp;

/// The newest record of a chain: its seq and hash. The hash alone is the `audit_head` that
/// hearthd binds into TPM quotes (it commits to the seq and to every earlier record).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Head {
    /// `None` for an empty log.
    pub seq: Option<u64>,
    /// The newest record's hash, or [`GENESIS`] for an empty log.
    pub hash: Digest,
}

impl Head {
    /// The head of an empty log.
    pub const GENESIS: Head = Head {
        seq: None,
        hash: GENESIS,
    };

    /// How many records the chain up to this head holds.
    pub fn records(&self) -> u64 {
        self.seq.map_or(0, |seq| seq.saturating_add(1))
    }
}

impl fmt::Display for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "seq {seq}, hash {}", self.hash),
            None => write!(f, "empty log, genesis hash {}", self.hash),
        }
    }
}

/// The first place where a journal or an export stops being an intact chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line} (expected seq {expected_seq}{}): {kind}", .seq.map(|s| format!(", found seq {s}")).unwrap_or_default())]
pub struct Break {
    /// 1-based line number in the journal or export.
    pub line: u64,
    /// The seq an intact chain has at this line.
    pub expected_seq: u64,
    /// The seq the line claims, when it parsed as a record.
    pub seq: Option<u64>,
    pub kind: BreakKind,
}

/// Why the chain breaks at a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BreakKind {
    /// Not a record at all (a torn or garbled line, a missing field, a bad value).
    #[error("malformed: {0}")]
    Malformed(Malformed),
    /// The record's contents do not hash to its `hash` field: it was edited.
    #[error("edited: its fields hash to {computed}, not to the stored hash {stored}")]
    HashMismatch { stored: Digest, computed: Digest },
    /// The MAC does not match the hash under the key: forged (re-hashed after an edit, or made
    /// up), or verified with the wrong key.
    #[error("MAC wrong: the record was forged, or the key is not this log's")]
    MacMismatch,
    /// A later seq than expected, and the expected one appears nowhere after it (or the journal
    /// is being read, which does not look ahead): records were deleted.
    #[error("seq gap: records {expected}..{found} are missing (deleted)")]
    SeqGap { expected: u64, found: u64 },
    /// A later seq than expected, and the expected one appears further on: records were moved.
    #[error("reordered: seq {found} comes before seq {expected}")]
    Reordered { expected: u64, found: u64 },
    /// An earlier seq than expected: a record was inserted or duplicated before this line (when
    /// the inserted record carried a plausible seq, this is the genuine record after it).
    #[error("seq {found} repeats: a record was inserted or duplicated before this line")]
    SeqRepeated { expected: u64, found: u64 },
    /// The right seq and a self-consistent hash, but `prev` is not the previous record's hash:
    /// the record before it was edited and re-hashed, or records around it were replaced.
    #[error("broken link: prev is {found}, but the previous record's hash is {expected}")]
    PrevMismatch { expected: Digest, found: Digest },
    /// A completion that does not close an open started record of the same action and object.
    #[error("completion of seq {parent}: {problem}")]
    BadParent { parent: u64, problem: ParentProblem },
}

/// Why a completion's `parent` is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParentProblem {
    #[error("that record is not a started record")]
    NotStarted,
    #[error("that started record is already completed")]
    AlreadyCompleted,
    #[error("that started record is for another action or object")]
    OtherAction,
}

/// A started record with no completion yet.
#[derive(Debug)]
struct Open {
    action: String,
    object: String,
}

/// The state of a chain after the records accepted so far.
#[derive(Debug)]
pub(crate) struct Chain {
    head: Head,
    /// Seq of every started record not yet completed.
    open: HashMap<u64, Open>,
    /// Which seqs are started records (one bit per record), to tell a second completion from a
    /// completion of something that never started.
    started: Bits,
    first_time: Option<Timestamp>,
    last_time: Option<Timestamp>,
    time_regressions: u64,
}

impl Chain {
    pub(crate) fn new() -> Chain {
        Chain {
            head: Head::GENESIS,
            open: HashMap::new(),
            started: Bits::default(),
            first_time: None,
            last_time: None,
            time_regressions: 0,
        }
    }

    pub(crate) fn head(&self) -> Head {
        self.head
    }

    /// The seq the next record must carry.
    pub(crate) fn next_seq(&self) -> u64 {
        self.head.records()
    }

    /// Checks `record` as the next one, in this order: its own hash (edited?), its MAC under
    /// `key` when given (forged?), its seq (deleted, moved or inserted?), its link to the
    /// previous record, its parent. Does not accept it: call [`Chain::accept`] after.
    pub(crate) fn check(&self, record: &Record, key: Option<&AuditKey>) -> Result<(), BreakKind> {
        let computed = record.compute_hash();
        if computed != record.hash {
            return Err(BreakKind::HashMismatch {
                stored: record.hash,
                computed,
            });
        }
        if let Some(key) = key
            && !key.verify(&record.hash, &record.mac)
        {
            return Err(BreakKind::MacMismatch);
        }
        let expected = self.next_seq();
        if record.seq > expected {
            return Err(BreakKind::SeqGap {
                expected,
                found: record.seq,
            });
        }
        if record.seq < expected {
            return Err(BreakKind::SeqRepeated {
                expected,
                found: record.seq,
            });
        }
        if record.prev != self.head.hash {
            return Err(BreakKind::PrevMismatch {
                expected: self.head.hash,
                found: record.prev,
            });
        }
        self.check_parent(
            &record.outcome,
            record.parent,
            &record.action,
            &record.object,
        )
        .map_err(|(parent, problem)| BreakKind::BadParent { parent, problem })
    }

    /// Whether a record with this outcome and parent may come next.
    pub(crate) fn check_parent(
        &self,
        outcome: &Outcome,
        parent: Option<u64>,
        action: &str,
        object: &str,
    ) -> Result<(), (u64, ParentProblem)> {
        let Some(parent) = parent.filter(|_| outcome.is_completion()) else {
            return Ok(());
        };
        match self.open.get(&parent) {
            Some(open) if open.action == action && open.object == object => Ok(()),
            Some(_) => Err((parent, ParentProblem::OtherAction)),
            None if self.started.get(parent) => Err((parent, ParentProblem::AlreadyCompleted)),
            None => Err((parent, ParentProblem::NotStarted)),
        }
    }

    /// Accepts `record` (already checked) as the new head.
    pub(crate) fn accept(&mut self, record: &Record) {
        match (&record.outcome, record.parent) {
            (Outcome::Started, _) => {
                self.started.set(record.seq);
                self.open.insert(
                    record.seq,
                    Open {
                        action: record.action.clone(),
                        object: record.object.clone(),
                    },
                );
            }
            (_, Some(parent)) => {
                self.open.remove(&parent);
            }
            (_, None) => {}
        }
        if self.last_time.is_some_and(|last| record.time < last) {
            self.time_regressions += 1;
        }
        self.first_time.get_or_insert(record.time);
        self.last_time = Some(record.time);
        self.head = Head {
            seq: Some(record.seq),
            hash: record.hash,
        };
    }

    /// Seqs of started records without a completion, ascending.
    pub(crate) fn unfinished(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.open.keys().copied().collect();
        seqs.sort_unstable();
        seqs
    }

    /// First and last record's time.
    pub(crate) fn time_range(&self) -> Option<(Timestamp, Timestamp)> {
        self.first_time.zip(self.last_time)
    }

    /// How many records carry an earlier time than the record before them (a clock step back;
    /// reported, not a break).
    pub(crate) fn time_regressions(&self) -> u64 {
        self.time_regressions
    }
}

/// A growable bit set indexed by seq.
#[derive(Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn split(index: u64) -> (Option<usize>, u64) {
        (usize::try_from(index / 64).ok(), 1 << (index % 64))
    }

    fn get(&self, index: u64) -> bool {
        match Bits::split(index) {
            (Some(word), bit) => self.0.get(word).is_some_and(|w| w & bit != 0),
            (None, _) => false,
        }
    }

    /// Sets bit `index`. Only called for accepted seqs, which count up from 0 one record at a
    /// time, so the vector grows by at most one word per 64 records.
    fn set(&mut self, index: u64) {
        if let (Some(word), bit) = Bits::split(index) {
            if self.0.len() <= word {
                self.0.resize(word + 1, 0);
            }
            if let Some(w) = self.0.get_mut(word) {
                *w |= bit;
            }
        }
    }
}
