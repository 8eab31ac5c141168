//! Bounded waiting: every wait for a cloud resource has a deadline and reports progress.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::progress::{NoProgress, Progress};
use crate::{err, Result};

/// How long to wait for a condition, how often to look, and where to report.
#[derive(Clone)]
pub struct Wait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Look this often.
    pub poll: Duration,
    /// Receives one phase message per look (e.g. "db-1: modifying").
    pub progress: Arc<dyn Progress>,
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

impl Default for Wait {
    fn default() -> Self {
        Self::new(Duration::from_mins(30))
    }
}

impl Wait {
    /// Waits up to `timeout`, looking every 10 s at most.
    #[must_use]
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            poll: Duration::from_secs(10)
                .min(timeout / 10)
                .max(Duration::from_millis(50)),
            progress: Arc::new(NoProgress),
        }
    }

    /// With a poll interval.
    #[must_use]
    pub fn poll(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// With a progress sink.
    #[must_use]
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Calls `check` until it returns `Some`, reporting each state it returns, and fails
    /// with `Timeout` naming `what` and the last state seen after `timeout`.
    pub async fn until<T, F, Fut>(&self, what: &str, mut check: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(Option<T>, String)>>,
    {
        let started = Instant::now();
        loop {
            let (done, state) = check().await?;
            self.progress.phase(&format!("{what}: {state}"));
            if let Some(v) = done {
                return Ok(v);
            }
            let elapsed = started.elapsed();
            if elapsed >= self.timeout {
                return Err(err!(
                    Timeout,
                    "{what}: still {state} after {} s; raise the timeout or look at the resource in the console",
                    elapsed.as_secs()
                ));
            }
            tokio::time::sleep(self.poll.min(self.timeout.saturating_sub(elapsed))).await;
        }
    }
}
