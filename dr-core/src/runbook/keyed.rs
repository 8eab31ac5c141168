//! Runs keyed by a schedule (`drkit run --resume-or-start NAME`): what a Kubernetes Job
//! or a cron line runs. A run of the schedule that stopped half-way (an evicted pod, a
//! drained node, SIGTERM, kill -9) is finished by the next start instead of begun again,
//! and a firing that runs twice — two Jobs at once, or a retried Job — runs once.

use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::engine::{Engine, RunOptions};
use super::journal::{EventKind, RunHeader};
use super::model::Runbook;
use super::parse::SourceMap;
use super::state::{RunId, RunSummary};
use crate::lock::{Lease, Liveness, LockRequest};
use crate::{err, ErrorKind, Result};

/// The schedule a run belongs to, and which firing of it started the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunKey {
    /// The schedule (a CronJob's name, a cron line's): its unfinished run is resumed
    /// rather than a new one started.
    pub name: String,
    /// One firing of the schedule (a Job's name): a firing whose run has ended is not
    /// run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurrence: Option<String>,
}

impl RunKey {
    /// A key, checked: names are non-empty printable text of at most 253 characters.
    pub fn new(name: &str, occurrence: Option<&str>) -> Result<Self> {
        for (what, v) in [("schedule name", Some(name)), ("occurrence", occurrence)] {
            let Some(v) = v else { continue };
            if v.trim().is_empty() || v.len() > 253 || v.chars().any(char::is_control) {
                return Err(err!(
                    InvalidInput,
                    "{what} {v:?} must be 1 to 253 printable characters (e.g. the CronJob's name, and the Job's name for the occurrence)"
                ));
            }
        }
        Ok(Self {
            name: name.to_owned(),
            occurrence: occurrence.map(str::to_owned),
        })
    }
}

/// What [`Engine::resume_or_start`] did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "did", rename_all = "snake_case")]
pub enum Keyed {
    /// The schedule had no unfinished run: a new one ran.
    Started {
        /// The run.
        run: RunSummary,
    },
    /// The schedule's unfinished run was resumed and went on.
    Resumed {
        /// The run.
        run: RunSummary,
    },
    /// Another process holds the lock and renews it: the schedule runs elsewhere now,
    /// and nothing was done here.
    Busy {
        /// The run it holds the lock for, when the lock says.
        run: Option<RunId>,
        /// Who holds it.
        holder: String,
        /// What for (`run 0193…`, `prune`).
        purpose: String,
        /// Until when, unless renewed.
        until: Timestamp,
    },
    /// This firing's run has already ended: nothing was run again.
    AlreadyRan {
        /// That run.
        run: RunSummary,
    },
}

impl Keyed {
    /// The run started, resumed or found ended; `None` when busy.
    #[must_use]
    pub fn run(&self) -> Option<&RunSummary> {
        match self {
            Self::Started { run } | Self::Resumed { run } | Self::AlreadyRan { run } => Some(run),
            Self::Busy { .. } => None,
        }
    }
}

