//! Personal data: which columns hold it (with evidence counts), and pseudonymization that
//! replaces values with keyed tokens.
//!
//! Detection looks at a sample of each text and categorical column's values (evenly spaced, at
//! most [`DEFAULT_SAMPLE`]) and at the column's name:
//!
//! | kind | a value matches when | reported when |
//! |---|---|---|
//! | email | it is `local@domain.tld`, or a word of it is | ≥ 5 % of sampled values |
//! | phone | `+` and 8–15 digits (E.164, separators allowed), or 7–15 digits in a national format (separators, and a leading 0, parentheses or three groups); not a date, time, IP address or decimal number | ≥ 30 % |
//! | card number | 13–19 digits (spaces or dashes between groups), an issuer prefix 2–6, Luhn-valid | ≥ 50 % (1 in 10 random numbers is Luhn-valid) |
//! | IBAN | country code, check digits, the country's length where known, mod-97 = 1 | ≥ 5 % |
//! | name | its first or second word is a common given name (built-in list) | ≥ 30 % |
//!
//! A column's name also counts: `first_name`, `surname`, `email`, `phone`, `iban`, … report
//! their kind whatever the values. Numeric, boolean and timestamp columns are judged by name
//! only: schema inference keeps phone numbers with `+` or a leading 0, and integers of more than
//! 15 digits (card numbers), as text, so a plain numeric id column is never flagged.
//!
//! Pseudonymization replaces each value with `p_` and the first 16 hex digits of
//! HMAC-SHA256(key, value): the same value gives the same token under one key (joins within a
//! dataset still work), and nothing about the value without the key. Missing stays missing.
//! The key of a stored dataset is derived (HKDF-SHA256) from the store's purpose key
//! `hearth/pseudonym/v1` and the dataset's name: one key per dataset, never stored.

use std::collections::BTreeMap;
use std::fmt;

use hearth_store::{Purpose, Store};
use ring::{hkdf, hmac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::dataset::{
    self, ColumnInference, CsvParser, DatasetError, DatasetVersion, Lineage, RecordSink, Upload,
    VersionRef, VersionSel, parse_bool, parse_number, parse_timestamp,
};
use crate::frame::{Column, ColumnData, ColumnKind, Frame, FrameError};

/// Values looked at per column.
pub const DEFAULT_SAMPLE: usize = 10_000;

/// The store purpose the per-dataset pseudonym keys are derived from.
pub const PSEUDONYM_PURPOSE: Purpose = Purpose::new("hearth/pseudonym/v1");

/// Bytes of rewritten CSV collected before they are handed to the blob writer.
const WRITE_CHUNK: usize = 64 << 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    Email,
    Phone,
    CardNumber,
    Iban,
    Name,
}

impl PiiKind {
    /// Share of sampled values that must match for the kind to be reported.
    fn threshold(self) -> f64 {
        match self {
            PiiKind::Email | PiiKind::Iban => 0.05,
            PiiKind::Phone | PiiKind::Name => 0.3,
            PiiKind::CardNumber => 0.5,
        }
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::CardNumber => "card number",
            PiiKind::Iban => "IBAN",
            PiiKind::Name => "name",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiiReport {
    pub columns: Vec<PiiColumn>,
}

/// What one column holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PiiColumn {
    pub name: String,
    /// The kinds reported (by evidence or by the column's name), in order.
    pub kinds: Vec<PiiKind>,
    /// Sampled values matching each kind (kinds with no match left out).
    pub matches: BTreeMap<PiiKind, u64>,
    /// Non-missing values looked at.
    pub sampled: u64,
    /// The kind the column's name suggests.
    pub name_hint: Option<PiiKind>,
    /// Every sampled value is a pseudonym token (`p_` and 16 hex digits): the name hint is
    /// then not reported.
    pub pseudonymized: bool,
}

impl PiiReport {
    /// Scans every column of `frame`, looking at up to [`DEFAULT_SAMPLE`] values of each.
    pub fn detect(frame: &Frame) -> PiiReport {
        PiiReport::detect_sampled(frame, DEFAULT_SAMPLE)
    }

