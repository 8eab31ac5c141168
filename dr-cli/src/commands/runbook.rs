//! `drkit plan`, `drkit run`, `drkit runs`, `drkit runbook actions`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use dr_core::runbook::journal::{Event, EventKind};
use dr_core::runbook::{Keyed, RunOptions, RunOutcome, RunSummary, StopHandle};
use dr_core::Result;
use serde_json::Value;

use crate::args::{Cli, PlanArgs, RunArgs, RunbookCommand, RunsCommand};
use crate::output::Output;

/// Exit status of a run stopped at an approval (resume it once approved).
const EXIT_WAITING: u8 = 4;
/// Exit status of a run that failed or was compensated.
const EXIT_RUN_FAILED: u8 = 3;

/// `--var` values, as the text given: a variable that declares a `type:` reads it so.
fn vars(pairs: &[(String, String)]) -> BTreeMap<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect()
}

/// `drkit plan FILE`.
pub async fn plan(cli: &Cli, a: &PlanArgs, out: Output) -> Result<u8> {
    let (rb, map) = checked_first(&a.file)?;
    let repo = super::open_repo(cli).await?;
    let engine = drkit::engine(&repo);
    let options = RunOptions {
        vars: vars(&a.vars),
        mode: a.mode,
        ..RunOptions::default()
    };
    let plan = engine.plan(&rb, &map, &options).await?;
    out.emit(&plan, || {
        let mut t = format!(
            "plan of {} (lock {:?}); nothing was changed\n",
            plan.runbook, plan.lock
        );
        for s in &plan.steps {
            let needs = if s.needs.is_empty() {
                String::new()
            } else {
                format!(" after {}", s.needs.join(", "))
            };
            let _ = writeln!(t, "  {} [{}]{needs}", s.id, s.action);
            for c in &s.changes {
                let _ = writeln!(t, "      {c}");
            }
            for n in &s.notes {
                let _ = writeln!(t, "      ({n})");
            }
        }
        t.trim_end().to_owned()
    });
    Ok(0)
}

fn event_line(e: &Event) -> Option<String> {
    let t = e.at.strftime("%H:%M:%S");
    Some(match &e.kind {
        EventKind::StepStarted { step, attempt } if *attempt > 1 => {
            format!("{t}  {step}: attempt {attempt}")
        }
        EventKind::StepStarted { step, .. } => format!("{t}  {step}: started"),
        EventKind::StepSucceeded { step, .. } => format!("{t}  {step}: done"),
        EventKind::StepFailed {
            step,
            message,
            will_retry,
            ..
        } => {
            format!(
                "{t}  {step}: FAILED{}: {message}",
                if *will_retry { " (will retry)" } else { "" }
            )
        }
        EventKind::StepSkipped { step, why, .. } => format!("{t}  {step}: skipped ({why})"),
        EventKind::StepWaiting { step, why } => {
            format!("{t}  {step}: waiting for {why}")
        }
        EventKind::StepSkippedByOperator { step, why } => {
            format!("{t}  {step}: skipped by operator ({why})")
        }
        EventKind::StepProcess { step, group } => {
            format!("{t}  {step}: started process group {}", group.pid)
        }
        EventKind::CompensationStarted { step } => format!("{t}  {step}: compensating"),
        EventKind::CompensationDone { step } => format!("{t}  {step}: compensated"),
        EventKind::CompensationFailed { step, message } => {
            format!("{t}  {step}: compensation FAILED: {message}")
        }
        EventKind::Note { step, text } => {
            format!("{t}  {}: {text}", step.as_deref().unwrap_or("note"))
        }
        EventKind::RunInterrupted { why } => format!("{t}  run stopped: {why}"),
        EventKind::RunStarted { .. } | EventKind::RunEnded { .. } => return None,
    })
}

