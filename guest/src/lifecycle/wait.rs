//! Waiting for an image's status: polls with a doubling pause, within the operation's time.

use super::*;

/// Waiting for `active` polls with this backoff.
pub(super) const FIRST_POLL: Duration = Duration::from_millis(200);
pub(super) const MAX_POLL: Duration = Duration::from_secs(5);

/// The pause between two status polls: [`FIRST_POLL`], doubling up to [`MAX_POLL`], never
/// past the operation's time.
pub(super) struct PollDelay(Duration);

impl PollDelay {
    pub(super) fn new() -> PollDelay {
        PollDelay(FIRST_POLL)
    }

    pub(super) fn sleep(&mut self, op: &Op) -> Result<(), Error> {
        std::thread::sleep(self.0.min(op.remaining()?));
        self.0 = (self.0 * 2).min(MAX_POLL);
        Ok(())
    }
}

impl<T: Transport> Provider<T> {
    /// The image's status now.
    pub(super) fn status_of(&mut self, op: &mut Op, id: &str) -> Result<String, Error> {
        let url = op.url(&format!("/images/{id}"));
        Ok(self.poll(op, id, &url)?.1)
    }

    /// The image's status once Glance is done with an upload that broke off: while a worker
    /// still reads it (`saving`), waits, within the operation's time.
    pub(super) fn status_after_upload(&mut self, op: &mut Op, id: &str) -> Result<String, Error> {
        let url = op.url(&format!("/images/{id}"));
        let mut delay = PollDelay::new();
        loop {
            let status = self.poll(op, id, &url)?.1;
            if status != "saving" {
                return Ok(status);
            }
            delay.sleep(op)?;
        }
    }

    /// Reads the image once while waiting on it; reports status changes.
    pub(super) fn poll(&mut self, op: &mut Op, id: &str, url: &str) -> Result<(Value, String), Error> {
        let response = self.call(op, "GET", url, None)?;
        expect(&response, "GET", url, &[200])?;
        let image = response.json().map_err(Error::Transport)?;
        let status = image
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if status != op.last_status {
            progress::status(id, &status);
            op.last_status = status.clone();
        }
        Ok((image, status))
    }

    pub(super) fn wait_active(&mut self, op: &mut Op, id: &str) -> Result<Value, Error> {
        let url = op.url(&format!("/images/{id}"));
        let mut delay = PollDelay::new();
        loop {
            let (image, status) = self.poll(op, id, &url)?;
            match status.as_str() {
                "active" => return Ok(image),
                "saving" | "importing" | "uploading" => {}
                other => {
                    return Err(Error::ImportFailed(format!(
                        "image {id} went to status '{other}' instead of 'active' after its data was sent"
                    )));
                }
            }
            delay.sleep(op)?;
        }
    }
}