    /// Scans every column, looking at up to `sample` values of each (evenly spaced).
    pub fn detect_sampled(frame: &Frame, sample: usize) -> PiiReport {
        PiiReport {
            columns: frame
                .columns()
                .iter()
                .map(|c| scan_column(c, frame.rows(), sample))
                .collect(),
        }
    }

    /// The names of the columns with a reported kind.
    pub fn flagged(&self) -> Vec<&str> {
        self.columns
            .iter()
            .filter(|c| !c.kinds.is_empty())
            .map(|c| c.name.as_str())
            .collect()
    }

    pub fn column(&self, name: &str) -> Option<&PiiColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

fn scan_column(column: &Column, rows: usize, sample: usize) -> PiiColumn {
    let name_hint = hint_from_name(&column.name);
    let mut matches: BTreeMap<PiiKind, u64> = BTreeMap::new();
    let mut sampled = 0u64;
    let mut tokens = 0u64;
    if let ColumnData::Text(values) = &column.data {
        let n = rows.min(sample);
        for k in 0..n {
            // Evenly spaced: k * rows / n, in u128 so it cannot overflow.
            let i = usize::try_from(k as u128 * rows as u128 / n as u128).unwrap_or(0);
            let Some(v) = values.get(i).and_then(Option::as_deref) else {
                continue;
            };
            sampled += 1;
            if is_token(v) {
                tokens += 1;
                continue;
            }
            for kind in value_kinds(v) {
                *matches.entry(kind).or_default() += 1;
            }
        }
    }
    let mut kinds: Vec<PiiKind> = matches
        .iter()
        .filter(|&(&kind, &m)| sampled > 0 && m as f64 >= kind.threshold() * sampled as f64)
        .map(|(&kind, _)| kind)
        .collect();
    let pseudonymized = sampled > 0 && tokens == sampled;
    if let Some(hint) = name_hint.filter(|_| !pseudonymized)
        && !kinds.contains(&hint)
    {
        kinds.push(hint);
        kinds.sort();
    }
    PiiColumn {
        name: column.name.clone(),
        kinds,
        matches,
        sampled,
        name_hint,
        pseudonymized,
    }
}

/// A token [`Pseudonymizer::token`] makes.
fn is_token(v: &str) -> bool {
    v.strip_prefix("p_").is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The kinds one value matches.
fn value_kinds(v: &str) -> Vec<PiiKind> {
    let v = v.trim();
    let mut out = Vec::new();
    if is_email(v) || v.split_whitespace().any(|w| is_email(trim_word(w))) {
        out.push(PiiKind::Email);
    }
    if is_phone(v) {
        out.push(PiiKind::Phone);
    }
    if is_card_number(v) {
        out.push(PiiKind::CardNumber);
    }
    if is_iban(v) {
        out.push(PiiKind::Iban);
    }
    if has_given_name(v) {
        out.push(PiiKind::Name);
    }
    out
}

fn trim_word(w: &str) -> &str {
    w.trim_matches(|c: char| {
        matches!(
            c,
            '<' | '>' | '(' | ')' | ',' | ';' | ':' | '"' | '\'' | '.'
        )
    })
}

/// The kind a column's name suggests: its letters and digits, lowercased, against known names.
fn hint_from_name(name: &str) -> Option<PiiKind> {
    let norm: String = name
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    const NAMES: &[&str] = &[
        "name",
        "firstname",
        "lastname",
        "surname",
        "givenname",
        "fullname",
        "familyname",
        "forename",
        "middlename",
        "maidenname",
        "customername",
        "contactname",
        "patientname",
        "employeename",
        "personname",
        "vorname",
        "nachname",
        "prenom",
        "nom",
        "nombre",
        "apellido",
    ];
    const EMAILS: &[&str] = &["email", "emailaddress", "mail", "emailadresse"];
    const PHONES: &[&str] = &[
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "mobile",
        "mobilephone",
        "cell",
        "cellphone",
        "telefon",
    ];
    const CARDS: &[&str] = &[
        "cardnumber",
        "creditcard",
        "creditcardnumber",
        "ccnumber",
        "pan",
    ];
    const IBANS: &[&str] = &["iban", "ibannumber"];
    [
        (NAMES, PiiKind::Name),
        (EMAILS, PiiKind::Email),
        (PHONES, PiiKind::Phone),
        (CARDS, PiiKind::CardNumber),
        (IBANS, PiiKind::Iban),
    ]
    .into_iter()
    .find(|(list, _)| list.contains(&norm.as_str()))
    .map(|(_, kind)| kind)
}

/// `local@domain.tld`: a plain local part, two or more domain labels, a letters-only TLD.
pub fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    if !local_ok || domain.len() > 253 {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

/// Groups of digits separated by the allowed separators; `None` if another character appears
/// or two separators follow each other or the value starts or ends with one.
fn digit_groups<'a>(v: &'a str, separators: &[u8]) -> Option<Vec<&'a str>> {
    if !v
        .bytes()
        .all(|b| b.is_ascii_digit() || separators.contains(&b))
    {
        return None;
    }
    // Only digits and separators are left: split on whatever is not a digit.
    let groups: Vec<&str> = v.split(|c: char| !c.is_ascii_digit()).collect();
    groups.iter().all(|g| !g.is_empty()).then_some(groups)
}

/// E.164 (`+`, 8–15 digits, the first not 0) or a national format: 7–15 digits with separators
/// (space, `-`, `.`, `/`, parentheses) and a leading 0, parentheses or at least three groups.
/// Dates, times, IPv4 addresses and decimal numbers are not phone numbers.
pub fn is_phone(v: &str) -> bool {
    let (international, rest) = match v.strip_prefix('+') {
        Some(rest) => (true, rest.trim_start()),
        None => (false, v),
    };
    if rest.is_empty()
        || !rest
            .bytes()
            .all(|b| b.is_ascii_digit() || b" -./()".contains(&b))
    {
        return false;
    }
    let digits: Vec<u8> = rest.bytes().filter(u8::is_ascii_digit).collect();
    if international {
        return (8..=15).contains(&digits.len()) && digits.first() != Some(&b'0');
    }
    if !(7..=15).contains(&digits.len())
        || parse_timestamp(v).is_some()
        || parse_number(v).is_some()
        || rest.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    let groups: Vec<&str> = rest
        .split(|c: char| " -./()".contains(c))
        .filter(|g| !g.is_empty())
        .collect();
    let dotted_only = rest.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    // 192.168.10.1, and dates such as 31.12.2024 or 12/31/2024.
    let ip_like = dotted_only && groups.len() == 4 && groups.iter().all(|g| g.len() <= 3);
    let date_like = groups.len() == 3
        && ((groups[0].len() <= 2 && groups[1].len() <= 2 && groups[2].len() == 4)
            || (groups[0].len() == 4 && groups[1].len() <= 2 && groups[2].len() <= 2));
    if ip_like || date_like {
        return false;
    }
    rest.starts_with('0') || rest.starts_with('(') || groups.len() >= 3
}

/// Luhn's check over ASCII digits.
fn luhn(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 13–19 digits, spaces or dashes only between groups, an issuer prefix 2–6, Luhn-valid.
pub fn is_card_number(v: &str) -> bool {
    let Some(groups) = digit_groups(v, b" -") else {
        return false;
    };
    let digits: Vec<u8> = groups.concat().into_bytes();
    (13..=19).contains(&digits.len())
        && digits.first().is_some_and(|d| (b'2'..=b'6').contains(d))
        && luhn(&digits)
}

/// IBAN lengths of the countries that use one most around us.
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AT", 20),
        ("BE", 16),
        ("BG", 22),
        ("CH", 21),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("EE", 20),
        ("ES", 24),
        ("FI", 18),
        ("FR", 27),
        ("GB", 22),
        ("GR", 27),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IS", 26),
        ("IT", 27),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MT", 31),
        ("NL", 18),
        ("NO", 15),
        ("PL", 28),
        ("PT", 25),
        ("RO", 24),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("TR", 26),
    ];
    LENGTHS.iter().find(|(c, _)| *c == country).map(|&(_, n)| n)
}

/// Two letters, two check digits, up to 30 letters and digits (spaces allowed), the country's
/// length where known, and the ISO 13616 check: mod 97 = 1.
pub fn is_iban(v: &str) -> bool {
    let s: Vec<u8> = v
        .bytes()
        .filter(|&b| b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&s.len())
        || !s[..2].iter().all(u8::is_ascii_uppercase)
        || !s[2..4].iter().all(u8::is_ascii_digit)
        || !s[4..].iter().all(u8::is_ascii_alphanumeric)
    {
        return false;
    }
    let country = std::str::from_utf8(&s[..2]).unwrap_or_default();
    if iban_length(country).is_some_and(|n| n != s.len()) {
        return false;
    }
    let remainder = s[4..].iter().chain(&s[..4]).fold(0u32, |r, &b| {
        if b.is_ascii_digit() {
            (r * 10 + u32::from(b - b'0')) % 97
        } else {
            (r * 100 + u32::from(b - b'A') + 10) % 97
        }
    });
    remainder == 1
}

/// Common given names across the languages Hearth's operators write in. Words that are also
/// common nouns, months or places (Mark, May, Paris, …) are left out.
#[rustfmt::skip]
const GIVEN_NAMES: &[&str] = &[
    "Aaron", "Adam", "Ahmed", "Aisha", "Alexander", "Alexandra", "Alice", "Ali", "Amelia", "Ana",
    "Andrea", "Andreas", "Andrew", "Angela", "Anna", "Anne", "Anthony", "Antonio", "Barbara",
    "Benjamin", "Brian", "Camille", "Carlos", "Carmen", "Caroline", "Catherine", "Charles",
    "Charlotte", "Christian", "Christine", "Christopher", "Claire", "Claudia", "Daniel", "David",
    "Deborah", "Dmitri", "Elena", "Elizabeth", "Emily", "Emma", "Eric", "Fatima", "Felix",
    "Francesca", "Francesco", "Frank", "Gabriel", "George", "Giulia", "Giuseppe", "Hannah", "Hans",
    "Helen", "Henry", "Hiroshi", "Hugo", "Ivan", "Jacob", "James", "Jan", "Javier", "Jennifer",
    "Jessica", "Joan", "Johannes", "John", "Jonas", "Jose", "José", "Joseph", "Juan", "Julia",
    "Julian", "Karen", "Katharina", "Klaus", "Laura", "Lea", "Lena", "Leon", "Linda", "Lisa",
    "Louis", "Luca", "Lucas", "Lucia", "Luis", "Lukas", "Manuel", "Marco", "Margaret", "Maria",
    "Marie", "Martin", "Mary", "Matthew", "Mia", "Michael", "Michelle", "Mohammed", "Monika",
    "Nancy", "Nicolas", "Noah", "Olga", "Oliver", "Olivia", "Omar", "Patricia", "Paul", "Pedro",
    "Peter", "Petra", "Pierre", "Priya", "Rachel", "Rebecca", "Richard", "Robert", "Sabine",
    "Sandra", "Sarah", "Sebastian", "Sofia", "Sophie", "Stefan", "Stephanie", "Susan", "Thomas",
    "Timothy", "Ursula", "Valentina", "Victor", "Wei", "William", "Wolfgang", "Yuki",
];

/// Whether the first or second word is a given name (capitalized, or in capitals).
fn has_given_name(v: &str) -> bool {
    v.split_whitespace().take(2).any(|w| {
        let w = w.trim_end_matches(',');
        let mut chars = w.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        let rest: String = chars.collect();
        let capitalized = first.is_uppercase()
            && (rest.chars().all(char::is_lowercase) || rest.chars().all(char::is_uppercase));
        if !capitalized {
            return false;
        }
        let normal: String = std::iter::once(first)
            .chain(rest.to_lowercase().chars())
            .collect();
        GIVEN_NAMES.contains(&normal.as_str())
    })
}

// ---------------------------------------------------------------------------------------------
// Pseudonymization

/// Makes tokens: `p_` + the first 16 hex digits of HMAC-SHA256(key, value).
pub struct Pseudonymizer {
    key: hmac::Key,
}

impl fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pseudonymizer([redacted])")
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8; 32]) -> Self {
        Pseudonymizer {
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        }
    }

    pub fn token(&self, value: &str) -> String {
        let tag = hmac::sign(&self.key, value.as_bytes());
        let mut out = String::with_capacity(18);
        out.push_str("p_");
        out.push_str(&hex::encode(tag.as_ref().get(..8).unwrap_or_default()));
        out
    }
}

