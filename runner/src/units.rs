//! Durations on the command line: `500us`, `50ms`, `1.5s`, `10m`, `3h`, as the
//! core's [`Duration`].

use ecoedge_core::time::Duration;

/// Parses a duration with a unit suffix.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("duration `{s}` needs a unit (us, ms, s, m or h)"))?;
    let (number, unit) = s.split_at(split);
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "m" | "min" => 60e6,
        "h" => 3600e6,
        _ => {
            return Err(format!(
                "duration `{s}`: unknown unit `{unit}` (us, ms, s, m or h)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("duration `{s}`: `{number}` is not a number"))?;
    let us = value * scale;
    if !us.is_finite() || us > u64::MAX as f64 / 2.0 {
        return Err(format!("duration `{s}` is out of range"));
    }
    Ok(Duration::from_micros(us.round() as u64))
}

/// Formats a duration with the largest unit that keeps it an integer.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_micros();
    for (unit, scale) in [
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if us >= scale && us.is_multiple_of(scale) {
            return format!("{}{unit}", us / scale);
        }
    }
    format!("{us}us")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_duration_us(s: &str) -> Result<u64, String> {
        parse_duration(s).map(Duration::as_micros)
    }

    fn format_duration_us(us: u64) -> String {
        format_duration(Duration::from_micros(us))
    }

    #[test]
    fn durations_round_trip() {
        assert_eq!(parse_duration_us("50ms"), Ok(50_000));
        assert_eq!(parse_duration_us("1.5s"), Ok(1_500_000));
        assert_eq!(parse_duration_us("3h"), Ok(10_800_000_000));
        assert_eq!(format_duration_us(10_800_000_000), "3h");
        assert_eq!(format_duration_us(90_000), "90ms");
        assert_eq!(format_duration_us(7), "7us");
        assert!(parse_duration_us("5").unwrap_err().contains("needs a unit"));
        assert!(
            parse_duration_us("5parsecs")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_duration_us("1.2.3s")
                .unwrap_err()
                .contains("not a number")
        );
    }
}
