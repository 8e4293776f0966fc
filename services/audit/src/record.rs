//! One audit record: its fields, the canonical encoding its hash covers, and its JSON line.

use std::fmt;
use std::fmt::Write as _;

use ring::digest as sha;
use serde::Deserialize;

use crate::MAX_LINE;
use crate::digest::Digest;
use crate::key::AuditKey;
use crate::time::Timestamp;

/// The `prev` of the record with seq 0: 32 zero bytes. Also the head of an empty log.
pub const GENESIS: Digest = Digest([0; 32]);

/// Domain-separation tag, the first field of every record's canonical encoding.
pub const HASH_DOMAIN: &[u8] = b"hearth-audit/record/v1";

/// Longest actor name, in bytes.
pub const MAX_ACTOR: usize = 256;
/// Longest action name, in bytes.
pub const MAX_ACTION: usize = 128;
/// Longest object description, in bytes.
pub const MAX_OBJECT: usize = 1024;
/// Longest failure reason, in bytes.
pub const MAX_REASON: usize = 1024;

/// The role the actor acted in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Operator,
    Auditor,
    /// hearthd itself (start-up, scheduled work).
    System,
    /// Not logged in (setup claim, failed logins).
    Anonymous,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Operator,
        Role::Auditor,
        Role::System,
        Role::Anonymous,
    ];

    /// The lowercase name used in records and in the hash.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
            Role::System => "system",
            Role::Anonymous => "anonymous",
        }
    }

    /// The role named exactly `name` (lowercase).
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the action stands. Every mutating action writes a [`Outcome::Started`] record before it
/// acts and one completion record ([`Outcome::Succeeded`] or [`Outcome::Failed`]) after, whose
/// `parent` is the started record's seq.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Started,
    Succeeded,
    /// Failed, and why (1 to [`MAX_REASON`] bytes of any text).
    Failed(String),
}

impl Outcome {
    /// `started`, `succeeded` or `failed`: the `outcome` field of the JSON line and of the hash.
    pub fn tag(&self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed(_) => "failed",
        }
    }

    pub fn reason(&self) -> Option<&str> {
        match self {
            Outcome::Failed(reason) => Some(reason),
            _ => None,
        }
    }

    /// Succeeded or failed: a record that closes a started one.
    pub fn is_completion(&self) -> bool {
        !matches!(self, Outcome::Started)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Failed(reason) => write!(f, "failed: {reason}"),
            other => f.write_str(other.tag()),
        }
    }
}

/// What a caller asks to record; [`AuditLog::append`](crate::AuditLog::append) adds seq, time,
/// prev, hash and MAC and returns the sealed [`Record`].
///
/// Field rules (checked on append and on verification): `actor` 1 to [`MAX_ACTOR`] bytes without
/// control characters; `action` 1 to [`MAX_ACTION`] bytes of `a-z 0-9 . _ -`; `object` 0 to
/// [`MAX_OBJECT`] bytes of any text; a failure reason 1 to [`MAX_REASON`] bytes of any text;
/// `parent` absent for a started record, and for a completion the seq of a started record of the
/// same action and object that has no completion yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// A user name, or `system`.
    pub actor: String,
    pub role: Role,
    /// What was done, e.g. `users.create`.
    pub action: String,
    /// What it was done to, e.g. `user:bob`; may be empty.
    pub object: String,
    pub outcome: Outcome,
    pub parent: Option<u64>,
}

impl Entry {
    /// The record written before an action runs.
    pub fn started(
        actor: impl Into<String>,
        role: Role,
        action: impl Into<String>,
        object: impl Into<String>,
    ) -> Entry {
        Entry {
            actor: actor.into(),
            role,
            action: action.into(),
            object: object.into(),
            outcome: Outcome::Started,
            parent: None,
        }
    }

    /// The completion of `started` with `outcome` (same actor, role, action and object).
    pub fn completion(started: &Record, outcome: Outcome) -> Entry {
        Entry {
            actor: started.actor.clone(),
            role: started.role,
            action: started.action.clone(),
            object: started.object.clone(),
            outcome,
            parent: Some(started.seq),
        }
    }

    /// [`Entry::completion`] with [`Outcome::Succeeded`].
    pub fn succeeded(started: &Record) -> Entry {
        Entry::completion(started, Outcome::Succeeded)
    }

    /// [`Entry::completion`] with [`Outcome::Failed`].
    pub fn failed(started: &Record, reason: impl Into<String>) -> Entry {
        Entry::completion(started, Outcome::Failed(reason.into()))
    }

