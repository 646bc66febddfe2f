//! Durations as administrators type them: `1d`, `12h`, `90m`, `2d6h30m`.

use chrono::Duration;

pub const MIN_MINUTES: i64 = 1;
pub const MAX_MINUTES: i64 = 999 * 24 * 60;

/// Parses a duration of days, hours and minutes, each at most once and in that order,
/// between 1 minute and 999 days. The error says what to type instead.
pub fn parse(input: &str) -> Result<Duration, String> {
    const HELP: &str = "use days, hours and minutes like 1d, 12h, 90m or 2d6h30m";
    let s = input.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(format!("enter a duration: {HELP}"));
    }
    if s.len() > 32 {
        return Err(format!("too long: {HELP}"));
    }
    let mut minutes: i64 = 0;
    let mut number = String::new();
    let mut last_unit = 0usize;
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let (rank, factor) = match c {
            'd' => (1, 24 * 60),
            'h' => (2, 60),
            'm' => (3, 1),
            _ => return Err(format!("'{input}' is not a duration: {HELP}")),
        };
        if number.is_empty() || rank <= last_unit {
            return Err(format!("'{input}' is not a duration: {HELP}"));
        }
        let n: i64 = number
            .parse()
            .map_err(|_| format!("'{input}' is too large: at most 999 days"))?;
        minutes = minutes.saturating_add(n.saturating_mul(factor));
        number.clear();
        last_unit = rank;
    }
    if !number.is_empty() {
        return Err(format!("'{input}' lacks a unit: {HELP}"));
    }
    if minutes < MIN_MINUTES {
        return Err("at least 1 minute".into());
    }
    if minutes > MAX_MINUTES {
        return Err("at most 999 days".into());
    }
    Ok(Duration::minutes(minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        assert_eq!(parse("1d").unwrap(), Duration::days(1));
        assert_eq!(parse("12h").unwrap(), Duration::hours(12));
        assert_eq!(
            parse("2d6h30m").unwrap(),
            Duration::minutes(2 * 1440 + 6 * 60 + 30)
        );
        assert_eq!(parse(" 1M ").unwrap(), Duration::minutes(1));
        assert_eq!(parse("999d").unwrap(), Duration::days(999));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "0m",
            "1000d",
            "1",
            "d",
            "1h1d",
            "1d1d",
            "1w",
            "-1d",
            "1.5d",
            "99999999999999999999d",
            "１d",
        ] {
            assert!(parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