/// The text a value is tokenized from, the same whether it comes from a [`Frame`] or from a
/// stored file: text as is; numbers in Rust's shortest round-trip form; `true`/`false`; Unix
/// seconds.
fn canonical(data: &ColumnData, i: usize) -> Option<String> {
    match data {
        ColumnData::Numeric(v) => v.get(i).filter(|x| !x.is_nan()).map(f64::to_string),
        ColumnData::Boolean(v) => v.get(i).copied().flatten().map(|b| b.to_string()),
        ColumnData::Text(v) => v.get(i).cloned().flatten(),
        ColumnData::Timestamp(v) => v.get(i).copied().flatten().map(|t| t.to_string()),
    }
}

/// [`canonical`] for a raw field of a stored file whose column has `kind`; `None` if missing,
/// `Err` if the field does not parse as `kind`.
fn canonical_field(raw: &str, kind: ColumnKind) -> Result<Option<String>, ()> {
    let v = raw.trim();
    if dataset::is_missing(v) {
        return Ok(None);
    }
    match kind {
        ColumnKind::Numeric => parse_number(v).map(|x| Some(x.to_string())).ok_or(()),
        ColumnKind::Boolean => parse_bool(v).map(|b| Some(b.to_string())).ok_or(()),
        ColumnKind::Timestamp => parse_timestamp(v).map(|t| Some(t.to_string())).ok_or(()),
        ColumnKind::Categorical | ColumnKind::Text => Ok(Some(raw.to_owned())),
    }
}

