//! The `drkit` command-line tool.

mod args;
mod commands;
mod demo;
mod output;
mod summary;

use std::process::ExitCode;

use clap::Parser;
use dr_core::Error;

use crate::args::{Cli, Command, RepoCommand};
use crate::output::Output;

/// Exit status when a check ran and found problems (as opposed to failing to run).
pub const EXIT_CHECK_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            // kube's client logs a failed request as an error of its own; drkit reports
            // it once, with the context and the fix (DRKIT_LOG=kube_client=debug shows it).
            tracing_subscriber::EnvFilter::try_from_env("DRKIT_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,kube_client=off")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let out = Output {
        json: cli.json,
        quiet: cli.quiet,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(out, &Error::io("starting the async runtime", e)),
    };
    let interrupted = interrupted_note(&cli.command);
    let outcome = runtime.block_on(async {
        let r = match interrupted {
            // Runbooks and drills handle Ctrl-C themselves (journaled, torn down).
            None => run(&cli, out).await,
            Some(note) => tokio::select! {
                r = run(&cli, out) => r,
                _ = tokio::signal::ctrl_c() => Err(dr_core::err!(Cancelled, "interrupted (Ctrl-C): {note}")),
            },
        };
        if r.is_err() && interrupted.is_some() {
            // A stopped backup removes its in-flight marker in the background.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
        r
    });
    if let Some(path) = &cli.result_file {
        let (exit, error) = match &outcome {
            Ok(code) => (*code, None),
            Err(e) if e.kind() == dr_core::ErrorKind::Cancelled => (130, Some(e)),
            Err(e) => (1, Some(e)),
        };
        let doc = output::result_document(
            &command_name(&cli.command),
            exit,
            error,
            output::take_emitted().as_ref(),
        );
        if let Err(e) = std::fs::write(path, doc) {
            eprintln!(
                "drkit: cannot write the result to {} (--result-file): {e}",
                path.display()
            );
        }
    }
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.kind() == dr_core::ErrorKind::Cancelled => {
            report(out, &e);
            ExitCode::from(130)
        }
        Err(e) => report(out, &e),
    }
}

/// The subcommand's name (`run`, `drill`, `backup`), for `--result-file`.
fn command_name(c: &Command) -> String {
    let debug = format!("{c:?}");
    let variant: String = debug
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let mut name = String::new();
    for (i, ch) in variant.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            name.push('-');
        }
        name.push(ch.to_ascii_lowercase());
    }
    name
}

/// What a data command stopped by Ctrl-C leaves behind, for the message it ends with.
fn interrupted_note(c: &Command) -> Option<&'static str> {
    match c {
        Command::Backup(_) | Command::BackupFiles(_) | Command::Basebackup { .. } => Some(
            "no snapshot was saved; the chunks already uploaded are reused by the next backup or removed by prune",
        ),
        Command::RestoreFiles(_) => Some(
            "the folder holds what was written so far; run the restore again with --overwrite",
        ),
        Command::RestoreRedis(_) => Some(
            "the target holds the keys restored so far; run the restore again with --overwrite",
        ),
        Command::Restore(_) => Some(
            "a database the restore was building (<db>_restoring, or <db>_restored with --swap) is left with the comment \"drkit: incomplete restore …\" and the next restore drops it; with --clean the database is partly restored: restore again with --clean",
        ),
        _ => None,
    }
}

