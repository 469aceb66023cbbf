//! The component's stderr: JSON event lines, routed to the host's log; capped in size so a
//! chatty component cannot flood the terminal or memory.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde_json::Value;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::progress::{ImageProgress, Transfer};

/// Longest line kept; longer lines are cut.
const MAX_LINE: usize = 64 * 1024;
/// What a line costs beyond its bytes: the time and level the host adds when it logs it, so
/// a flood of short lines cannot print many times the cap.
const LINE_COST: usize = 64;

/// A sink for a component's stdout or stderr.
#[derive(Clone)]
pub struct GuestLog {
    inner: Arc<Mutex<LineBuffer>>,
}

struct LineBuffer {
    pending: Vec<u8>,
    seen: usize,
    cap: usize,
    truncated: bool,
    progress: ImageProgress,
}

impl GuestLog {
    /// A sink that accepts at most `cap` bytes in total and shows transfers on `progress`.
    pub fn new(cap: usize, progress: ImageProgress) -> GuestLog {
        GuestLog {
            inner: Arc::new(Mutex::new(LineBuffer {
                pending: Vec::new(),
                seen: 0,
                cap,
                truncated: false,
                progress,
            })),
        }
    }

    fn write(&self, data: &[u8]) {
        let mut buffer = self.inner.lock().expect("log lock");
        for &byte in data {
            let cost = if byte == b'\n' { 1 + LINE_COST } else { 1 };
            if buffer.seen + cost > buffer.cap {
                if !buffer.truncated {
                    buffer.truncated = true;
                    tracing::warn!(
                        "the component wrote more than {} KiB of output; the rest is dropped (raise --output-limit-kib)",
                        buffer.cap / 1024
                    );
                }
                return;
            }
            buffer.seen += cost;
            if byte == b'\n' {
                let line = std::mem::take(&mut buffer.pending);
                route(&String::from_utf8_lossy(&line), &mut buffer.progress);
            } else if buffer.pending.len() < MAX_LINE {
                buffer.pending.push(byte);
            }
        }
    }
}

/// Sends one line of component output to the host's log.
fn route(line: &str, progress: &mut ImageProgress) {
    let Ok(event) = serde_json::from_str::<Value>(line) else {
        if !line.trim().is_empty() {
            tracing::warn!(target: "component", "{line}");
        }
        return;
    };
    let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    match text("event").as_str() {
        "log" if text("level") == "warn" => tracing::warn!(target: "component", "{}", text("message")),
        "log" if text("level") == "debug" => tracing::debug!(target: "component", "{}", text("message")),
        "log" => tracing::info!(target: "component", "{}", text("message")),
        "status" => {
            tracing::debug!(target: "component", "image {} is {}", text("image"), text("status"));
            progress.status(&text("status"));
        }
        "upload" | "download" => {
            let bytes = event.get("bytes").and_then(Value::as_u64).unwrap_or(0);
            let total = event.get("total").and_then(Value::as_u64);
            let transfer = if text("event") == "upload" {
                Transfer::Upload
            } else {
                Transfer::Download
            };
            tracing::debug!(target: "component", "{} {bytes} of {total:?} bytes", text("event"));
            progress.transfer(transfer, bytes, total);
        }
        _ => tracing::debug!(target: "component", "{line}"),
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_output() {
        let log = GuestLog::new(10, ImageProgress::new(crate::progress::Display::Quiet, "test"));
        log.write(b"0123456789abcdef\n");
        let buffer = log.inner.lock().unwrap();
        assert_eq!(buffer.seen, 10);
        assert!(buffer.truncated);
        assert_eq!(buffer.pending, b"0123456789");
    }

    #[test]
    fn charges_each_line_what_logging_it_adds() {
        let log = GuestLog::new(
            10 * (2 + LINE_COST),
            ImageProgress::new(crate::progress::Display::Quiet, "test"),
        );
        log.write(&b"x\n".repeat(100));
        let buffer = log.inner.lock().unwrap();
        assert_eq!(buffer.seen, 10 * (2 + LINE_COST));
        assert!(buffer.truncated);
    }
}