    /// Checks the field rules that do not depend on other records.
    pub fn validate(&self) -> Result<(), FieldError> {
        validate_fields(
            &self.actor,
            &self.action,
            &self.object,
            &self.outcome,
            self.parent,
        )
    }
}

/// [`Entry::validate`] over borrowed fields.
fn validate_fields(
    actor: &str,
    action: &str,
    object: &str,
    outcome: &Outcome,
    parent: Option<u64>,
) -> Result<(), FieldError> {
    let fail = |field, problem| Err(FieldError { field, problem });
    check_len("actor", actor, 1, MAX_ACTOR)?;
    if actor.chars().any(char::is_control) {
        return fail("actor", FieldProblem::ControlCharacter);
    }
    check_len("action", action, 1, MAX_ACTION)?;
    if !action
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    {
        return fail("action", FieldProblem::ActionCharacter);
    }
    check_len("object", object, 0, MAX_OBJECT)?;
    if let Outcome::Failed(reason) = outcome {
        check_len("reason", reason, 1, MAX_REASON)?;
    }
    match (outcome.is_completion(), parent) {
        (false, Some(_)) => fail("parent", FieldProblem::ParentOnStarted),
        (true, None) => fail("parent", FieldProblem::ParentMissing),
        _ => Ok(()),
    }
}

fn check_len(field: &'static str, value: &str, min: usize, max: usize) -> Result<(), FieldError> {
    let problem = if value.len() < min {
        FieldProblem::Empty
    } else if value.len() > max {
        FieldProblem::TooLong {
            len: value.len(),
            max,
        }
    } else {
        return Ok(());
    };
    Err(FieldError { field, problem })
}

/// A field that breaks the rules of [`Entry`] or of the record format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: FieldProblem,
}

/// What is wrong with one field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldProblem {
    #[error("is empty")]
    Empty,
    #[error("is {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("contains a control character")]
    ControlCharacter,
    #[error("may contain only a-z, 0-9, '.', '_' and '-'")]
    ActionCharacter,
    #[error("is not a role (admin, operator, auditor, system, anonymous)")]
    UnknownRole,
    #[error("is not an outcome (started, succeeded, failed)")]
    UnknownOutcome,
    #[error("is not a UTC time of the form 2025-01-31T23:59:59.999Z")]
    BadTime,
    #[error("is not 64 lowercase hex digits")]
    BadHex,
    #[error("is required when the outcome is failed")]
    ReasonMissing,
    #[error("is allowed only when the outcome is failed")]
    ReasonUnexpected,
    #[error("is required on a completion (succeeded or failed)")]
    ParentMissing,
    #[error("is not allowed on a started record")]
    ParentOnStarted,
    #[error("must name an earlier record")]
    ParentNotEarlier,
}

/// A line that is not a well-formed record (before any chain check).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("the line is empty")]
    Empty,
    #[error("the line is longer than the limit of {max} bytes")]
    TooLong { max: usize },
    #[error("not a JSON record: {message}")]
    Json { message: String },
    #[error(transparent)]
    Field(#[from] FieldError),
}

/// One sealed audit record.
///
/// A `Record` value proves nothing by itself (its fields are public, and
/// [`Record::from_json_line`] checks only its form): trust the records that
/// [`AuditLog::append`](crate::AuditLog::append) returns and those a chain verification accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the log: 0 for the first record, then +1 with no gaps.
    pub seq: u64,
    pub time: Timestamp,
    pub actor: String,
    pub role: Role,
    pub action: String,
    pub object: String,
    pub outcome: Outcome,
    /// For a completion, the seq of the started record it closes.
    pub parent: Option<u64>,
    /// The previous record's `hash`, or [`GENESIS`] for seq 0.
    pub prev: Digest,
    /// SHA-256 of the canonical encoding of every field above; see [`Record::compute_hash`].
    pub hash: Digest,
    /// HMAC-SHA256 of `hash` under the [`AuditKey`].
    pub mac: Digest,
}

/// Feeds one length-prefixed field: its length as 8 bytes big-endian, then its bytes.
fn field(ctx: &mut sha::Context, bytes: &[u8]) {
    // usize is at most 64 bits on every target Rust supports, so this never saturates.
    let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    ctx.update(&len.to_be_bytes());
    ctx.update(bytes);
}

