//! `drkit copy`: snapshots to a second repository.

use dr_core::repo::SnapshotRef;
use dr_core::Result;
use dr_pg::wal::WalSelection;
use dr_pg::CopyOptions;

use crate::args::{Cli, CopyArgs};
use crate::output::{bytes, Output};

/// Copies snapshots, and the WAL first, to `--to`.
pub async fn copy(cli: &Cli, a: &CopyArgs, out: Output) -> Result<u8> {
    let options = CopyOptions {
        to: a.to.clone(),
        init: a.init,
        snapshots: a
            .snapshots
            .iter()
            .map(|s| SnapshotRef::from(s.as_str()))
            .collect(),
        kind: a.kind.clone(),
        tier: a.tier,
        wal: a.wal,
    };
    let source = super::open_repo(cli).await?;
    out.note(&format!(
        "copying to {} with {} WAL",
        options.to,
        match options.wal_selection() {
            WalSelection::All => "all archived",
            WalSelection::Needed => "the needed",
            WalSelection::None => "no",
        }
    ));
    let bar = out.progress(None);
    let result = drkit::copy(&source, &options, None, &*bar).await;
    bar.finish();
    let report = result?;
    out.emit(&report, || {
        let s = &report.copied.snapshots;
        let w = &report.copied.wal;
        format!(
            "copied {} snapshots to {} ({} already there): {} chunks uploaded ({}), {} already present{}; WAL: {} files copied ({}), {} already there",
            s.copied.len(),
            report.destination,
            s.already_there.len(),
            s.chunks_uploaded,
            bytes(s.bytes_uploaded),
            s.chunks_present,
            if s.reencrypted { ", re-encrypted with the destination's keys" } else { "" },
            w.files_copied,
            bytes(w.bytes_copied),
            w.files_present,
        )
    });
    Ok(0)
}