/// The live step list on a terminal: a spinner per running step, a line per finished
/// one, and every other event as a line above them.
pub(crate) struct LiveSteps {
    multi: indicatif::MultiProgress,
    running: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl LiveSteps {
    fn new() -> Self {
        Self {
            multi: indicatif::MultiProgress::new(),
            running: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    fn finish(&self, step: &str, line: String) {
        let bar = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(step);
        match bar {
            Some(bar) => {
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{msg}").expect("a valid template"),
                );
                bar.finish_with_message(line);
            }
            None => {
                let _ = self.multi.println(line);
            }
        }
    }

    fn show(&self, e: &Event) {
        let elapsed = |step: &str| {
            self.running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(step)
                .map_or(String::new(), |b| {
                    format!(" ({:.1}s)", b.elapsed().as_secs_f64())
                })
        };
        match &e.kind {
            EventKind::StepStarted { step, attempt } => {
                let mut running = self
                    .running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let bar = running.entry(step.clone()).or_insert_with(|| {
                    let bar = self.multi.add(indicatif::ProgressBar::new_spinner());
                    bar.set_style(
                        indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                            .expect("a valid template"),
                    );
                    bar.enable_steady_tick(std::time::Duration::from_millis(120));
                    bar
                });
                let again = if *attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                };
                bar.set_message(format!("{step}{again}"));
            }
            EventKind::StepSucceeded { step, .. } => {
                let took = elapsed(step);
                self.finish(step, format!("✓ {step}{took}"));
            }
            EventKind::StepFailed {
                step,
                message,
                will_retry: false,
                ..
            } => {
                let took = elapsed(step);
                self.finish(step, format!("✗ {step}{took}: {message}"));
            }
            EventKind::StepSkipped { step, why, .. } => {
                self.finish(step, format!("- {step}: skipped ({why})"));
            }
            _ => {
                if let Some(l) = event_line(e) {
                    let _ = self.multi.println(l);
                }
            }
        }
    }
}

fn timeline(s: &RunSummary) -> String {
    // "interrupted: interrupted (Ctrl-C)" says it twice: the reason without the outcome.
    let outcome = s.outcome.to_string();
    let reason = s.reason.as_deref().map_or(String::new(), |r| {
        r.strip_prefix(outcome.as_str()).map_or_else(
            || format!(": {r}"),
            |rest| format!(" {}", rest.trim_start()),
        )
    });
    let mut t = format!(
        "run {} of {}: {}{reason} ({:.1}s, started {} by {}@{})\n",
        s.id, s.runbook, s.outcome, s.seconds, s.started, s.by.user, s.by.host
    );
    for st in &s.steps {
        let secs = st.seconds.map_or(String::new(), |x| format!(" {x:.1}s"));
        let attempts = if st.attempts > 1 {
            format!(", {} attempts", st.attempts)
        } else {
            String::new()
        };
        let note = st
            .note
            .as_deref()
            .map_or(String::new(), |n| format!(" — {n}"));
        let _ = writeln!(
            t,
            "  {:<10} {} [{}]{secs}{attempts}{note}",
            st.state, st.id, st.action
        );
    }
    if let Some(rto) = &s.rto {
        let verdict = match rto.met {
            Some(true) => "met",
            Some(false) => "missed",
            None => "not ended",
        };
        let _ = writeln!(
            t,
            "RTO objective {}: {verdict} ({:.1}s{})",
            dr_core::duration::format(std::time::Duration::from_secs_f64(rto.objective_seconds)),
            rto.achieved_seconds,
            rto.measured
                .as_deref()
                .map_or(String::new(), |m| format!(", {m}"))
        );
    }
    if s.outcome == RunOutcome::Waiting {
        let waiting: Vec<String> = s
            .steps
            .iter()
            .filter(|st| st.state == dr_core::runbook::StepState::Waiting)
            .map(|st| format!(" --approve {}", st.id))
            .collect();
        let _ = writeln!(
            t,
            "once approved, go on with: drkit run --resume {}{}",
            s.id,
            waiting.concat()
        );
    }
    if matches!(s.outcome, RunOutcome::Interrupted | RunOutcome::Stopped) {
        let running: Vec<&str> = s
            .steps
            .iter()
            .filter(|st| st.state == dr_core::runbook::StepState::Running)
            .map(|st| st.id.as_str())
            .collect();
        let _ = writeln!(
            t,
            "resumable: drkit run --resume {} (finished steps are not run again{})",
            s.id,
            if running.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} was stopped mid-step: run again on resume if idempotent, else the resume asks for --rerun {} or --skip {}",
                    running.join(", "),
                    running[0],
                    running[0]
                )
            }
        );
    }
    t.trim_end().to_owned()
}

