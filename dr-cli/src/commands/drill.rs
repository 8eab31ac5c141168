//! `drkit drill`, `drkit report`, `drkit evidence`.

use dr_core::runbook::evidence::{self, Evidence};
use dr_core::runbook::report;
use dr_core::{Error, Result};
use drkit::drill::DrillOptions;

use crate::args::{Cli, DrillArgs, EvidenceCommand, ReportArgs, ReportFormat};
use crate::output::{stdout_line, Output};

/// `drkit drill FILE` / `drkit drill --resume RUN`: exit 0 when the run succeeded and
/// every objective was met, 3 when it failed or an objective was missed or could not be
/// measured.
pub async fn drill(cli: &Cli, a: &DrillArgs, out: Output) -> Result<u8> {
    let setup = super::run_setup(cli, &a.run, out).await?;
    let o = DrillOptions {
        keep_canary: a.keep_canary,
        report_html: a.report_html.clone(),
        metrics_csv: a.metrics_csv.clone(),
    };
    if let (Some(_), Some((rb, map))) = (&a.run.resume_or_start, &setup.book) {
        let (keyed, outcome) =
            drkit::drill::resume_or_start(&setup.engine, rb, map, setup.options.clone(), &o)
                .await?;
        setup.done();
        let mut doc = serde_json::to_value(&keyed).unwrap_or_default();
        if let Some(run) = doc.get_mut("run").and_then(|r| r.as_object_mut()) {
            run.remove("events");
        }
        if let Some(outcome) = &outcome {
            doc["report"] = serde_json::to_value(&outcome.report).unwrap_or_default();
        }
        out.emit(&doc, || match (&keyed, &outcome) {
            (dr_core::runbook::Keyed::AlreadyRan { run }, Some(outcome)) => format!(
                "nothing done: this firing already ran as run {}\n{}",
                run.id,
                report::text(&outcome.report)
            ),
            (dr_core::runbook::Keyed::Resumed { run }, Some(outcome)) => format!(
                "resumed the schedule's unfinished drill {}\n{}",
                run.id,
                report::text(&outcome.report)
            ),
            (_, Some(outcome)) => report::text(&outcome.report),
            (_, None) => super::runbook::keyed_text(&keyed),
        });
        return Ok(match outcome {
            None => 0,
            Some(outcome) => {
                let status = setup.exit_status(outcome.summary.outcome);
                if status == 0 && !outcome.ok() {
                    crate::EXIT_CHECK_FAILED
                } else {
                    status
                }
            }
        });
    }
    let outcome = match (&a.run.resume, &setup.book) {
        (Some(id), _) => drkit::drill::resume(&setup.engine, id, setup.options.clone(), &o).await?,
        (None, Some((rb, map))) => {
            drkit::drill::run(&setup.engine, rb, map, setup.options.clone(), &o).await?
        }
        (None, None) => unreachable!("clap requires one"),
    };
    setup.done();
    out.emit(&outcome.report, || {
        let mut t = report::text(&outcome.report);
        if let Some(p) = &outcome.report_html {
            t = format!("{t}\n  report: {}", p.display());
        }
        t
    });
    let status = setup.exit_status(outcome.summary.outcome);
    Ok(if status == 0 && !outcome.ok() {
        crate::EXIT_CHECK_FAILED
    } else {
        status
    })
}

fn write_out(path: Option<&std::path::Path>, text: &str) -> Result<()> {
    if let Some(p) = path {
        return std::fs::write(p, text)
            .map_err(|e| Error::io(format!("writing the report to {}", p.display()), e));
    }
    stdout_line(text.trim_end());
    Ok(())
}

/// `drkit report RUN`.
pub async fn report(cli: &Cli, a: &ReportArgs, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let engine = drkit::engine_with_lock(&repo, a.lock.as_deref()).await?;
    let r = engine.report(&a.run).await?;
    let template = a
        .template
        .as_deref()
        .map(|p| {
            std::fs::read_to_string(p).map_err(|e| {
                Error::io(
                    format!("reading the post-incident template {}", p.display()),
                    e,
                )
            })
        })
        .transpose()?;
    let format = if out.json {
        ReportFormat::Json
    } else {
        a.format
    };
    if template.is_some() && format != ReportFormat::Postmortem {
        return Err(dr_core::err!(
            InvalidInput,
            "--template is the post-incident draft's: give it with --format postmortem"
        ));
    }
    let text = match format {
        ReportFormat::Json => serde_json::to_string_pretty(&r).expect("a report serializes"),
        ReportFormat::Md => report::markdown(&r),
        ReportFormat::Html => report::html(&r),
        ReportFormat::Junit => report::junit(&r),
        ReportFormat::Postmortem => report::postmortem(&r, template.as_deref())?,
    };
    write_out(a.output.as_deref(), &text)?;
    if let Some(path) = &a.metrics_csv {
        report::append_metrics(path, &r)?;
    }
    if let (Some(path), Some(key)) = (&a.evidence, &a.sign_key) {
        let key = evidence::read_signing_key(key)?;
        let bundle = engine.evidence(&a.run, &key).await?;
        let json = serde_json::to_string_pretty(&bundle).expect("a bundle serializes");
        std::fs::write(path, json)
            .map_err(|e| Error::io(format!("writing the evidence to {}", path.display()), e))?;
        if !out.json {
            eprintln!(
                "evidence of run {} ({} events, chain head {}) signed into {}",
                bundle.run,
                bundle.events.len(),
                bundle.head,
                path.display()
            );
        }
    }
    if let Some(p) = &a.output {
        if !out.json {
            eprintln!("report of run {} written to {}", r.run, p.display());
        }
    }
    Ok(0)
}

/// `drkit evidence keygen|verify`: verify exits 3 when the bundle does not check.
pub fn evidence(c: &EvidenceCommand, out: Output) -> Result<u8> {
    match c {
        EvidenceCommand::Keygen { out: path } => {
            let public = evidence::generate_key(path)?;
            let doc = serde_json::json!({
                "signing_key": path,
                "public_key_file": format!("{}.pub", path.display()),
                "public_key": public,
            });
            out.emit(&doc, || {
                format!(
                    "signing key written to {} (keep it secret); public key {} in {}.pub",
                    path.display(),
                    public,
                    path.display()
                )
            });
            Ok(0)
        }
        EvidenceCommand::Verify { file, key } => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| Error::io(format!("reading the evidence {}", file.display()), e))?;
            let bundle: Evidence = serde_json::from_str(&text).map_err(|e| {
                dr_core::err!(
                    Corrupt,
                    "{} is not an evidence bundle drkit wrote ({e})",
                    file.display()
                )
            })?;
            let key = evidence::read_public_key(key)?;
            match bundle.verify(&key) {
                Ok(v) => {
                    out.emit(&v, || {
                        format!(
                            "{}: verified: run {} of {}, {} events, chain head {}, signed by {}; {}",
                            file.display(),
                            v.run,
                            v.runbook,
                            v.events,
                            v.head,
                            v.public_key,
                            v.verdicts
                        )
                    });
                    Ok(0)
                }
                Err(e) => {
                    let doc = serde_json::json!({"verified": false, "file": file, "problem": e.message()});
                    out.emit(&doc, || {
                        format!("{}: NOT verified: {}", file.display(), e.message())
                    });
                    Ok(crate::EXIT_CHECK_FAILED)
                }
            }
        }
    }
}