/// Replaces the values of `columns` with tokens under `key`. Missing stays missing; a
/// pseudonymized column becomes categorical or text by the same rule as schema inference.
pub fn pseudonymize(frame: &Frame, columns: &[&str], key: &[u8; 32]) -> Result<Frame, FrameError> {
    for name in columns {
        frame.column(name)?;
    }
    let p = Pseudonymizer::new(key);
    let out = frame
        .columns()
        .iter()
        .map(|c| {
            if !columns.contains(&c.name.as_str()) {
                return c.clone();
            }
            let mut inference = ColumnInference::default();
            let values: Vec<Option<String>> = (0..frame.rows())
                .map(|i| {
                    let token = canonical(&c.data, i).map(|v| p.token(&v));
                    inference.observe(token.as_deref());
                    token
                })
                .collect();
            Column {
                name: c.name.clone(),
                kind: inference.kind(),
                data: ColumnData::Text(values),
            }
        })
        .collect();
    Frame::new(out)
}

/// The pseudonym key of dataset `name`: HKDF-SHA256 of the store's `hearth/pseudonym/v1`
/// purpose key, with the dataset's name in the info. Never stored; zeroed on drop.
pub fn dataset_key(store: &Store, name: &str) -> Result<Zeroizing<[u8; 32]>, DatasetError> {
    dataset::validate_name(name)?;
    let purpose = store
        .purpose_key(PSEUDONYM_PURPOSE)
        .map_err(DatasetError::Key)?;
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"hearth-ml dataset pseudonym key")
        .extract(purpose.expose());
    let info = [b"dataset:".as_slice(), name.as_bytes()];
    let mut key = Zeroizing::new([0u8; 32]);
    prk.expand(&info, hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(&mut key[..]))
        .map_err(|_| DatasetError::KeyDerivation)?;
    Ok(key)
}