/// How a run's steps are shown: a live list on a terminal, plain lines when piped,
/// nothing with `--json` or `--quiet`.
pub(crate) fn step_display(
    out: Output,
) -> (
    Option<Arc<LiveSteps>>,
    Option<dr_core::runbook::journal::Observer>,
) {
    let live = (!out.json && !out.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| Arc::new(LiveSteps::new()));
    let observer: Option<dr_core::runbook::journal::Observer> = if out.json || out.quiet {
        None
    } else if let Some(live) = live.clone() {
        Some(Arc::new(move |e: &Event| live.show(e)))
    } else {
        Some(Arc::new(|e: &Event| {
            if let Some(l) = event_line(e) {
                // A reader that went away (`| head`, a pager quit) stops the lines, not
                // the run.
                let _ = writeln!(std::io::stderr(), "{l}");
            }
        }))
    };
    (live, observer)
}

/// What a run (or a drill) needs from its command line: the engine, the runbook when
/// one is given, the options, the live display and the signal that may stop it.
pub(crate) struct RunSetup {
    pub engine: dr_core::runbook::Engine,
    pub book: Option<(dr_core::runbook::Runbook, dr_core::runbook::SourceMap)>,
    pub options: RunOptions,
    pub live: Option<Arc<LiveSteps>>,
    signal: CaughtSignal,
}

impl RunSetup {
    /// The exit status for a run that ended `outcome`.
    pub fn exit_status(&self, outcome: RunOutcome) -> u8 {
        match outcome {
            RunOutcome::Succeeded => 0,
            RunOutcome::Waiting => EXIT_WAITING,
            RunOutcome::Interrupted => self.signal.exit_status(),
            RunOutcome::Failed
            | RunOutcome::Compensated
            | RunOutcome::Running
            | RunOutcome::Stopped => EXIT_RUN_FAILED,
        }
    }

    /// Ends the live display's last line.
    pub fn done(&self) {
        if self.live.is_some() {
            // The live list leaves the cursor at the end of its last line.
            eprintln!();
        }
    }
}

/// Reads `a` into a [`RunSetup`]: the runbook checked first, then the repository.
pub(crate) async fn run_setup(cli: &Cli, a: &RunArgs, out: Output) -> Result<RunSetup> {
    let book = a.file.as_deref().map(checked_first).transpose()?;
    let repo = super::open_repo(cli).await?;
    let engine = drkit::engine_with_lock(&repo, a.lock.as_deref()).await?;
    let stop = StopHandle::new();
    let signal = stop_on_signals(&stop)?;
    let (live, observer) = step_display(out);
    // On a terminal an approval asks; piped, the run waits and is resumed later.
    let approver: Option<dr_core::runbook::Approver> =
        if !out.json && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            let live = live.clone();
            Some(Arc::new(move |step: &str, message: &str| {
                // The live display is hidden while a person answers (its spinners would
                // draw over the question), and shown again after; a run stopped meanwhile
                // leaves this thread reading and exits without it.
                if let Some(live) = &live {
                    live.multi
                        .set_draw_target(indicatif::ProgressDrawTarget::hidden());
                }
                eprint!(
                    "\napprove step {step}{}? type yes to go on: ",
                    if message.is_empty() {
                        String::new()
                    } else {
                        format!(" ({message})")
                    }
                );
                let mut answer = String::new();
                let yes = std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes";
                if let Some(live) = &live {
                    live.multi
                        .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
                yes
            }))
        } else {
            None
        };
    let options = RunOptions {
        vars: vars(&a.vars),
        mode: a.mode,
        yes: a.yes,
        approve: a.approve.iter().cloned().collect(),
        rerun: a.rerun.iter().cloned().collect(),
        skip: a.skip.iter().cloned().collect(),
        take_over: a.take_over,
        lock_ttl: a.lock_ttl,
        stop,
        observer,
        approver,
        key: a
            .resume_or_start
            .as_deref()
            .map(|name| dr_core::runbook::RunKey::new(name, a.occurrence.as_deref()))
            .transpose()?,
    };
    Ok(RunSetup {
        engine,
        book,
        options,
        live,
        signal,
    })
}

