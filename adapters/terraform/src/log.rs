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
