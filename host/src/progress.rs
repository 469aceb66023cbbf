//! Progress as people see it: a bar per running upload or download (bytes, rate, ETA) and a
//! spinner while Glance finishes, on a terminal; plain lines at each quarter otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

/// How progress is shown for the whole run.
#[derive(Clone)]
pub enum Display {
    /// Live bars on a terminal.
    Bars(MultiProgress),
    /// One line per quarter of a transfer and per status change (logs, CI).
    Lines,
    /// Nothing (`-q`).
    Quiet,
}

impl Display {
    /// Bars when stderr is a terminal, lines otherwise, nothing when quiet.
    pub fn for_stderr(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bars(MultiProgress::new())
        } else {
            Display::Lines
        }
    }
}

/// Which way data moves.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transfer {
    /// Image data sent to Glance.
    Upload,
    /// Image data fetched from its source URL.
    Download,
}

impl Transfer {
    fn noun(self) -> &'static str {
        match self {
            Transfer::Upload => "upload",
            Transfer::Download => "download",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Transfer::Upload => "uploaded",
            Transfer::Download => "downloaded",
        }
    }
}

/// The progress of one image's work.
pub struct ImageProgress {
    display: Display,
    label: String,
    bars: HashMap<&'static str, ProgressBar>,
    quarters: HashMap<Transfer, u64>,
}

impl ImageProgress {
    /// Progress reported under `label` (the image's logical name).
    pub fn new(display: Display, label: &str) -> ImageProgress {
        ImageProgress {
            display,
            label: label.to_string(),
            bars: HashMap::new(),
            quarters: HashMap::new(),
        }
    }

    /// `bytes` of `total` (when known) have been moved by `transfer`.
    pub fn transfer(&mut self, transfer: Transfer, bytes: u64, total: Option<u64>) {
        match &self.display {
            Display::Quiet => {}
            Display::Bars(multi) => {
                let label = &self.label;
                let bar = self.bars.entry(transfer.noun()).or_insert_with(|| {
                    let bar = match total {
                        Some(total) => multi.add(ProgressBar::new(total)).with_style(
                            ProgressStyle::with_template(
                                "{prefix} {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                            )
                            .expect("a valid template"),
                        ),
                        None => multi.add(ProgressBar::new_spinner()).with_style(
                            ProgressStyle::with_template("{prefix} {spinner} {bytes} {bytes_per_sec}")
                                .expect("a valid template"),
                        ),
                    };
                    bar.with_prefix(format!("{label}: {}", transfer.noun()))
                });
                bar.set_position(bytes);
                if total == Some(bytes) {
                    bar.finish();
                }
            }
            Display::Lines => {
                let quarter = total.and_then(|t| (bytes * 4).checked_div(t)).unwrap_or(0);
                let last = self.quarters.entry(transfer).or_insert(u64::MAX);
                if *last != quarter && (total.is_some() || *last == u64::MAX) {
                    *last = quarter;
                    match total {
                        Some(total) => eprintln!(
                            "{}: {} {bytes} of {total} bytes ({}%)",
                            self.label,
                            transfer.past(),
                            quarter * 25
                        ),
                        None => eprintln!(
                            "{}: {} started (size not known in advance)",
                            self.label,
                            transfer.noun()
                        ),
                    }
                }
            }
        }
    }

    /// The image's status while Glance works on it.
    pub fn status(&mut self, status: &str) {
        match &self.display {
            Display::Quiet => {}
            Display::Bars(multi) => {
                let label = &self.label;
                let spinner = self.bars.entry("status").or_insert_with(|| {
                    let spinner = multi.add(ProgressBar::new_spinner()).with_prefix(label.clone());
                    spinner.set_style(
                        ProgressStyle::with_template("{prefix} {spinner} {msg}").expect("a valid template"),
                    );
                    spinner.enable_steady_tick(Duration::from_millis(120));
                    spinner
                });
                if status == "active" {
                    spinner.finish_with_message("active");
                } else {
                    spinner.set_message(format!("image is {status}"));
                }
            }
            Display::Lines => eprintln!("{}: image is {status}", self.label),
        }
    }
}

impl Drop for ImageProgress {
    fn drop(&mut self) {
        for bar in self.bars.values() {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}