/// The canonical hash; see [`Record::compute_hash`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn canonical_hash(
    seq: u64,
    time: Timestamp,
    actor: &str,
    role: Role,
    action: &str,
    object: &str,
    outcome: &Outcome,
    parent: Option<u64>,
    prev: &Digest,
) -> Digest {
    let mut ctx = sha::Context::new(&sha::SHA256);
    field(&mut ctx, HASH_DOMAIN);
    field(&mut ctx, &seq.to_be_bytes());
    field(&mut ctx, time.to_string().as_bytes());
    field(&mut ctx, actor.as_bytes());
    field(&mut ctx, role.as_str().as_bytes());
    field(&mut ctx, action.as_bytes());
    field(&mut ctx, object.as_bytes());
    field(&mut ctx, outcome.tag().as_bytes());
    field(&mut ctx, outcome.reason().unwrap_or("").as_bytes());
    match parent {
        Some(parent) => field(&mut ctx, &parent.to_be_bytes()),
        None => field(&mut ctx, &[]),
    }
    field(&mut ctx, prev.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Digest(out)
}

/// The JSON line as parsed; validated into a [`Record`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    time: String,
    actor: String,
    role: String,
    action: String,
    object: String,
    outcome: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    parent: Option<u64>,
    prev: String,
    hash: String,
    mac: String,
}

impl Record {
    /// Seals `entry` as record `seq` after `prev`, at `time`: computes the hash and, under `key`,
    /// the MAC. Does not validate `entry` (the journal does, before it calls this).
    pub(crate) fn seal(
        entry: Entry,
        seq: u64,
        time: Timestamp,
        prev: Digest,
        key: &AuditKey,
    ) -> Record {
        let hash = canonical_hash(
            seq,
            time,
            &entry.actor,
            entry.role,
            &entry.action,
            &entry.object,
            &entry.outcome,
            entry.parent,
            &prev,
        );
        Record {
            seq,
            time,
            actor: entry.actor,
            role: entry.role,
            action: entry.action,
            object: entry.object,
            outcome: entry.outcome,
            parent: entry.parent,
            prev,
            hash,
            mac: key.mac(&hash),
        }
    }

    /// The hash this record's fields call for (which a verifier compares with `hash`).
    ///
    /// SHA-256 over eleven fields, each written as its length in bytes (u64, big-endian)
    /// followed by its bytes, in this order:
    ///
    /// 1. the domain tag [`HASH_DOMAIN`], `hearth-audit/record/v1`;
    /// 2. `seq` as 8 bytes big-endian;
    /// 3. `time` as its 24-byte text, e.g. `2025-01-31T23:59:59.999Z`;
    /// 4. `actor`, UTF-8;
    /// 5. `role`, its lowercase name;
    /// 6. `action`, UTF-8;
    /// 7. `object`, UTF-8 (possibly empty);
    /// 8. the outcome tag: `started`, `succeeded` or `failed`;
    /// 9. the failure reason, UTF-8 (empty unless failed; a failed reason is never empty);
    /// 10. `parent` as 8 bytes big-endian, or no bytes when absent;
    /// 11. `prev`, its 32 raw bytes.
    ///
    /// Every field carries its length and the field count is fixed, so no two different
    /// records encode to the same bytes. The JSON spelling plays no part.
    pub fn compute_hash(&self) -> Digest {
        canonical_hash(
            self.seq,
            self.time,
            &self.actor,
            self.role,
            &self.action,
            &self.object,
            &self.outcome,
            self.parent,
            &self.prev,
        )
    }

    /// Parses one line (without its newline) of a journal or an export and checks its form: every
    /// field present once, no other field, [`Entry`]'s field rules, canonical hex and time. It
    /// does not check the hash, the MAC or the chain.
    pub fn from_json_line(line: &[u8]) -> Result<Record, Malformed> {
        if line.is_empty() {
            return Err(Malformed::Empty);
        }
        if line.len() > MAX_LINE {
            return Err(Malformed::TooLong { max: MAX_LINE });
        }
        let raw: Line = serde_json::from_slice(line).map_err(|e| Malformed::Json {
            message: e.to_string(),
        })?;
        let bad = |field, problem| Malformed::Field(FieldError { field, problem });
        let time = Timestamp::parse_rfc3339(&raw.time).ok_or(bad("time", FieldProblem::BadTime))?;
        let role = Role::from_name(&raw.role).ok_or(bad("role", FieldProblem::UnknownRole))?;
        let outcome = match (raw.outcome.as_str(), raw.reason) {
            ("started", None) => Outcome::Started,
            ("succeeded", None) => Outcome::Succeeded,
            ("failed", Some(reason)) => Outcome::Failed(reason),
            ("failed", None) => return Err(bad("reason", FieldProblem::ReasonMissing)),
            ("started" | "succeeded", Some(_)) => {
                return Err(bad("reason", FieldProblem::ReasonUnexpected));
            }
            _ => return Err(bad("outcome", FieldProblem::UnknownOutcome)),
        };
        let digest = |field, text: &str| {
            Digest::from_canonical_hex(text).ok_or(bad(field, FieldProblem::BadHex))
        };
        let record = Record {
            seq: raw.seq,
            time,
            actor: raw.actor,
            role,
            action: raw.action,
            object: raw.object,
            outcome,
            parent: raw.parent,
            prev: digest("prev", &raw.prev)?,
            hash: digest("hash", &raw.hash)?,
            mac: digest("mac", &raw.mac)?,
        };
        validate_fields(
            &record.actor,
            &record.action,
            &record.object,
            &record.outcome,
            record.parent,
        )?;
        if record.parent.is_some_and(|parent| parent >= record.seq) {
            return Err(bad("parent", FieldProblem::ParentNotEarlier));
        }
        Ok(record)
    }

