//! Hearth's runtime event log: what hearth-init and hearthd extend into PCR 15 (or another
//! PCR) after the firmware handed over.
//!
//! UTF-8 text, one JSON object per line, blank lines ignored:
//! `{"pcr": 15, "digests": {"sha256": "<hex>", …}, "type": "<kind>", "data": "<free text>"}`.
//! Bank names are those of [`Bank`]'s serde form; every field is required and no other field is
//! allowed (the same as `#[serde(deny_unknown_fields)]`, with errors naming line and field, and
//! duplicate keys refused too).

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

use crate::error::RuntimeLogError;
use crate::log::serialize_digests;
use crate::pcr::{Bank, PCR_COUNT};

/// One line of the runtime log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeEvent {
    /// 1-based line number in the log it was parsed from (0 for an event built in memory).
    pub line: usize,
    pub pcr: u8,
    /// One digest per bank, in the order of the line.
    pub digests: Vec<(Bank, Vec<u8>)>,
    /// The `type` field: what kind of measurement this is.
    pub kind: String,
    /// The `data` field: what was measured, for humans and for reference manifests.
    pub data: String,
}

impl RuntimeEvent {
    /// An event whose digests are the hashes of `data`'s UTF-8 bytes in `banks` (Hearth's
    /// convention for the events it logs; see [`RuntimeEvent::data_matches_digest`]).
    pub fn measure(pcr: u8, kind: &str, data: &str, banks: &[Bank]) -> RuntimeEvent {
        RuntimeEvent {
            line: 0,
            pcr,
            digests: banks
                .iter()
                .map(|b| (*b, b.hash(data.as_bytes())))
                .collect(),
            kind: kind.to_owned(),
            data: data.to_owned(),
        }
    }

    pub fn digest(&self, bank: Bank) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(b, _)| *b == bank)
            .map(|(_, d)| d.as_slice())
    }

    /// Whether every digest is the hash of `data`'s UTF-8 bytes, which is how
    /// [`RuntimeEvent::measure`] builds them. A log writer that extends something else (a
    /// file's digest, with its path as `data`) yields `false` here by design.
    pub fn data_matches_digest(&self) -> bool {
        self.digests
            .iter()
            .all(|(bank, digest)| bank.hash(self.data.as_bytes()) == *digest)
    }

    /// The event as one log line (no trailing newline), fields in the documented order.
    pub fn to_line(&self) -> String {
        let line = LineOut {
            pcr: self.pcr,
            digests: &self.digests,
            kind: &self.kind,
            data: &self.data,
        };
        // Serializing strings, integers and hex to JSON cannot fail; fall back to an empty
        // object rather than panic if that ever changes.
        serde_json::to_string(&line).unwrap_or_else(|_| "{}".to_owned())
    }
}

struct LineOut<'a> {
    pcr: u8,
    digests: &'a [(Bank, Vec<u8>)],
    kind: &'a str,
    data: &'a str,
}

impl Serialize for LineOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RuntimeEvent", 4)?;
        st.serialize_field("pcr", &self.pcr)?;
        st.serialize_field("digests", &DigestsOut(self.digests))?;
        st.serialize_field("type", self.kind)?;
        st.serialize_field("data", self.data)?;
        st.end()
    }
}

struct DigestsOut<'a>(&'a [(Bank, Vec<u8>)]);

impl Serialize for DigestsOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_digests(self.0, s)
    }
}

/// JSON: `{"line", "pcr", "digests": {"sha256": hex}, "type", "data", "data_matches_digest"}`.
impl Serialize for RuntimeEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RuntimeEvent", 6)?;
        st.serialize_field("line", &self.line)?;
        st.serialize_field("pcr", &self.pcr)?;
        st.serialize_field("digests", &DigestsOut(&self.digests))?;
        st.serialize_field("type", &self.kind)?;
        st.serialize_field("data", &self.data)?;
        st.serialize_field("data_matches_digest", &self.data_matches_digest())?;
        st.end()
    }
}

impl fmt::Display for RuntimeEvent {
    /// One line: `line 3 PCR 15 hearth-config: "…"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} PCR {} {}: {}",
            self.line,
            self.pcr,
            crate::efi::quote(&self.kind),
            crate::efi::quote(&self.data)
        )
    }
}

/// A parsed runtime log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RuntimeLog {
    pub events: Vec<RuntimeEvent>,
}

impl RuntimeLog {
    /// Parses the whole log; the first bad line is the error.
    pub fn parse(text: &[u8]) -> Result<RuntimeLog, RuntimeLogError> {
        let text = std::str::from_utf8(text).map_err(|e| {
            let line = 1 + text[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count();
            RuntimeLogError {
                line,
                field: "line".to_owned(),
                problem: "not UTF-8".to_owned(),
            }
        })?;
        let mut events = Vec::new();
        for (i, line) in text.split('\n').enumerate() {
            let line_no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            events.push(parse_line(line, line_no)?);
        }
        Ok(RuntimeLog { events })
    }

    /// The log as text, one line per event, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for event in &self.events {
            out.push_str(&event.to_line());
            out.push('\n');
        }
        out
    }
}