/// `drkit run FILE` / `drkit run --resume ID` / `drkit run FILE --resume-or-start NAME`.
pub async fn run_runbook(cli: &Cli, a: &RunArgs, out: Output) -> Result<u8> {
    let setup = run_setup(cli, a, out).await?;
    if let (Some(_), Some((rb, map))) = (&a.resume_or_start, &setup.book) {
        let keyed = setup
            .engine
            .resume_or_start(rb, map, &setup.options)
            .await?;
        setup.done();
        let status = keyed.run().map_or(0, |r| setup.exit_status(r.outcome));
        let mut shown = keyed.clone();
        if let Keyed::Started { run } | Keyed::Resumed { run } | Keyed::AlreadyRan { run } =
            &mut shown
        {
            run.events.clear();
        }
        out.emit(&shown, || keyed_text(&keyed));
        return Ok(status);
    }
    let summary = match (&a.resume, &setup.book) {
        (Some(id), _) => setup.engine.resume(id, &setup.options).await?,
        (None, Some((rb, map))) => setup.engine.run(rb, map, &setup.options).await?,
        (None, None) => unreachable!("clap requires one"),
    };
    setup.done();
    let mut shown = summary.clone();
    shown.events.clear();
    out.emit(&shown, || timeline(&summary));
    Ok(setup.exit_status(summary.outcome))
}

/// What a keyed run did, for a person.
pub(crate) fn keyed_text(keyed: &Keyed) -> String {
    match keyed {
        Keyed::Started { run } => timeline(run),
        Keyed::Resumed { run } => format!(
            "resumed the schedule's unfinished run {}\n{}",
            run.id,
            timeline(run)
        ),
        Keyed::Busy {
            run,
            holder,
            purpose,
            until,
        } => format!(
            "nothing done: {holder} runs this schedule now (it holds the lock for {}{} until {until}, renewing it)",
            purpose,
            run.as_ref()
                .map_or(String::new(), |r| format!("; drkit runs show {r}"))
        ),
        Keyed::AlreadyRan { run } => format!(
            "nothing done: this firing already ran as run {} ({}); see drkit runs show {}",
            run.id, run.outcome, run.id
        ),
    }
}

/// The signal that stopped a run, for its exit status (128 + its number, as shells do).
#[derive(Clone, Default)]
struct CaughtSignal(Arc<std::sync::OnceLock<u8>>);

impl CaughtSignal {
    fn exit_status(&self) -> u8 {
        128 + self.0.get().copied().unwrap_or(2)
    }
}

/// Ctrl-C (SIGINT), SIGTERM and SIGHUP stop the run the same way: the steps in flight
/// are stopped, the interruption journaled, the lock released; it can be resumed.
fn stop_on_signals(stop: &StopHandle) -> Result<CaughtSignal> {
    use tokio::signal::unix::{signal, SignalKind};
    let caught = CaughtSignal::default();
    for (kind, name, number) in [
        (SignalKind::interrupt(), "interrupted (Ctrl-C)", 2u8),
        (SignalKind::terminate(), "stopped by SIGTERM", 15),
        (SignalKind::hangup(), "stopped by SIGHUP", 1),
    ] {
        let mut s = signal(kind).map_err(|e| dr_core::Error::io("listening for signals", e))?;
        let (stop, caught) = (stop.clone(), caught.clone());
        tokio::spawn(async move {
            if s.recv().await.is_some() {
                let _ = caught.0.set(number);
                stop.stop(name);
            }
        });
    }
    Ok(caught)
}