    /// The record as one line of JSON, without the newline: keys in the order of the fields
    /// above, `reason` only when failed, `parent` only on completions, digests in lowercase hex.
    /// [`Record::from_json_line`] reads it back to an equal record.
    pub fn to_json_line(&self) -> String {
        let mut out = String::with_capacity(256 + self.object.len() + self.actor.len());
        // Writing into a String cannot fail; the results are ignored for that reason.
        let _ = write!(out, "{{\"seq\":{},\"time\":\"{}\"", self.seq, self.time);
        push_str_field(&mut out, "actor", &self.actor);
        push_str_field(&mut out, "role", self.role.as_str());
        push_str_field(&mut out, "action", &self.action);
        push_str_field(&mut out, "object", &self.object);
        push_str_field(&mut out, "outcome", self.outcome.tag());
        if let Some(reason) = self.outcome.reason() {
            push_str_field(&mut out, "reason", reason);
        }
        if let Some(parent) = self.parent {
            let _ = write!(out, ",\"parent\":{parent}");
        }
        let _ = write!(
            out,
            ",\"prev\":\"{}\",\"hash\":\"{}\",\"mac\":\"{}\"}}",
            self.prev, self.hash, self.mac
        );
        out
    }
}

/// Appends `,"name":"<value as a JSON string>"`.
fn push_str_field(out: &mut String, name: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":\"");
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(outcome: Outcome, parent: Option<u64>) -> Record {
        let entry = Entry {
            actor: "alice".into(),
            role: Role::Admin,
            action: "users.create".into(),
            object: "user:bob".into(),
            outcome,
            parent,
        };
        let time = Timestamp::from_unix_millis(1_700_000_000_123).unwrap();
        Record::seal(
            entry,
            7,
            time,
            Digest([0x11; 32]),
            &AuditKey::from_bytes(&[9; 32]),
        )
    }

    #[test]
    fn hash_is_sha256_of_the_documented_length_prefixed_fields() {
        let record = sample(Outcome::Failed("no space".into()), Some(5));
        let mut bytes = Vec::new();
        let mut put = |b: &[u8]| {
            bytes.extend_from_slice(&(b.len() as u64).to_be_bytes());
            bytes.extend_from_slice(b);
        };
        put(b"hearth-audit/record/v1");
        put(&7u64.to_be_bytes());
        put(b"2023-11-14T22:13:20.123Z");
        put(b"alice");
        put(b"admin");
        put(b"users.create");
        put(b"user:bob");
        put(b"failed");
        put(b"no space");
        put(&5u64.to_be_bytes());
        put(&[0x11; 32]);
        let expected = sha::digest(&sha::SHA256, &bytes);
        assert_eq!(record.hash.as_bytes().as_slice(), expected.as_ref());
        assert_eq!(record.compute_hash(), record.hash);
        // Pinned, so that an accidental change of the encoding fails here.
        assert_eq!(
            record.hash.to_hex(),
            "e24ff54cc5939db2ac86d6b3a42b7c62f5bcb5f54cd16be50e00028c1c5dac51"
        );
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_hash() {
        let a = sample(Outcome::Started, None);
        let mut b = a.clone();
        b.actor = "alic".into();
        b.action = "eusers.create".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
        let mut c = a.clone();
        c.object = String::new();
        c.action = "users.createuser:bob".into();
        assert_ne!(a.compute_hash(), c.compute_hash());
        let failed_empty = sample(Outcome::Failed(String::new()), Some(5));
        let succeeded = sample(Outcome::Succeeded, Some(5));
        assert_ne!(failed_empty.hash, succeeded.hash);
    }

    #[test]
    fn json_line_round_trips_any_text() {
        let mut record = sample(
            Outcome::Failed("disk \"full\"\n\t\\ \u{1}\u{7f} ünï 🙂".into()),
            Some(3),
        );
        record.object = "path:/a\\b\"c\r\n".into();
        let line = record.to_json_line();
        assert!(!line.contains('\n'));
        assert_eq!(Record::from_json_line(line.as_bytes()), Ok(record.clone()));
        // serde_json reads what we write as the same values.
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["object"], record.object.as_str());
        assert_eq!(value["reason"], record.outcome.reason().unwrap());

        let started = sample(Outcome::Started, None);
        let line = started.to_json_line();
        assert!(
            !line.contains("parent") && !line.contains("reason"),
            "{line}"
        );
        assert_eq!(Record::from_json_line(line.as_bytes()), Ok(started));
    }

    #[test]
    fn json_line_refuses_unknown_duplicate_and_missing_fields() {
        let line = sample(Outcome::Started, None).to_json_line();
        let unknown = line.replacen('{', "{\"extra\":1,", 1);
        let duplicate = line.replacen('{', "{\"seq\":7,", 1);
        let missing = line.replacen("\"actor\":\"alice\",", "", 1);
        for bad in [
            unknown,
            duplicate,
            missing,
            format!("{line}x"),
            String::new(),
        ] {
            assert!(Record::from_json_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_line_refuses_non_canonical_values() {
        let started = sample(Outcome::Started, None).to_json_line();
        let done = sample(Outcome::Succeeded, Some(5)).to_json_line();
        let upper_hex = {
            let hash = sample(Outcome::Started, None).hash.to_hex();
            started.replace(&hash, &hash.to_uppercase())
        };
        let cases = [
            (upper_hex, "hash", FieldProblem::BadHex),
            (
                started.replace("\"admin\"", "\"Admin\""),
                "role",
                FieldProblem::UnknownRole,
            ),
            (started.replace(".123Z", "Z"), "time", FieldProblem::BadTime),
            (
                started.replace("\"started\"", "\"done\""),
                "outcome",
                FieldProblem::UnknownOutcome,
            ),
            (
                started.replace("\"started\"", "\"failed\""),
                "reason",
                FieldProblem::ReasonMissing,
            ),
            (
                done.replace("\"parent\":5", "\"parent\":7"),
                "parent",
                FieldProblem::ParentNotEarlier,
            ),
            (
                done.replace(",\"parent\":5", ""),
                "parent",
                FieldProblem::ParentMissing,
            ),
            (
                started.replace(
                    "\"outcome\":\"started\"",
                    "\"outcome\":\"started\",\"parent\":1",
                ),
                "parent",
                FieldProblem::ParentOnStarted,
            ),
            (
                started.replace(
                    "\"outcome\":\"started\"",
                    "\"outcome\":\"started\",\"reason\":\"x\"",
                ),
                "reason",
                FieldProblem::ReasonUnexpected,
            ),
            (
                started.replace("users.create", "Users.Create"),
                "action",
                FieldProblem::ActionCharacter,
            ),
            (
                started.replace("\"alice\"", "\"\""),
                "actor",
                FieldProblem::Empty,
            ),
            (
                started.replace("\"alice\"", "\"al\\nice\""),
                "actor",
                FieldProblem::ControlCharacter,
            ),
        ];
        for (line, field, problem) in cases {
            assert_eq!(
                Record::from_json_line(line.as_bytes()),
                Err(Malformed::Field(FieldError { field, problem })),
                "{line}"
            );
        }
        let long = started.replace("user:bob", &"o".repeat(MAX_OBJECT + 1));
        assert!(matches!(
            Record::from_json_line(long.as_bytes()),
            Err(Malformed::Field(FieldError {
                field: "object",
                problem: FieldProblem::TooLong { .. }
            }))
        ));
    }

    #[test]
    fn longest_valid_record_fits_in_a_line() {
        // Every character escaped to six bytes is the worst case for the text fields.
        let worst = "\u{1}";
        let entry = Entry {
            actor: "\"".repeat(MAX_ACTOR),
            role: Role::Anonymous,
            action: "a".repeat(MAX_ACTION),
            object: worst.repeat(MAX_OBJECT),
            outcome: Outcome::Failed(worst.repeat(MAX_REASON)),
            parent: Some(u64::MAX - 1),
        };
        entry.validate().unwrap();
        let record = Record::seal(
            entry,
            u64::MAX,
            Timestamp::from_unix_millis(0).unwrap(),
            GENESIS,
            &AuditKey::from_bytes(&[0; 32]),
        );
        let line = record.to_json_line();
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert_eq!(Record::from_json_line(line.as_bytes()), Ok(record));
    }
}
