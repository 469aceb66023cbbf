//! Go duration strings ("30m", "1h30m", "90s"), the form Terraform users write in `timeouts`
//! blocks, to and from the whole seconds the component takes.

/// Whole seconds in a Go duration, rounded up (so "1500ms" gives at least that long).
pub fn seconds(text: &str) -> Result<u64, String> {
    let invalid = || format!("'{text}' is not a duration; write it like \"30m\", \"1h30m\" or \"90s\"");
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.starts_with('-') {
        return Err(format!(
            "'{text}' is negative; give a positive duration such as \"30m\""
        ));
    }
    if digits == "0" {
        return Ok(0);
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut nanos: f64 = 0.0;
    let mut rest = digits;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(invalid());
        }
        let amount: f64 = number.parse().map_err(|_| invalid())?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(invalid()),
        };
        nanos += amount * scale;
        rest = after;
    }
    let whole = (nanos / 1e9).ceil();
    if whole > u64::MAX as f64 {
        return Err(format!("'{text}' is too long"));
    }
    Ok(whole as u64)
}

/// Seconds written as Go's `Duration.String` writes them ("30m0s", "1h0m0s", "45s").
pub fn format(seconds: u64) -> String {
    let (hours, minutes, secs) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations_become_seconds() {
        for (text, expected) in [
            ("30m", 1800),
            ("1h30m", 5400),
            ("90s", 90),
            ("1h0m0s", 3600),
            ("2h45m30s", 9930),
            ("0", 0),
            ("1.5h", 5400),
            ("1500ms", 2),
            ("+10s", 10),
            ("1µs", 1),
        ] {
            assert_eq!(seconds(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_durations_say_how_to_write_one() {
        for text in ["", "30", "10 m", "1d", "m", "-5m", "1h-5m", ".h"] {
            let err = seconds(text).unwrap_err();
            assert!(err.contains(text), "{text}: {err}");
        }
        assert!(seconds("10x").unwrap_err().contains("\"30m\""));
    }

    #[test]
    fn seconds_are_written_as_go_does() {
        assert_eq!(format(1800), "30m0s");
        assert_eq!(format(3600), "1h0m0s");
        assert_eq!(format(45), "45s");
        assert_eq!(format(0), "0s");
        for s in [0, 1, 59, 60, 3599, 3600, 86_400 + 61] {
            assert_eq!(seconds(&format(s)), Ok(s));
        }
    }
}
