//! Timestamps on the command line: RFC 3339 (`2026-11-22T10:00:00Z`,
//! `2026-11-22T11:00:00.250+01:00`) or milliseconds since the Unix epoch,
//! both turned into Kafka's unit, epoch milliseconds.

use anyhow::{Context, bail, ensure};

/// Parses `text` as epoch milliseconds (digits only) or as an RFC 3339
/// date-time with `Z` or a `±HH:MM` offset. Fractions of a second below a
/// millisecond are dropped (Kafka timestamps are milliseconds).
pub(crate) fn parse_epoch_ms(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .with_context(|| format!("timestamp {text:?}: too many milliseconds"));
    }
    parse_rfc3339(text).with_context(|| {
        format!(
            "timestamp {text:?}: expected RFC 3339 (e.g. 2026-11-22T10:00:00Z or \
             2026-11-22T11:00:00.5+01:00) or milliseconds since the epoch"
        )
    })
}

fn parse_rfc3339(text: &str) -> anyhow::Result<i64> {
    let bytes = text.as_bytes();
    ensure!(bytes.len() >= 20, "too short");
    let year = digits(bytes, 0, 4)?;
    expect(bytes, 4, b'-')?;
    let month = digits(bytes, 5, 2)?;
    expect(bytes, 7, b'-')?;
    let day = digits(bytes, 8, 2)?;
    ensure!(
        matches!(bytes[10], b'T' | b't' | b' '),
        "expected 'T' between the date and the time"
    );
    let hour = digits(bytes, 11, 2)?;
    expect(bytes, 13, b':')?;
    let minute = digits(bytes, 14, 2)?;
    expect(bytes, 16, b':')?;
    let second = digits(bytes, 17, 2)?;
    ensure!((1..=12).contains(&month), "month {month} is not 1..=12");
    let month_days = days_in_month(year, month);
    ensure!(
        (1..=month_days).contains(&day),
        "day {day} is not 1..={month_days} for {year:04}-{month:02}"
    );
    ensure!(hour <= 23, "hour {hour} is not 0..=23");
    ensure!(minute <= 59, "minute {minute} is not 0..=59");
    // 60 is a leap second; it counts as the first second of the next minute.
    ensure!(second <= 60, "second {second} is not 0..=60");

    let mut position = 19;
    let mut millis = 0;
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        let start = position;
        while bytes.get(position).is_some_and(u8::is_ascii_digit) {
            if position - start < 3 {
                millis = millis * 10 + i64::from(bytes[position] - b'0');
            }
            position += 1;
        }
        ensure!(position > start, "expected digits after '.'");
        for _ in (position - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match bytes.get(position) {
        Some(b'Z' | b'z') if position + 1 == bytes.len() => 0,
        Some(&sign @ (b'+' | b'-')) if position + 6 == bytes.len() => {
            let hours = digits(bytes, position + 1, 2)?;
            expect(bytes, position + 3, b':')?;
            let minutes = digits(bytes, position + 4, 2)?;
            ensure!(
                hours <= 23 && minutes <= 59,
                "offset {hours:02}:{minutes:02} is out of range"
            );
            let offset = hours * 60 + minutes;
            if sign == b'+' { offset } else { -offset }
        }
        _ => bail!("expected 'Z' or an offset like +01:00 after the time"),
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1_000 + millis)
}

/// The number made of `count` ASCII digits at `start`.
fn digits(bytes: &[u8], start: usize, count: usize) -> anyhow::Result<i64> {
    let field = bytes
        .get(start..start + count)
        .filter(|f| f.iter().all(u8::is_ascii_digit))
        .with_context(|| format!("expected {count} digits at position {}", start + 1))?;
    Ok(field
        .iter()
        .fold(0, |n, digit| n * 10 + i64::from(digit - b'0')))
}

fn expect(bytes: &[u8], position: usize, wanted: u8) -> anyhow::Result<()> {
    ensure!(
        bytes.get(position) == Some(&wanted),
        "expected {:?} at position {}",
        char::from(wanted),
        position + 1
    );
    Ok(())
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::parse_epoch_ms;

    #[test]
    fn epoch_milliseconds_pass_through() {
        assert_eq!(parse_epoch_ms("0").unwrap(), 0);
        assert_eq!(parse_epoch_ms("1700000000123").unwrap(), 1_700_000_000_123);
    }

    #[test]
    fn utc_and_offsets() {
        assert_eq!(parse_epoch_ms("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(
            parse_epoch_ms("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_epoch_ms("2023-11-14T23:13:20+01:00").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_epoch_ms("2023-11-14T16:43:20-05:30").unwrap(),
            1_700_000_000_000
        );
        assert_eq!(
            parse_epoch_ms("2026-11-22T10:00:00Z").unwrap(),
            1_795_341_600_000
        );
    }

    #[test]
    fn fractions_leap_days_and_lowercase() {
        assert_eq!(
            parse_epoch_ms("2023-11-14T22:13:20.5Z").unwrap(),
            1_700_000_000_500
        );
        assert_eq!(
            parse_epoch_ms("2023-11-14t22:13:20.123456z").unwrap(),
            1_700_000_000_123
        );
        assert_eq!(
            parse_epoch_ms("2024-02-29T00:00:00Z").unwrap(),
            1_709_164_800_000
        );
        assert_eq!(parse_epoch_ms("1969-12-31T23:59:59Z").unwrap(), -1_000);
    }

    #[test]
    fn rejects_what_is_not_rfc3339() {
        for bad in [
            "",
            "yesterday",
            "2023-11-14",
            "2023-11-14T22:13:20",
            "2023-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2023-11-14T24:00:00Z",
            "2023-11-14T22:13:20.Z",
            "2023-11-14T22:13:20+0100",
            "2023-11-14T22:13:20Zjunk",
            "-5",
        ] {
            assert!(parse_epoch_ms(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
