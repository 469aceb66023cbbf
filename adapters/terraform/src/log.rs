//! Log lines for Terraform's log (TF_LOG): go-plugin reads the plugin's stderr and files each
//! hclog-style JSON line under its `@level`. Lines name operations and outcomes, never values,
//! so no secret can reach the log.

use std::io::Write;

/// A log level, as hclog spells it.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Writes one log line to stderr.
pub fn line(level: Level, message: &str) {
    let level = match level {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    };
    let entry = serde_json::json!({
        "@level": level,
        "@message": message,
        "@module": "openstackimage",
        "@timestamp": timestamp(std::time::SystemTime::now()),
    });
    // Nothing sensible is left to do when stderr is gone.
    let _ = writeln!(std::io::stderr().lock(), "{entry}");
}

pub fn debug(message: &str) {
    line(Level::Debug, message);
}

pub fn info(message: &str) {
    line(Level::Info, message);
}

pub fn warn(message: &str) {
    line(Level::Warn, message);
}

pub fn error(message: &str) {
    line(Level::Error, message);
}

/// A time in the one layout go-plugin parses (`2006-01-02T15:04:05.000000Z07:00`, microseconds,
/// UTC); any other layout makes it log the whole line as unparsed text.
fn timestamp(time: std::time::SystemTime) -> String {
    let since_epoch = time.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let (year, month, day) = civil_date(seconds / 86_400);
    let of_day = seconds % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since_epoch.subsec_micros()
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days after the epoch).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_in_go_plugins_layout() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let leap_day = UNIX_EPOCH + Duration::from_micros(1_709_210_096_123_456);
        assert_eq!(timestamp(leap_day), "2024-02-29T12:34:56.123456Z");
        let new_year = UNIX_EPOCH + Duration::from_secs(1_767_225_599);
        assert_eq!(timestamp(new_year), "2025-12-31T23:59:59.000000Z");
    }
}