impl Engine {
    /// Resumes the unfinished run of `options.key`'s schedule if there is one, or starts
    /// a new run of `rb`: unless that firing's run already ended, or another process runs
    /// the schedule now (it holds the lock and renews it). A run whose holder died with
    /// the lock (kill -9) is taken over once its lease runs out unrenewed, watched for
    /// at most one lease length. Of several processes starting at once, one runs; the
    /// others find the lock held and say so.
    pub async fn resume_or_start(
        &self,
        rb: &Runbook,
        map: &SourceMap,
        options: &RunOptions,
    ) -> Result<Keyed> {
        let key = options.key.clone().ok_or_else(|| {
            err!(
                InvalidInput,
                "a keyed run needs a schedule name (--resume-or-start NAME)"
            )
        })?;
        for _ in 0..5 {
            let newest = self.newest_of(&key.name).await?;
            if let Some((header, summary)) = &newest {
                if summary.outcome.resumable() {
                    if let Some(busy) = self.busy(header).await? {
                        return Ok(busy);
                    }
                    // Its holder let go: it may have ended the run as it went.
                    let mut now = self.journals.summary(&header.id).await?;
                    self.settle_outcome(header, &mut now).await;
                    if !now.outcome.resumable() {
                        continue;
                    }
                    tracing::info!(run = %header.id, schedule = %key.name, "resuming the schedule's unfinished run");
                    return self
                        .resume(header.id.as_str(), options)
                        .await
                        .map(|run| Keyed::Resumed { run });
                }
                if let Some(occurrence) = &key.occurrence {
                    if self.ran_by(header, occurrence).await? {
                        return Ok(Keyed::AlreadyRan {
                            run: summary.clone(),
                        });
                    }
                }
            }
            let id = RunId::new();
            let ready = self.ready_to_start(rb, map, options, &id).await?;
            let lock = (self.locks)(rb.lock_name())?;
            let lease = match lock
                .acquire(&LockRequest::new(format!("run {id}"), options.lock_ttl))
                .await
            {
                Ok(lease) => lease,
                Err(e) if e.kind() == ErrorKind::Conflict => match lock.holder().await? {
                    Some(held) if !held.expired() => return Ok(busy(held)),
                    // Released meanwhile: look again.
                    _ => continue,
                },
                Err(e) => return Err(e),
            };
            // Under the lock, look again: a run of the schedule may have begun or ended
            // between the first look and the lock.
            let again = self.newest_of(&key.name).await;
            let unchanged = matches!(&again, Ok(a) if a.as_ref().map(|(h, _)| &h.id) == newest.as_ref().map(|(h, _)| &h.id));
            if !unchanged {
                let _ = lock.release(&lease).await;
                again?;
                continue;
            }
            tracing::info!(run = %id, schedule = %key.name, "starting a run of the schedule");
            return self
                .start_locked(rb, map, options, id, ready, lock, lease)
                .await
                .map(|run| Keyed::Started { run });
        }
        Err(err!(
            Conflict,
            "the runs of schedule {:?} kept changing while drkit looked (other processes starting and ending runs of it); try again",
            key.name
        ))
    }

    /// The newest run of schedule `name`, its outcome settled (running, or stopped).
    async fn newest_of(&self, name: &str) -> Result<Option<(RunHeader, RunSummary)>> {
        for id in self.journals.run_ids().await?.into_iter().rev() {
            let header = self.journals.header(&id).await?;
            if header.key.as_ref().is_none_or(|k| k.name != name) {
                continue;
            }
            let mut summary = RunSummary::fold(&header, self.journals.events(&id).await?);
            self.settle_outcome(&header, &mut summary).await;
            return Ok(Some((header, summary)));
        }
        Ok(None)
    }

    /// Whether firing `occurrence` started or resumed run `header`.
    async fn ran_by(&self, header: &RunHeader, occurrence: &str) -> Result<bool> {
        if header.key.as_ref().and_then(|k| k.occurrence.as_deref()) == Some(occurrence) {
            return Ok(true);
        }
        Ok(self.journals.events(&header.id).await?.iter().any(|e| {
            matches!(&e.kind, EventKind::RunStarted { occurrence: Some(o), .. } if o == occurrence)
        }))
    }

    /// Whether the holder of the lock of unfinished run `header` is alive: a holder
    /// that renews its lease is; one whose lease runs out unrenewed (its process was
    /// killed) is not, and its run can be taken over. Watches for at most one lease.
    async fn busy(&self, header: &RunHeader) -> Result<Option<Keyed>> {
        let lock = (self.locks)(header.runbook.lock_name())?;
        let Some(first) = lock.holder().await? else {
            return Ok(None);
        };
        if first.expired() {
            return Ok(None);
        }
        if first.purpose != format!("run {}", header.id) {
            // Something else holds the lock (another runbook under the same name, a prune).
            return Ok(Some(busy(first)));
        }
        if first.process.as_ref().map(crate::lock::ProcessId::liveness) == Some(Liveness::Gone) {
            return Ok(None);
        }
        loop {
            let left = first
                .expires
                .duration_since(Timestamp::now())
                .unsigned_abs()
                .min(Duration::from_secs(1));
            tokio::time::sleep(left + Duration::from_millis(50)).await;
            match lock.holder().await? {
                None => return Ok(None),
                Some(h) if h.expired() => return Ok(None),
                Some(h) if h.token != first.token || h.expires > first.expires => {
                    return Ok(Some(busy(h)));
                }
                Some(_) => {}
            }
        }
    }
}

fn busy(held: Lease) -> Keyed {
    Keyed::Busy {
        run: held.purpose.strip_prefix("run ").map(RunId::from),
        holder: held.holder,
        purpose: held.purpose,
        until: held.expires,
    }
}