/// `drkit runs` and `drkit runs show ID`.
pub async fn runs(
    cli: &Cli,
    c: Option<&RunsCommand>,
    lock: Option<&str>,
    out: Output,
) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let engine = drkit::engine_with_lock(&repo, lock).await?;
    match c {
        None => {
            let all = engine.list().await?;
            out.emit(&all, || {
                if all.is_empty() {
                    return "no runs yet".to_owned();
                }
                all.iter()
                    .map(|s| {
                        format!(
                            "{}  {:<24} {:<20} {}  {:.1}s  {}@{}",
                            s.id,
                            s.runbook,
                            s.outcome.to_string(),
                            s.started,
                            s.seconds,
                            s.by.user,
                            s.by.host
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        Some(RunsCommand::Show { id }) => {
            let s = engine.show(id).await?;
            out.emit(&s, || {
                // The steps, then every event as it happened (take-overs, interruptions,
                // operators' decisions, notes).
                let mut t = timeline(&s);
                for e in &s.events {
                    let line = match &e.kind {
                        EventKind::RunStarted { resumed: true, .. } => Some(format!(
                            "{}  resumed by {}@{}",
                            e.at.strftime("%H:%M:%S"),
                            e.by.user,
                            e.by.host
                        )),
                        _ => event_line(e),
                    };
                    if let Some(l) = line {
                        let _ = write!(t, "\n  {l}");
                    }
                }
                t
            });
        }
    }
    Ok(0)
}

/// The runbook at `file`, checked before any repository is opened: a bad runbook is
/// named as such, whatever the repository's state.
fn checked_first(
    file: &std::path::Path,
) -> Result<(dr_core::runbook::Runbook, dr_core::runbook::SourceMap)> {
    let (rb, map, check) = dr_core::runbook::check_file(file, &drkit::registry())?;
    if check.ok {
        Ok((rb, map))
    } else {
        Err(dr_core::runbook::report_problems(
            &map.origin,
            &check.problems,
        ))
    }
}

/// `drkit runbook actions|schema|check`.
pub fn runbook(c: &RunbookCommand, out: Output) -> Result<u8> {
    match c {
        RunbookCommand::Schema => {
            // The schema is JSON whatever --json says: editors read it as it is.
            let schema = drkit::registry().json_schema();
            crate::output::stdout_line(&serde_json::to_string_pretty(&schema).unwrap_or_default());
            Ok(0)
        }
        RunbookCommand::Check { file } => {
            let (_, _, check) = dr_core::runbook::check_file(file, &drkit::registry())?;
            out.emit(&check, || {
                if check.ok {
                    return format!(
                        "{}: {} ({} step{}): no problem found; nothing live was read",
                        check.file,
                        check.runbook,
                        check.steps,
                        if check.steps == 1 { "" } else { "s" }
                    );
                }
                dr_core::runbook::report_problems(&check.file, &check.problems)
                    .message()
                    .to_owned()
            });
            Ok(u8::from(!check.ok))
        }
        RunbookCommand::Actions { name, markdown } => {
            let r = drkit::registry();
            if *markdown {
                print!("{}", r.reference_markdown());
                return Ok(0);
            }
            let mut specs = r.specs();
            let mut kinds = r.kinds();
            if let Some(name) = name {
                specs.retain(|s| &s.name == name);
                kinds.retain(|k| k == name);
                if specs.is_empty() && kinds.is_empty() {
                    let near = r.closest(name);
                    return Err(dr_core::err!(
                        NotFound,
                        "no action or target kind {name:?} in this build; {}",
                        if near.is_empty() {
                            "list them with `drkit runbook actions`".to_owned()
                        } else {
                            format!("did you mean {}?", near.join(" or "))
                        }
                    ));
                }
            }
            let fields: serde_json::Map<String, serde_json::Value> = kinds
                .iter()
                .filter_map(|k| {
                    let f = r.kind(k)?.fields();
                    Some((k.clone(), serde_json::to_value(f).unwrap_or_default()))
                })
                .collect();
            let doc = serde_json::json!({"actions": specs, "target_kinds": kinds, "target_fields": fields});
            out.emit(&doc, || actions_text(&r, &specs, &kinds));
            Ok(0)
        }
    }
}

/// The actions and target kinds as `drkit runbook actions` prints them.
fn actions_text(
    r: &dr_core::runbook::Registry,
    specs: &[dr_core::runbook::ActionSpec],
    kinds: &[String],
) -> String {
    let mut t = String::new();
    for s in specs {
        let _ = writeln!(
            t,
            "{}{}  {}",
            s.name,
            if s.idempotent {
                ""
            } else {
                " (not idempotent)"
            },
            s.summary
        );
        for p in &s.params {
            let _ = writeln!(
                t,
                "    {}{}: {}  {}",
                p.name,
                if p.required { "" } else { "?" },
                p.ty,
                p.description
            );
        }
        if !s.outputs.is_empty() {
            let secret = r.get(&s.name).map_or(&[][..], |a| a.secret_outputs());
            let names: Vec<String> = s
                .outputs
                .iter()
                .map(|o| {
                    if secret.contains(&o.name.as_str()) {
                        format!("{} (secret)", o.name)
                    } else {
                        o.name.clone()
                    }
                })
                .collect();
            let _ = writeln!(t, "    -> {}", names.join(", "));
        }
    }
    for k in kinds {
        let _ = writeln!(t, "target kind {k}");
        for f in r.kind(k).map(|k| k.fields()).unwrap_or_default() {
            let _ = writeln!(
                t,
                "    {}{}: {}  {}",
                f.name,
                if f.required { "" } else { "?" },
                f.ty,
                f.description
            );
        }
    }
    t.trim_end().to_owned()
}
