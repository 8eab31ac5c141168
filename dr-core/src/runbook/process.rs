//! Programs a step runs, stopped as a whole: each runs in its own process group, and a
//! stopped step (its timeout, Ctrl-C, SIGTERM, a lost lock) sends SIGTERM to the group,
//! SIGKILL after a grace period, and returns only once no process of the group is left,
//! so nothing it started still acts while a retry or a compensation runs.

use std::process::Output;
use std::time::Duration;

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use tokio_util::sync::CancellationToken;

/// drkit's own secrets, kept from the programs steps run.
pub const WITHHELD_ENV: &[&str] = &["DRKIT_PASSWORD", "DRKIT_PASSWORD_FILE", "DRKIT_KEY_FILE"];

/// How often a stopping group is looked at.
const POLL: Duration = Duration::from_millis(20);

/// Waits for `child` (the leader of its own process group) and its output; when `cancel`
/// fires first, stops the whole group and returns `Err(None)` once it is gone.
pub async fn wait_or_stop(
    child: tokio::process::Child,
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<Output, Option<std::io::Error>> {
    let group = child
        .id()
        .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
    let output = child.wait_with_output();
    tokio::pin!(output);
    tokio::select! {
        out = &mut output => return out.map_err(Some),
        () = cancel.cancelled() => {}
    }
    let Some(group) = group else {
        let _ = output.await;
        return Err(None);
    };
    signal(group, Signal::TERM);
    // Reap the leader while the group winds down; the rest are reaped by their parent.
    let mut reaped = false;
    let ended = tokio::time::timeout(grace, async {
        let _ = (&mut output).await;
        reaped = true;
        gone(group).await;
    })
    .await;
    if ended.is_err() {
        signal(group, Signal::KILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            if !reaped {
                let _ = (&mut output).await;
            }
            gone(group).await;
        })
        .await;
    }
    Err(None)
}

fn signal(group: Pid, sig: Signal) {
    if let Err(e) = kill_process_group(group, sig) {
        if e != rustix::io::Errno::SRCH {
            tracing::warn!("sending {sig:?} to process group {group:?}: {e}");
        }
    }
}

/// Returns once no process of `group` runs (zombies waiting for a parent that does not
/// reap them do not count: they act no more).
async fn gone(group: Pid) {
    while test_kill_process_group(group).is_ok() && group_runs(group.as_raw_nonzero().get()) {
        tokio::time::sleep(POLL).await;
    }
}

/// Whether a process of group `pgid` runs on this machine (a zombie does not).
#[must_use]
pub fn group_runs(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.flatten().any(|e| {
        let Some(process) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else {
            return false;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // state, ppid, pgrp
        fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid)
            && !matches!(fields.first(), Some(&("Z" | "X")))
    })
}

/// Stops what a step of a run whose process died left running: process group `leader`
/// of this machine, if a process of it still runs and the group is still the step's (its
/// leader gone, or the same process). Returns whether it had to.
pub async fn stop_left_over(leader: &crate::lock::ProcessId, grace: Duration) -> bool {
    let pgid = i32::try_from(leader.pid).unwrap_or(0);
    let Some(group) = Pid::from_raw(pgid) else {
        return false;
    };
    let reused = crate::lock::start_ticks(leader.pid).is_some_and(|now| Some(now) != leader.start);
    if reused || !group_runs(pgid) {
        return false;
    }
    signal(group, Signal::TERM);
    if tokio::time::timeout(grace, gone(group)).await.is_err() {
        signal(group, Signal::KILL);
        let _ = tokio::time::timeout(Duration::from_secs(5), gone(group)).await;
    }
    true
}
