//! Moments on the machine's monotonic clock, comparable across processes of one boot:
//! what a drill's RTO is measured with (a wall clock can step; this one does not).
//! Between moments of different boots (a run resumed on another machine) only the wall
//! clock is left, and a measure says which it used.

use std::sync::OnceLock;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A reading of `CLOCK_MONOTONIC` and the boot it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Mono {
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`).
    pub boot: String,
    /// Nanoseconds since that boot.
    pub ns: u64,
}

fn boot_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    })
}

impl Mono {
    /// Now.
    #[must_use]
    pub fn now() -> Self {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        Self {
            boot: boot_id().to_owned(),
            ns: u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000
                + u64::try_from(t.tv_nsec).unwrap_or(0),
        }
    }

    /// Seconds from `self` to `later`, when both are of one known boot.
    #[must_use]
    pub fn seconds_to(&self, later: &Self) -> Option<f64> {
        (!self.boot.is_empty() && self.boot == later.boot)
            .then(|| (later.ns as f64 - self.ns as f64) / 1e9)
    }
}

/// A moment: the wall clock for people, the monotonic clock for measuring.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Moment {
    /// When, by the wall clock.
    pub at: Timestamp,
    /// When, by the monotonic clock (absent in journals written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mono: Option<Mono>,
}

/// Which clock a measure between two moments used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClockUsed {
    /// Both moments were read on one machine's monotonic clock.
    Monotonic,
    /// They were read on different machines (a resumed run): wall clocks.
    Wall,
}

impl Moment {
    /// Now.
    #[must_use]
    pub fn now() -> Self {
        Self {
            at: Timestamp::now(),
            mono: Some(Mono::now()),
        }
    }

    /// Seconds from `self` to `later`, and the clock that measured them.
    #[must_use]
    pub fn seconds_to(&self, later: &Self) -> (f64, ClockUsed) {
        match (&self.mono, &later.mono) {
            (Some(a), Some(b)) => match a.seconds_to(b) {
                Some(s) => (s, ClockUsed::Monotonic),
                None => (wall(self.at, later.at), ClockUsed::Wall),
            },
            _ => (wall(self.at, later.at), ClockUsed::Wall),
        }
    }
}

fn wall(a: Timestamp, b: Timestamp) -> f64 {
    (b.as_nanosecond() - a.as_nanosecond()) as f64 / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_of_one_boot_are_measured_on_the_monotonic_clock() {
        let a = Moment::now();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = Moment::now();
        let (s, clock) = a.seconds_to(&b);
        assert_eq!(clock, ClockUsed::Monotonic);
        assert!(s > 0.0);
        let mut elsewhere = b.clone();
        elsewhere.mono.as_mut().unwrap().boot = "another machine".into();
        assert_eq!(a.seconds_to(&elsewhere).1, ClockUsed::Wall);
    }
}