/// Appends one CSV field, quoted when it must be (RFC 4180).
fn push_field(out: &mut Vec<u8>, field: &str) {
    if field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        out.push(b'"');
        for b in field.bytes() {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}

fn push_record<'a>(out: &mut Vec<u8>, fields: impl ExactSizeIterator<Item = &'a str>) {
    let single = fields.len() == 1;
    for (i, f) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if single && f.is_empty() {
            // A lone empty field would be an empty line, which CSV readers skip.
            out.extend_from_slice(b"\"\"");
        } else {
            push_field(out, f);
        }
    }
    out.push(b'\n');
}

/// Rewrites a stored file record by record into a new upload, tokenizing the chosen columns.
struct Rewriter<'s> {
    upload: Upload<'s>,
    /// The kind of each column to pseudonymize; `None` for the others.
    plan: Vec<Option<ColumnKind>>,
    names: Vec<String>,
    pseudonymizer: Pseudonymizer,
    buf: Vec<u8>,
}

impl Rewriter<'_> {
    fn flush_if_full(&mut self) -> Result<(), DatasetError> {
        if self.buf.len() >= WRITE_CHUNK {
            self.upload.push(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl RecordSink for Rewriter<'_> {
    fn header(&mut self, names: &[String]) -> Result<(), DatasetError> {
        push_record(&mut self.buf, names.iter().map(String::as_str));
        self.names = names.to_vec();
        self.flush_if_full()
    }

    fn record(&mut self, line: u64, fields: &[&str]) -> Result<(), DatasetError> {
        let mut out: Vec<String> = Vec::with_capacity(fields.len());
        for (i, (raw, plan)) in fields.iter().zip(&self.plan).enumerate() {
            out.push(match plan {
                None => (*raw).to_owned(),
                Some(kind) => canonical_field(raw, *kind)
                    .map_err(|()| DatasetError::SchemaMismatch {
                        line,
                        column: self.names.get(i).cloned().unwrap_or_default(),
                        kind: *kind,
                    })?
                    .map(|v| self.pseudonymizer.token(&v))
                    .unwrap_or_default(),
            });
        }
        push_record(&mut self.buf, out.iter().map(String::as_str));
        self.flush_if_full()
    }
}

/// Writes a pseudonymized copy of a stored version as the next version of the same dataset:
/// the named columns' values replaced by tokens under the dataset's key ([`dataset_key`]), the
/// others byte for byte as they were, with lineage to the source version and the transform
/// `"pseudonymized: <columns>"`. Streams like an upload; the source version is unchanged.
pub fn pseudonymize_version(
    store: &Store,
    name: &str,
    version: VersionSel,
    columns: &[&str],
) -> Result<DatasetVersion, DatasetError> {
    if columns.is_empty() {
        return Err(DatasetError::NoColumnsNamed);
    }
    let source = dataset::get_version(store, name, version)?;
    if let Some(missing) = columns
        .iter()
        .find(|c| !source.schema.iter().any(|s| s.name == **c))
    {
        return Err(DatasetError::NoColumn {
            name: name.to_owned(),
            version: source.version,
            column: (*missing).to_owned(),
        });
    }
    let plan: Vec<Option<ColumnKind>> = source
        .schema
        .iter()
        .map(|s| columns.contains(&s.name.as_str()).then_some(s.kind))
        .collect();
    let chosen: Vec<&str> = source
        .schema
        .iter()
        .filter(|s| columns.contains(&s.name.as_str()))
        .map(|s| s.name.as_str())
        .collect();
    let key = dataset_key(store, name)?;
    let mut parser = CsvParser::new(Rewriter {
        upload: Upload::new(store)?,
        plan,
        names: Vec::new(),
        pseudonymizer: Pseudonymizer::new(&key),
        buf: Vec::with_capacity(WRITE_CHUNK + (64 << 10)),
    });
    dataset::read_version(store, &source, |chunk| parser.feed(chunk))?;
    let (mut rewriter, rows) = parser.finish()?;
    rewriter.upload.push(&rewriter.buf)?;
    let uploaded = rewriter.upload.finish()?;
    if uploaded.rows() != rows {
        return Err(DatasetError::Corrupt {
            name: name.to_owned(),
            version: source.version,
            what: format!("{rows} rows read but {} written", uploaded.rows()),
        });
    }
    let lineage = Lineage {
        parent: Some(VersionRef {
            dataset: name.to_owned(),
            version: source.version,
        }),
        transform: Some(format!("pseudonymized: {}", chosen.join(", "))),
    };
    let v = dataset::commit_version(store, name, uploaded, lineage)?;
    tracing::info!(
        component = "ml",
        dataset = %name,
        from = source.version,
        version = v.version,
        columns = chosen.len(),
        "pseudonymized dataset version stored"
    );
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        for ok in [
            "a@b.de",
            "first.last+tag@mail.example.com",
            "x_y@sub-domain.io",
        ] {
            assert!(is_email(ok), "{ok}");
        }
        for bad in [
            "a@b",
            "@b.de",
            "a@@b.de",
            "a@b.c0m",
            "a..b@c.de",
            "a@-b.de",
            "plain",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
        assert_eq!(
            value_kinds("write to <bob@example.org>."),
            vec![PiiKind::Email]
        );
    }

    #[test]
    fn phones_but_not_numbers_dates_or_addresses() {
        for ok in [
            "+49 151 12345678",
            "+14155552671",
            "+44 (20) 7946-0958",
            "(555) 123-4567",
            "555-123-4567",
            "030 12345678",
            "0171/1234567",
            "06.12.34.56.78",
        ] {
            assert!(is_phone(ok), "{ok}");
        }
        for bad in [
            "12345678",
            "1234567890",
            "+0123456789",
            "+123",
            "2024-01-15",
            "15.01.2024",
            "01/15/2024",
            "192.168.100.1",
            "3.14159265",
            "12345 67890",
            "12:30:45",
            "",
        ] {
            assert!(!is_phone(bad), "{bad}");
        }
    }

    #[test]
    fn cards_need_luhn_and_an_issuer_prefix() {
        for ok in [
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
        ] {
            assert!(is_card_number(ok), "{ok}");
        }
        for bad in [
            "4111 1111 1111 1112",
            "0000000000000000",
            "411111111111",
            "4111  1111 1111 1111",
            "-4111111111111111",
            "4111-1111-1111-111a",
        ] {
            assert!(!is_card_number(bad), "{bad}");
        }
    }

    #[test]
    fn ibans_need_the_mod_97_check_and_the_country_length() {
        for ok in [
            "DE89370400440532013000",
            "DE89 3704 0044 0532 0130 00",
            "GB82WEST12345698765432",
            "fr1420041010050500013m02606",
        ] {
            assert!(is_iban(ok), "{ok}");
        }
        for bad in [
            "DE89370400440532013001",
            "DE8937040044053201300",
            "GB82WEST1234569876543X",
            "1234567890123456",
        ] {
            assert!(!is_iban(bad), "{bad}");
        }
    }

    #[test]
    fn given_names_and_name_headers() {
        assert!(has_given_name("Maria Schmidt"));
        assert!(has_given_name("Schmidt, Maria"));
        assert!(has_given_name("JOHN DOE"));
        assert!(!has_given_name("maria"));
        assert!(!has_given_name("Mark down"));
        assert_eq!(hint_from_name("First_Name"), Some(PiiKind::Name));
        assert_eq!(hint_from_name("E-Mail"), Some(PiiKind::Email));
        assert_eq!(hint_from_name("username"), None);
        assert_eq!(hint_from_name("id"), None);
    }

    #[test]
    fn csv_fields_are_quoted_when_needed() {
        let mut out = Vec::new();
        push_record(&mut out, ["a", "b,c", "say \"hi\"", "x\ny"].into_iter());
        push_record(&mut out, [""].into_iter());
        assert_eq!(out, b"a,\"b,c\",\"say \"\"hi\"\"\",\"x\ny\"\n\"\"\n");
    }

    #[test]
    fn tokens_are_keyed_and_stable() {
        let a = Pseudonymizer::new(&[1; 32]);
        let b = Pseudonymizer::new(&[2; 32]);
        let t = a.token("alice@example.org");
        assert_eq!(t, a.token("alice@example.org"));
        assert_ne!(t, b.token("alice@example.org"));
        assert_ne!(t, a.token("bob@example.org"));
        assert!(t.starts_with("p_") && t.len() == 18);
        assert!(format!("{a:?}").contains("redacted"));
    }
}
