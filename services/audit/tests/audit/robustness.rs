//! Thousands of random mutations of an export: verification never panics, and whatever it
//! accepts is exactly a prefix of the genuine records.

use hearth_audit::{Record, verify_export};

use crate::{key, lines, scripted_session};

/// xorshift64*: deterministic, no dependencies; a failure prints its iteration.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn byte(&mut self) -> u8 {
        self.next().to_le_bytes()[0]
    }
}

const INTERESTING: &[u8] = b"\n{}[]\":,0123456789abcdef\\ \x00\xff-.T:Z";

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    match rng.below(9) {
        0 => {
            let i = rng.below(len);
            bytes[i] ^= 1 << rng.below(8);
        }
        1 => {
            let i = rng.below(len);
            bytes[i] = rng.byte();
        }
        2 => {
            let i = rng.below(len);
            bytes[i] = INTERESTING[rng.below(INTERESTING.len())];
        }
        3 => {
            let i = rng.below(len + 1);
            bytes.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
        }
        4 => {
            let i = rng.below(len);
            let n = 1 + rng.below(64);
            bytes.drain(i..(i + n).min(len));
        }
        5 => {
            let i = rng.below(len);
            let n = 1 + rng.below(300);
            let chunk = bytes[i..(i + n).min(len)].to_vec();
            let at = rng.below(len + 1);
            bytes.splice(at..at, chunk);
        }
        6 => bytes.truncate(rng.below(len + 1)),
        7 => {
            // Swap two lines.
            let mut all = lines(bytes);
            let (a, b) = (rng.below(all.len()), rng.below(all.len()));
            all.swap(a, b);
            *bytes = crate::join(&all);
        }
        _ => {
            // Replace a digit with another digit (seq, parent, time, hex).
            let digits: Vec<usize> = (0..len).filter(|&i| bytes[i].is_ascii_digit()).collect();
            if !digits.is_empty() {
                let i = digits[rng.below(digits.len())];
                bytes[i] = b'0' + ((bytes[i] - b'0' + 1 + rng.byte() % 9) % 10);
            }
        }
    }
}

#[test]
fn random_mutations_never_panic_and_never_pass_altered_records() {
    let session = scripted_session();
    let key = key();
    let mut rng = Rng(0x5eed_a0d1_7000_0001);
    let mut detected_with_key = 0;
    for iteration in 0..3000 {
        let mut bytes = session.export.clone();
        for _ in 0..1 + rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            mutate(&mut rng, &mut bytes);
        }
        for with_key in [true, false] {
            let report = verify_export(&bytes, with_key.then_some(&key)).unwrap();
            assert!(report.records <= report.lines, "iteration {iteration}");
            // Every record it accepted is a genuine record, in its place (the MAC aside,
            // which only the key checks).
            let mutated = lines(&bytes);
            for (i, line) in mutated
                .iter()
                .take(usize::try_from(report.records).unwrap())
                .enumerate()
            {
                let mut parsed = Record::from_json_line(line).unwrap();
                let genuine = &session.records[i];
                if !with_key {
                    parsed.mac = genuine.mac;
                }
                assert_eq!(&parsed, genuine, "iteration {iteration}, line {}", i + 1);
            }
            if with_key && !report.is_intact() {
                detected_with_key += 1;
            }
        }
        for line in lines(&bytes) {
            let _ = Record::from_json_line(&line);
        }
    }
    // What passes with the key keeps every value (whitespace, a lost final newline, records cut
    // off the end: see above); that is rare, so the mutations did exercise the checks.
    assert!(detected_with_key > 2900, "{detected_with_key}");
}

#[test]
fn arbitrary_bytes_never_panic() {
    let key = key();
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(400);
        let bytes: Vec<u8> = (0..len)
            .map(|_| INTERESTING[rng.below(INTERESTING.len())])
            .collect();
        let report = verify_export(&bytes, Some(&key)).unwrap();
        assert!(report.records == 0 || bytes.starts_with(b"{"));
    }
}