async fn run(cli: &Cli, out: Output) -> Result<u8, Error> {
    match &cli.command {
        Command::Repo(RepoCommand::Init(a)) => commands::init(cli, a, out).await,
        Command::Repo(RepoCommand::AddKey(a)) => commands::add_key(cli, a, out).await,
        Command::Repo(RepoCommand::Keys) => commands::keys(cli, out).await,
        Command::Repo(RepoCommand::RemoveKey { id }) => commands::remove_key(cli, id, out).await,
        Command::Backup(a) => commands::backup(cli, a, out).await,
        Command::BackupFiles(a) => commands::files::backup(cli, a, out).await,
        Command::RestoreFiles(a) => commands::files::restore(cli, a, out).await,
        Command::RestoreRedis(a) => commands::redis::restore(cli, a, out).await,
        Command::S3(c) => commands::s3(c, out).await,
        Command::Git(c) => commands::files::git(cli, c, out).await,
        Command::Snapshots => commands::snapshots(cli, out).await,
        Command::Restore(a) => commands::restore(cli, a, out).await,
        Command::Verify(a) => commands::verify(cli, a, out).await,
        Command::WalPush { path } => commands::wal_push(cli, path, out).await,
        Command::WalFetch {
            name,
            dest,
            prefetch,
        } => commands::wal_fetch(cli, name, dest, *prefetch).await,
        Command::Basebackup {
            server,
            archive_timeout,
        } => commands::basebackup(cli, server, *archive_timeout, out).await,
        Command::Pitr(a) => commands::pitr(cli, a, out).await,
        Command::WalVerify => commands::wal_verify(cli, out).await,
        Command::Prune(a) => commands::prune(cli, a, out).await,
        Command::Status(a) => commands::status(cli, a, out).await,
        Command::Copy(a) => commands::copy(cli, a, out).await,
        Command::Store(c) => commands::store(cli, c, out).await,
        Command::Rds(a) => commands::rds(a, out).await,
        Command::Dns(a) => commands::dns(cli, a, out).await,
        Command::Secrets(a) => commands::secrets(a, out).await,
        Command::K8s(a) => commands::k8s(cli, a, out).await,
        Command::Demo(a) => Box::pin(demo::run(a, out)).await,
        Command::Plan(a) => commands::plan(cli, a, out).await,
        Command::Run(a) => commands::run_runbook(cli, a, out).await,
        Command::Drill(a) => commands::drill(cli, a, out).await,
        Command::Report(a) => commands::report(cli, a, out).await,
        Command::Evidence(c) => commands::evidence(c, out),
        Command::Runs { command, lock } => {
            commands::runs(cli, command.as_ref(), lock.as_deref(), out).await
        }
        Command::Runbook(c) => commands::runbook(c, out),
        Command::Sql(c) => commands::sql(c, out).await,
    }
}

/// One line on stderr (or a JSON error on stdout), exit status 1: the message, and what
/// to do about it in the CLI's words.
fn report(out: Output, e: &Error) -> ExitCode {
    let said = match e.hint() {
        Some(h) => format!("{}; {}", e.full_message(), hint(h)),
        None => e.full_message(),
    };
    if out.json {
        let doc = serde_json::json!({ "error": { "kind": e.kind().as_str(), "message": said, "hint": e.hint() } });
        output::stdout_line(&doc.to_string());
    } else {
        eprintln!("error: {said}");
    }
    ExitCode::FAILURE
}

/// What to do about an error, in the CLI's words (its flags and commands).
fn hint(h: &dr_core::Hint) -> String {
    use dr_core::Hint;
    match h {
        Hint::Repository => "give the repository with --repo URL (or DRKIT_REPO)".to_owned(),
        Hint::InitRepository { url } => format!("create one with `drkit repo init --repo {url}`"),
        Hint::Source => "name the source (--source, as `drkit snapshots` shows it) or a snapshot id".to_owned(),
        Hint::Namespace => "check the name, the namespace (-n) and the context (--context)".to_owned(),
        Hint::Var { name } => format!("pass --var {name}=…"),
        Hint::RerunOrSkip { run, step } => format!(
            "resume with `drkit run --resume {run} --rerun {step}` (run it again) or `--skip {step}` (count it as done)"
        ),
        Hint::TakeOver { run } => format!("if its machine is dead: `drkit run --resume {run} --take-over`"),
        Hint::CleanOrSwap => "pass --clean to replace its objects in place, --swap to restore beside it and switch, or name a new database".to_owned(),
        Hint::ListSnapshots => "list them with `drkit snapshots`".to_owned(),
        Hint::VerifyRepository => "run `drkit verify` to list every damaged chunk, and restore from another snapshot or a copy".to_owned(),
        Hint::ListRuns => "list them with `drkit runs`".to_owned(),
        _ => String::new(),
    }
}
