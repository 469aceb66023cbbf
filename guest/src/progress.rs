//! Progress and log events: one JSON object per line on stderr.
//!
//! Events (`event` field): `upload` (`image`, `bytes`, `total`), `status` (`image`,
//! `status`), `log` (`level`, `message`). Any runtime can show them as logs; the bundled
//! host draws them.

use serde_json::{Value, json};

/// Writes one event line to stderr.
pub fn emit(event: Value) {
    eprintln!("{event}");
}

/// An informational log event.
pub fn info(message: impl Into<String>) {
    emit(json!({"event": "log", "level": "info", "message": message.into()}));
}

/// A warning log event.
pub fn warn(message: impl Into<String>) {
    emit(json!({"event": "log", "level": "warn", "message": message.into()}));
}

/// Upload progress, throttled by the caller.
pub fn upload(image: &str, bytes: u64, total: u64) {
    emit(json!({"event": "upload", "image": image, "bytes": bytes, "total": total}));
}

/// The image's status as last seen while waiting.
pub fn status(image: &str, status: &str) {
    emit(json!({"event": "status", "image": image, "status": status}));
}
