//! The keep-alive relay (`scripts/keepalive-relay`) in front of a dev cloud service: HTTP/1.1
//! keep-alive toward the tool although uwsgi closes every connection, with the TCP
//! connections and requests it saw counted.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

/// What the relay saw so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traffic {
    /// TCP connections clients opened.
    pub connections: u64,
    /// Requests relayed.
    pub requests: u64,
    /// Client connections the relay closed because they stayed idle too long.
    pub idle_closed: u64,
}

impl std::ops::Sub for Traffic {
    type Output = Traffic;

    fn sub(self, earlier: Traffic) -> Traffic {
        Traffic {
            connections: self.connections - earlier.connections,
            requests: self.requests - earlier.requests,
            idle_closed: self.idle_closed - earlier.idle_closed,
        }
    }
}

/// A running relay (a child process, stopped when dropped).
pub struct KeepAliveRelay {
    pub addr: SocketAddr,
    child: Child,
    stats: PathBuf,
    _dir: tempfile::TempDir,
}

impl KeepAliveRelay {
    /// Relays 127.0.0.1:<free port> to `upstream`; with `idle_close`, a client connection
    /// idle that long between requests is closed unannounced, as servers do after their
    /// keep-alive timeout.
    pub fn start(upstream: SocketAddr, idle_close: Option<Duration>) -> KeepAliveRelay {
        let dir = tempfile::tempdir().expect("temp dir");
        let stats = dir.path().join("stats.json");
        let mut command = Command::new("python3");
        command
            .arg(crate::root().join("scripts/keepalive-relay"))
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--stats")
            .arg(&stats)
            .stdout(Stdio::piped());
        if let Some(idle) = idle_close {
            command.arg("--idle-close-ms").arg(idle.as_millis().to_string());
        }
        let mut child = command.spawn().expect("run scripts/keepalive-relay (python3)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout"))
            .read_line(&mut line)
            .expect("read the relay's port");
        let port: u16 = line.trim().parse().expect("the relay prints its port first");
        KeepAliveRelay {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            stats,
            _dir: dir,
        }
    }

    /// The relay's base URL (`http://127.0.0.1:PORT`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Connections and requests seen so far.
    pub fn traffic(&self) -> Traffic {
        let text = std::fs::read_to_string(&self.stats).expect("the relay's stats file");
        let stats: Value = serde_json::from_str(&text).expect("the stats file is JSON");
        Traffic {
            connections: stats["connections"].as_u64().expect("connections"),
            requests: stats["requests"].as_u64().expect("requests"),
            idle_closed: stats["idle_closed"].as_u64().expect("idle_closed"),
        }
    }
}

impl Drop for KeepAliveRelay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
