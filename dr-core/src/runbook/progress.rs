//! Progress with an ETA, for the notifiers that take `progress` (seed 000: "Recovery
//! Progress: N % complete, ETA"): the share of the run's steps that have ended, and when
//! the rest should be done, from how long each step took in earlier succeeded runs of
//! the same runbook, along the longest chain of the steps left (independent steps run
//! at once).

use std::collections::BTreeMap;
use std::fmt;

use jiff::Timestamp;

use super::model::Runbook;
use super::state::{RunOutcome, RunSummary, StepState};

/// Each step's mean duration over earlier succeeded runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Estimates {
    /// Mean seconds by step id.
    pub seconds: BTreeMap<String, f64>,
    /// How many earlier runs they come from.
    pub runs: usize,
}

impl Estimates {
    /// From `earlier` runs (only the succeeded ones count).
    #[must_use]
    pub fn of(earlier: &[RunSummary]) -> Self {
        let mut sums: BTreeMap<String, (f64, u32)> = BTreeMap::new();
        let mut runs = 0;
        for r in earlier
            .iter()
            .filter(|r| r.outcome == RunOutcome::Succeeded)
        {
            runs += 1;
            for s in &r.steps {
                if let (StepState::Succeeded, Some(x)) = (s.state, s.seconds) {
                    let e = sums.entry(s.id.to_string()).or_default();
                    e.0 += x;
                    e.1 += 1;
                }
            }
        }
        Self {
            seconds: sums
                .into_iter()
                .map(|(k, (sum, n))| (k, sum / f64::from(n)))
                .collect(),
            runs,
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Steps ended (succeeded, failed, skipped).
    pub done: usize,
    /// Steps in all.
    pub total: usize,
    /// Seconds left along the longest chain of the steps left; `None` when a step left
    /// has never run before.
    pub left_seconds: Option<f64>,
    /// The earlier runs the estimate comes from.
    pub from_runs: usize,
    /// When it should be done.
    pub eta: Option<Timestamp>,
}

impl Progress {
    /// The progress of run `state` of `rb`, estimated with `e`, as of now.
    #[must_use]
    pub fn of(rb: &Runbook, state: &RunSummary, e: &Estimates) -> Self {
        Self::at(rb, state, e, Timestamp::now())
    }

    /// The same as of `now`.
    #[must_use]
    pub fn at(rb: &Runbook, state: &RunSummary, e: &Estimates, now: Timestamp) -> Self {
        let ended = |id: &str| state.state(id).finished();
        let left: Vec<&str> = rb
            .steps
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| !ended(id))
            .collect();
        let mut finish: BTreeMap<&str, Option<f64>> = BTreeMap::new();
        // The steps are ordered so that a step's needs come before it once the runbook
        // is checked; resolve in passes to be safe with any order.
        for _ in 0..=left.len() {
            for id in &left {
                if finish.contains_key(id) {
                    continue;
                }
                let step = rb.step(id).expect("a step of the runbook");
                let needs: Vec<&str> = step
                    .needs
                    .iter()
                    .map(String::as_str)
                    .filter(|n| !ended(n))
                    .collect();
                if needs.iter().any(|n| !finish.contains_key(n)) {
                    continue;
                }
                let before = needs
                    .iter()
                    .map(|n| finish[n])
                    .try_fold(0.0_f64, |acc, f| f.map(|f| acc.max(f)));
                let own = e.seconds.get(*id).copied();
                finish.insert(id, before.zip(own).map(|(b, o)| b + o));
            }
        }
        let left_seconds = if left.is_empty() {
            Some(0.0)
        } else if finish.len() == left.len() {
            finish
                .values()
                .try_fold(0.0_f64, |acc, f| f.map(|f| acc.max(f)))
        } else {
            None
        };
        let eta = left_seconds.and_then(|s| {
            jiff::SignedDuration::try_from_secs_f64(s)
                .ok()
                .and_then(|d| now.checked_add(d).ok())
        });
        Self {
            done: rb.steps.len() - left.len(),
            total: rb.steps.len(),
            left_seconds,
            from_runs: e.runs,
            eta,
        }
    }

    /// The share done, 0 to 100.
    #[must_use]
    pub fn percent(&self) -> u32 {
        if self.total == 0 {
            return 100;
        }
        u32::try_from(self.done * 100 / self.total).unwrap_or(100)
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "progress: {} % complete ({} of {} steps)",
            self.percent(),
            self.done,
            self.total
        )?;
        match (self.eta, self.left_seconds) {
            (Some(eta), Some(left)) => write!(
                f,
                "; ETA {} ({} left, from {} earlier run{})",
                eta.strftime("%H:%M:%S UTC"),
                super::report::seconds(left),
                self.from_runs,
                if self.from_runs == 1 { "" } else { "s" }
            ),
            _ if self.from_runs == 0 => {
                f.write_str("; no ETA: no earlier run of this runbook succeeded")
            }
            _ => f.write_str("; no ETA: a step left has not run in an earlier run"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_follows_the_longest_chain_of_the_steps_left() {
        let yaml = r"
version: 1
name: p
steps:
  - { id: a, action: wait, with: { for: 1ms } }
  - { id: b, action: wait, needs: [a], with: { for: 1ms } }
  - { id: c, action: wait, needs: [a], with: { for: 1ms } }
  - { id: d, action: wait, needs: [b, c], with: { for: 1ms } }
";
        let (rb, _) = super::super::parse::parse_yaml(yaml, "p.yaml").unwrap();
        let header = super::super::journal::RunHeader {
            id: super::super::state::RunId::new(),
            runbook: rb.clone(),
            origin: "p.yaml".into(),
            vars: serde_json::Map::new(),
            mode: super::super::model::Mode::Planned,
            started: Timestamp::now(),
            by: super::super::journal::Actor::current(),
            drkit: String::new(),
            key: None,
        };
        let state = RunSummary::fold(&header, Vec::new());
        let e = Estimates {
            seconds: [("a", 10.0), ("b", 5.0), ("c", 30.0), ("d", 2.0)]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            runs: 3,
        };
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let p = Progress::at(&rb, &state, &e, now);
        // a, then c (the longer of b and c), then d.
        assert_eq!(p.left_seconds, Some(42.0));
        assert_eq!(p.eta, Some(Timestamp::from_second(1_800_000_042).unwrap()));
        assert_eq!((p.done, p.total, p.percent()), (0, 4, 0));
        assert!(p.to_string().contains("ETA") && p.to_string().contains("from 3 earlier runs"));
        let unknown = Estimates {
            seconds: e
                .seconds
                .iter()
                .filter(|(k, _)| *k != "d")
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            runs: 3,
        };
        let p = Progress::at(&rb, &state, &unknown, now);
        assert_eq!(p.eta, None);
        assert!(p.to_string().contains("no ETA"), "{p}");
    }
}
