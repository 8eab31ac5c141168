//! `drkit demo`: runs [`drkit::demo::run`] and prints its report.

use dr_core::Result;
use drkit::demo::{bytes, DemoOptions, DemoReport};

use crate::args::DemoArgs;
use crate::output::Output;

/// `drkit demo`: exit 0 when the restore matched and the drill met its objectives.
pub async fn run(a: &DemoArgs, out: Output) -> Result<u8> {
    let (live, observer) = crate::commands::step_display(out);
    let options = DemoOptions {
        rows: a.rows,
        keep_repo: a.keep_repo,
    };
    let report = Box::pin(drkit::demo::run(&options, &|t| out.note(t), observer)).await?;
    if live.is_some() {
        eprintln!();
    }
    out.emit(&report, || render(&report));
    Ok(if report.ok {
        0
    } else {
        crate::EXIT_CHECK_FAILED
    })
}

fn render(r: &DemoReport) -> String {
    let mut lines = vec![String::new(), "drkit demo report".to_owned()];
    for s in &r.steps {
        lines.push(format!("  {:>7.2}s  {}", s.seconds, s.name));
    }
    lines.push(format!(
        "  database {}; dump {} stored as {} ({:.1} %); a 1 % change stored {} more",
        bytes(r.database_bytes),
        bytes(r.raw_bytes),
        bytes(r.stored_bytes),
        pct(r.stored_bytes, r.raw_bytes),
        bytes(r.incremental_new_bytes)
    ));
    if let Some(repo) = &r.repository {
        lines.push(format!("  repository kept at {repo}"));
    }
    lines.push(if r.restored_matches_original {
        "  restore: OK, the restored database equals the original".into()
    } else {
        "  restore: FAILED, the restored database differs".into()
    });
    let d = &r.drill;
    lines.push(String::new());
    lines.push(dr_core::runbook::report::text(&d.report));
    if let Some(repo) = &d.repository {
        lines.push(format!("  repository kept at {repo}"));
    }
    lines.push(format!("  report: {}", d.report_html.display()));
    lines.push(if r.ok {
        "  result: OK".into()
    } else {
        "  result: FAILED".into()
    });
    lines.join("\n")
}

fn pct(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}
