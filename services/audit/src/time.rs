//! Record times: UTC, millisecond precision, written as fixed-width RFC 3339.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time, in milliseconds since the Unix epoch (UTC), between 1970-01-01T00:00:00.000Z
/// and 9999-12-31T23:59:59.999Z.
///
/// Its only text form, in records and in the hash, is RFC 3339 in UTC with exactly three
/// fraction digits and a capital `Z`: `2025-03-01T12:34:56.789Z` (24 bytes). That form is
/// one-to-one with the millisecond count, so a record's text and its value never disagree.
/// Leap seconds (`:60`) are not representable, as in Unix time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

/// The system clock reads before 1970 or after 9999: no record can be timed.
#[derive(Debug, thiserror::Error)]
#[error("the system clock is outside 1970..=9999 (UTC)")]
pub struct ClockError;

/// Milliseconds since the epoch of 9999-12-31T23:59:59.999Z.
const MAX_MILLIS: u64 = 253_402_300_799_999;
const MILLIS_PER_DAY: u64 = 86_400_000;
/// Length of the text form.
pub(crate) const TEXT_LEN: usize = 24;

impl Timestamp {
    /// The earliest representable time, the Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Now, from the system clock.
    pub fn now() -> Result<Timestamp, ClockError> {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClockError)?;
        u64::try_from(since.as_millis())
            .ok()
            .and_then(Timestamp::from_unix_millis)
            .ok_or(ClockError)
    }

    /// `millis` since the epoch; `None` past 9999-12-31T23:59:59.999Z.
    pub fn from_unix_millis(millis: u64) -> Option<Timestamp> {
        (millis <= MAX_MILLIS).then_some(Timestamp(millis))
    }

    pub fn unix_millis(self) -> u64 {
        self.0
    }

    /// Parses exactly the form that [`Display`](fmt::Display) writes (`YYYY-MM-DDTHH:MM:SS.mmmZ`,
    /// UTC); anything else, including other valid RFC 3339 spellings, is `None`.
    pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
        let b = text.as_bytes();
        if b.len() != TEXT_LEN {
            return None;
        }
        for (i, &c) in b.iter().enumerate() {
            let want = match i {
                4 | 7 => b'-',
                10 => b'T',
                13 | 16 => b':',
                19 => b'.',
                23 => b'Z',
                _ => 0,
            };
            if want == 0 {
                if !c.is_ascii_digit() {
                    return None;
                }
            } else if c != want {
                return None;
            }
        }
        let num = |from: usize, to: usize| {
            b[from..to]
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'))
        };
        let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
        let (hour, minute, second, milli) = (num(11, 13), num(14, 16), num(17, 19), num(20, 23));
        if year < 1970
            || !(1..=12).contains(&month)
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let millis = days * MILLIS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + milli;
        Timestamp::from_unix_millis(millis)
    }
}

impl Timestamp {
    /// Whole seconds in UTC for people: `2026-11-28 02:34:56Z` (the `Display` form is RFC 3339
    /// with milliseconds).
    pub fn to_seconds_string(self) -> String {
        let (year, month, day) = civil_from_days(self.0 / MILLIS_PER_DAY);
        let secs = self.0 % MILLIS_PER_DAY / 1000;
        format!(
            "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = civil_from_days(self.0 / MILLIS_PER_DAY);
        let in_day = self.0 % MILLIS_PER_DAY;
        let (secs, milli) = (in_day / 1000, in_day % 1000);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{milli:03}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date in 1970..=9999 (H. Hinnant's
/// `days_from_civil`, restricted to non-negative eras, so unsigned arithmetic is exact).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_unix_millis(millis).unwrap()
    }

    #[test]
    fn known_instants_format_as_fixed_width_rfc3339() {
        assert_eq!(at(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            at(1_700_000_000_123).to_string(),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(at(MAX_MILLIS).to_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::from_unix_millis(MAX_MILLIS + 1), None);
    }

    #[test]
    fn text_form_round_trips_across_the_range() {
        // Every day boundary in four centuries (leap rules included), plus odd milliseconds.
        let mut millis = 0;
        while millis <= MAX_MILLIS {
            for offset in [0, 1, MILLIS_PER_DAY - 1] {
                let t = at((millis + offset).min(MAX_MILLIS));
                assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t), "{t}");
            }
            millis += MILLIS_PER_DAY * 97 + 12_345;
        }
    }

    #[test]
    fn parse_refuses_every_other_spelling() {
        for bad in [
            "",
            "2023-11-14T22:13:20Z",
            "2023-11-14T22:13:20.12Z",
            "2023-11-14T22:13:20.1234Z",
            "2023-11-14t22:13:20.123Z",
            "2023-11-14T22:13:20.123z",
            "2023-11-14 22:13:20.123Z",
            "2023-11-14T22:13:20.123+00:00",
            "1969-12-31T23:59:59.999Z",
            "2023-02-29T00:00:00.000Z",
            "1900-02-29T00:00:00.000Z",
            "2023-13-01T00:00:00.000Z",
            "2023-00-01T00:00:00.000Z",
            "2023-04-31T00:00:00.000Z",
            "2023-11-00T00:00:00.000Z",
            "2023-11-14T24:00:00.000Z",
            "2023-11-14T23:60:00.000Z",
            "2023-11-14T23:59:60.000Z",
            "+023-11-14T23:59:59.000Z",
            "２023-11-14T23:59:59.000Z",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad:?}");
        }
        assert!(Timestamp::parse_rfc3339("2024-02-29T00:00:00.000Z").is_some());
    }

    #[test]
    fn now_is_after_2020() {
        assert!(Timestamp::now().unwrap() > at(1_577_836_800_000));
    }
}
