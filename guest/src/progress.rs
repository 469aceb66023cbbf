//! Progress and log events: one JSON object per line on stderr.
//!
//! Events (`event` field): `upload` (`image`, `bytes`, `total`), `download` (`url`,
//! `bytes`, `total`), `status` (`image`, `status`), `log` (`level`, `message`); `total` is
//! null when unknown. Any runtime can show them as logs; the bundled
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

/// A debug log event (what a runtime shows only when asked for detail).
pub fn debug(message: impl Into<String>) {
    emit(json!({"event": "log", "level": "debug", "message": message.into()}));
}

/// A warning log event.
pub fn warn(message: impl Into<String>) {
    emit(json!({"event": "log", "level": "warn", "message": message.into()}));
}

/// Upload progress, throttled by the caller; `total` is absent when unknown.
pub fn upload(image: &str, bytes: u64, total: Option<u64>) {
    emit(json!({"event": "upload", "image": image, "bytes": bytes, "total": total}));
}

/// Download progress of an image source, throttled by the caller.
pub fn download(url: &str, bytes: u64, total: Option<u64>) {
    emit(json!({"event": "download", "url": url, "bytes": bytes, "total": total}));
}

/// The image's status as last seen while waiting.
pub fn status(image: &str, status: &str) {
    emit(json!({"event": "status", "image": image, "status": status}));
}
