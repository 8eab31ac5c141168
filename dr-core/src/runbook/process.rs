//! Programs a step runs, stopped as a whole: each runs in its own process group, and a
//! stopped step (its timeout, Ctrl-C, SIGTERM, a lost lock) sends SIGTERM to the group,
//! SIGKILL after a grace period, and returns only once no process of the group is left,
//! so nothing it started still acts while a retry or a compensation runs.

use std::process::ExitStatus;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use rustix::process::{kill_process_group, test_kill_process_group, Pid, Signal};
use tokio_util::sync::CancellationToken;

/// drkit's own secrets, kept from the programs steps run.
pub const WITHHELD_ENV: &[&str] = &["DRKIT_PASSWORD", "DRKIT_PASSWORD_FILE", "DRKIT_KEY_FILE"];

/// How often a stopping group is looked at.
const POLL: Duration = Duration::from_millis(20);

/// How much of each of a program's output streams a step keeps: the last 64 KiB.
pub const KEPT_OUTPUT: usize = 64 << 10;

/// The end of an output stream: its last [`KEPT_OUTPUT`] bytes, and how many came before.
#[derive(Debug, Default)]
pub struct Tail {
    /// The bytes kept.
    pub bytes: Vec<u8>,
    /// How many bytes before them were dropped.
    pub cut: u64,
}

impl Tail {
    /// The text kept, starting with a line that says how much was cut, if any.
    #[must_use]
    pub fn text(&self) -> String {
        let kept = String::from_utf8_lossy(&self.bytes);
        if self.cut == 0 {
            kept.into_owned()
        } else {
            format!("[{} earlier bytes not kept]\n{kept}", self.cut)
        }
    }
}

/// What a program that ran to its end left: its status and the ends of its output.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// The end of its standard output.
    pub stdout: Tail,
    /// The end of its standard error.
    pub stderr: Tail,
}

/// Reads `stream` to its end, keeping only its last [`KEPT_OUTPUT`] bytes: a program
/// that writes gigabytes costs no more memory than one that writes a line.
async fn keep_tail<R: AsyncRead + Unpin>(stream: Option<R>) -> Tail {
    let mut tail = Tail::default();
    let Some(mut stream) = stream else {
        return tail;
    };
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                tail.bytes.extend_from_slice(&chunk[..n]);
                if tail.bytes.len() > 2 * KEPT_OUTPUT {
                    let excess = tail.bytes.len() - KEPT_OUTPUT;
                    tail.bytes.drain(..excess);
                    tail.cut += excess as u64;
                }
            }
        }
    }
    if tail.bytes.len() > KEPT_OUTPUT {
        let excess = tail.bytes.len() - KEPT_OUTPUT;
        tail.bytes.drain(..excess);
        tail.cut += excess as u64;
    }
    tail
}

/// Waits for `child` (the leader of its own process group) and the ends of its output;
/// when `cancel` fires first, stops the whole group and returns `Err(None)` once it is
/// gone.
pub async fn wait_or_stop(
    mut child: tokio::process::Child,
    cancel: &CancellationToken,
    grace: Duration,
) -> Result<Finished, Option<std::io::Error>> {
    let group = child
        .id()
        .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let output = async move {
        let (stdout, stderr, status) =
            tokio::join!(keep_tail(stdout), keep_tail(stderr), child.wait());
        status.map(|status| Finished {
            status,
            stdout,
            stderr,
        })
    };
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
