//! How results reach people (text, progress bars) and machines (`--json`).

use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dr_core::progress::Progress;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::Serialize;

/// Writes `text` and a newline to stdout. A reader that went away (`drkit snapshots |
/// head -1`) is not an error: the work is done and its exit status stands; any other
/// failure to write is said on stderr.
pub fn stdout_line(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("drkit: cannot write to standard output: {e}");
        }
    }
}

/// Output mode chosen by the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON on stdout.
    pub json: bool,
    /// No bars.
    pub quiet: bool,
}

/// The last result a command emitted, for `--result-file`.
static EMITTED: std::sync::Mutex<Option<serde_json::Value>> = std::sync::Mutex::new(None);

/// The last result emitted, taken.
pub fn take_emitted() -> Option<serde_json::Value> {
    EMITTED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
}

/// The largest termination message Kubernetes keeps.
const RESULT_MAX: usize = 4096;

/// The figures of `value` that fit a termination message: scalars, and objects of them
/// down to `depth`; lists and long text left out.
fn brief(value: &serde_json::Value, depth: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.len() > 300 => None,
        Value::Array(_) => None,
        Value::Object(_) if depth == 0 => None,
        Value::Object(m) => Some(Value::Object(
            m.iter()
                .filter_map(|(k, v)| brief(v, depth - 1).map(|v| (k.clone(), v)))
                .collect(),
        )),
        v => Some(v.clone()),
    }
}

/// The outcome of a command as `--result-file` holds it: at most 4 KiB of JSON.
pub fn result_document(
    command: &str,
    exit: u8,
    error: Option<&dr_core::Error>,
    result: Option<&serde_json::Value>,
) -> String {
    for depth in (0..=3).rev() {
        let mut doc = serde_json::json!({ "command": command, "exit": exit });
        if let Some(e) = error {
            let mut message = e.full_message();
            message.truncate(message.floor_char_boundary(2000));
            doc["error"] = serde_json::json!({ "kind": e.kind().as_str(), "message": message });
        }
        if let Some(r) = result.and_then(|r| brief(r, depth)) {
            doc["result"] = r;
        }
        let text = doc.to_string();
        if text.len() <= RESULT_MAX {
            return text;
        }
    }
    serde_json::json!({ "command": command, "exit": exit }).to_string()
}

impl Output {
    /// Prints `value` as JSON, or `text()` for people.
    pub fn emit<T: Serialize>(self, value: &T, text: impl FnOnce() -> String) {
        if let Ok(v) = serde_json::to_value(value) {
            *EMITTED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(v);
        }
        if self.json {
            stdout_line(&serde_json::to_string_pretty(value).expect("output serializes"));
        } else {
            let t = text();
            if !t.is_empty() {
                stdout_line(&t);
            }
        }
    }

    /// A line of narration on stderr, for people at a terminal only.
    pub fn note(self, text: &str) {
        if !self.json && !self.quiet && std::io::stderr().is_terminal() {
            eprintln!("{text}");
        }
    }

    /// A progress bar on stderr when it is a terminal and output is for people.
    pub fn progress(self, total: Option<u64>) -> std::sync::Arc<Bar> {
        let show = !self.json && !self.quiet && std::io::stderr().is_terminal();
        let bar = if show {
            match total {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            }
        } else {
            ProgressBar::hidden()
        };
        let template = if total.is_some() {
            "{spinner} {prefix:>8} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}"
        } else {
            "{spinner} {prefix:>8} {bytes} read, {binary_bytes_per_sec} {msg}"
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        std::sync::Arc::new(Bar {
            line: bar,
            new_bytes: AtomicU64::new(0),
            items: std::sync::Mutex::new(Vec::new()),
        })
    }
}

/// A progress bar that also counts bytes newly stored (dedup shows as their ratio).
#[derive(Debug)]
pub struct Bar {
    line: ProgressBar,
    new_bytes: AtomicU64,
    /// The items (tables) under way, oldest first.
    items: std::sync::Mutex<Vec<String>>,
}

impl Bar {
    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.line.finish_and_clear();
    }
}

impl Bar {
    /// New bytes so far and the tables under way.
    fn show(&self) {
        let new = self.new_bytes.load(Ordering::Relaxed);
        let items = self
            .items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut msg = if new > 0 {
            format!("{} new", HumanBytes(new))
        } else {
            String::new()
        };
        if !items.is_empty() {
            let shown: Vec<&str> = items.iter().take(3).map(String::as_str).collect();
            let more = items.len().saturating_sub(3);
            if !msg.is_empty() {
                msg.push_str("  ");
            }
            msg.push_str(&shown.join(", "));
            if more > 0 {
                let _ = write!(msg, " +{more}");
            }
        }
        self.line.set_message(msg);
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str) {
        self.line.set_prefix(name.to_owned());
    }

    fn advance(&self, raw: u64, stored_new: u64) {
        self.line.inc(raw);
        if stored_new > 0 {
            self.new_bytes.fetch_add(stored_new, Ordering::Relaxed);
            self.show();
        }
    }

    fn item_started(&self, name: &str) {
        self.items
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(name.to_owned());
        self.show();
    }

    fn item_finished(&self, name: &str) {
        {
            let mut items = self
                .items
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(i) = items.iter().position(|n| n == name) {
                items.remove(i);
            }
        }
        self.show();
    }
}

/// Seconds with millisecond precision, for reports.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// `1.2 GiB`-style sizes.
pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}