/// A JSON value as the runtime log needs it: objects keep their members in order with
/// duplicates (so they can be refused), everything else is reduced to what the checks need.
enum Json {
    Str(String),
    UInt(u64),
    Obj(Vec<(String, Json)>),
    /// Any other value, described (`a negative number`, `an array`, `null`…).
    Other(&'static str),
}

impl Json {
    fn describe(&self) -> String {
        match self {
            Json::Str(s) => format!("the string {}", crate::efi::quote(s)),
            Json::UInt(n) => format!("the number {n}"),
            Json::Obj(_) => "an object".to_owned(),
            Json::Other(what) => (*what).to_owned(),
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json, E> {
                Ok(Json::Other("a boolean"))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Json, E> {
                Ok(u64::try_from(n).map_or(Json::Other("a negative number"), Json::UInt))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Json, E> {
                Ok(Json::UInt(n))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json, E> {
                Ok(Json::Other("a fractional number"))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Str(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Other("null"))
            }
            fn visit_none<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Other("null"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
                while seq.next_element::<de::IgnoredAny>()?.is_some() {}
                Ok(Json::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    out.push((k, v));
                }
                Ok(Json::Obj(out))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse_line(line: &str, line_no: usize) -> Result<RuntimeEvent, RuntimeLogError> {
    let err = |field: &str, problem: String| RuntimeLogError {
        line: line_no,
        field: field.to_owned(),
        problem,
    };
    let members = match serde_json::from_str::<Json>(line) {
        Ok(Json::Obj(members)) => members,
        Ok(other) => {
            return Err(err(
                "line",
                format!("{} is not a JSON object", other.describe()),
            ));
        }
        Err(e) => return Err(err("line", e.to_string())),
    };
    let mut pcr = None;
    let mut digests = None;
    let mut kind = None;
    let mut data = None;
    for (key, value) in members {
        let taken = match key.as_str() {
            "pcr" => pcr.is_some(),
            "digests" => digests.is_some(),
            "type" => kind.is_some(),
            "data" => data.is_some(),
            _ => {
                return Err(err(
                    &key,
                    "unknown field (expected pcr, digests, type, data)".to_owned(),
                ));
            }
        };
        if taken {
            return Err(err(&key, "given twice".to_owned()));
        }
        match (key.as_str(), value) {
            ("pcr", Json::UInt(n)) => match u8::try_from(n) {
                Ok(p) if p < PCR_COUNT => pcr = Some(p),
                _ => {
                    return Err(err(
                        "pcr",
                        format!("PCR {n} does not exist (0 to {})", PCR_COUNT - 1),
                    ));
                }
            },
            ("digests", Json::Obj(members)) => digests = Some(parse_digests(members, &err)?),
            ("type", Json::Str(s)) => kind = Some(s),
            ("data", Json::Str(s)) => data = Some(s),
            (field, other) => {
                let expected = match field {
                    "pcr" => "a PCR index",
                    "digests" => "an object of bank names to hex digests",
                    _ => "a string",
                };
                return Err(err(
                    field,
                    format!("{} where {expected} belongs", other.describe()),
                ));
            }
        }
    }
    let missing = |field: &str| err(field, "missing".to_owned());
    Ok(RuntimeEvent {
        line: line_no,
        pcr: pcr.ok_or_else(|| missing("pcr"))?,
        digests: digests.ok_or_else(|| missing("digests"))?,
        kind: kind.ok_or_else(|| missing("type"))?,
        data: data.ok_or_else(|| missing("data"))?,
    })
}

fn parse_digests(
    members: Vec<(String, Json)>,
    err: &dyn Fn(&str, String) -> RuntimeLogError,
) -> Result<Vec<(Bank, Vec<u8>)>, RuntimeLogError> {
    if members.is_empty() {
        return Err(err("digests", "no digest".to_owned()));
    }
    let mut out: Vec<(Bank, Vec<u8>)> = Vec::with_capacity(members.len());
    for (name, digest) in members {
        let field = format!("digests.{name}");
        let Some(bank) = Bank::ALL.into_iter().find(|b| b.name() == name) else {
            return Err(err(
                &field,
                "unknown bank (expected sha1, sha256, sha384, sha512 or sm3_256)".to_owned(),
            ));
        };
        if out.iter().any(|(b, _)| *b == bank) {
            return Err(err(&field, "given twice".to_owned()));
        }
        let Json::Str(text) = digest else {
            return Err(err(
                &field,
                format!("{} where a hex string belongs", digest.describe()),
            ));
        };
        let bytes = hex::decode(&text).map_err(|e| err(&field, format!("not hex ({e})")))?;
        if bytes.len() != bank.digest_len() {
            return Err(err(
                &field,
                format!(
                    "{} bytes, a {bank} digest is {}",
                    bytes.len(),
                    bank.digest_len()
                ),
            ));
        }
        out.push((bank, bytes));
    }
    Ok(out)
}
