//! A relaying proxy in front of the dev cloud's Keystone that records every request line: the
//! tests count logins (`POST /v3/auth/tokens`) and Keystone requests of any kind per run.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use crate::cloud_env;
use crate::fault_proxy::FaultProxy;

/// The proxy; stops when dropped.
pub struct CountingKeystone {
    proxy: FaultProxy,
    requests: Arc<Mutex<Vec<String>>>,
}

impl CountingKeystone {
    /// Listens on 127.0.0.1 and relays to the dev cloud's Keystone.
    pub fn start() -> CountingKeystone {
        let auth_url = &cloud_env()["OS_AUTH_URL"];
        let authority = auth_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("host:port in OS_AUTH_URL");
        let upstream: SocketAddr = authority.parse().expect("the dev cloud listens on an IP");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let proxy = FaultProxy::scripted(
            upstream,
            Arc::new(move |line: &str| {
                seen.lock().expect("request log").push(line.to_string());
                None
            }),
        );
        CountingKeystone { proxy, requests }
    }

    /// The auth URL to give a client instead of the dev cloud's.
    pub fn auth_url(&self) -> String {
        format!("http://{}/v3", self.proxy.addr)
    }

    /// Logins (`POST …/auth/tokens`) so far.
    pub fn logins(&self) -> usize {
        self.requests
            .lock()
            .expect("request log")
            .iter()
            .filter(|line| line.starts_with("POST ") && line.contains("/auth/tokens"))
            .count()
    }

    /// Keystone requests of any kind so far (logins, token checks, anything else).
    pub fn requests(&self) -> usize {
        self.requests.lock().expect("request log").len()
    }
}
