//! `drkit copy`: snapshots to a second repository.

use std::collections::BTreeMap;

use dr_core::repo::{OpenOptions, Repository, Secret, Snapshot};
use dr_core::Result;
use dr_pg::wal::WalSelection;

use crate::args::{Cli, CopyArgs, Tier};
use crate::output::{bytes, Output};

/// The destination's secret: DRKIT_TO_PASSWORD / _PASSWORD_FILE / _KEY_FILE when the copy
/// has its own, else the source's.
fn destination_secret() -> Result<Option<Secret>> {
    match Secret::from_env_prefixed("DRKIT_TO_")? {
        Some(s) => Ok(Some(s)),
        None => Secret::from_env(),
    }
}

fn period(s: &Snapshot, tier: Tier) -> String {
    let d = s.finished_at.to_zoned(jiff::tz::TimeZone::UTC).date();
    match tier {
        Tier::Daily => d.to_string(),
        Tier::Weekly => {
            let w = d.iso_week_date();
            format!("{}-W{:02}", w.year(), w.week())
        }
        Tier::Monthly => format!("{}-{:02}", d.year(), d.month()),
        Tier::Yearly => d.year().to_string(),
    }
}

/// Copies snapshots, and the WAL first, to `--to`.
pub async fn copy(cli: &Cli, a: &CopyArgs, out: Output) -> Result<u8> {
    let source = super::open_repo(cli).await?;
    let dest_store = dr_core::store::open_url(&a.to)?;
    let dest = if a.init {
        source.init_replica(dest_store).await?
    } else {
        let mut o = OpenOptions::from_env();
        o.secret = destination_secret()?;
        Repository::open(dest_store, &o).await?
    };
    let mut chosen: Vec<Snapshot> = if a.snapshots.is_empty() {
        source.snapshots().await?
    } else {
        let mut v = Vec::new();
        for r in &a.snapshots {
            v.push(source.find_snapshot(r).await?);
        }
        v
    };
    if let Some(kind) = &a.kind {
        chosen.retain(|s| s.kind.as_str() == kind);
    }
    if let Some(tier) = a.tier {
        let mut newest: BTreeMap<(String, String, String), Snapshot> = BTreeMap::new();
        for s in chosen {
            let key = (s.source.clone(), s.kind.to_string(), period(&s, tier));
            if newest
                .get(&key)
                .is_none_or(|n| n.finished_at < s.finished_at)
            {
                newest.insert(key, s);
            }
        }
        chosen = newest.into_values().collect();
        chosen.sort_by_key(|s| s.finished_at);
    }
    let selection: WalSelection = match &a.wal {
        Some(w) => w.parse()?,
        None => WalSelection::default_for(
            a.snapshots.is_empty() && a.tier.is_none() && a.kind.is_none(),
        ),
    };
    out.note(&format!(
        "copying {} snapshots and {} WAL from {} to {}",
        chosen.len(),
        match selection {
            WalSelection::All => "all archived",
            WalSelection::Needed => "the needed",
            WalSelection::None => "no",
        },
        source.store().url(),
        dest.store().url()
    ));
    let bar = out.progress(None);
    let result = dr_pg::copy(&source, &dest, &chosen, selection, &*bar).await;
    bar.finish();
    let report = result?;
    out.emit(&report, || {
        let s = &report.snapshots;
        format!(
            "copied {} snapshots to {} ({} already there): {} chunks uploaded ({}), {} already present{}; WAL: {} files copied ({}), {} already there",
            s.copied.len(),
            dest.store().url(),
            s.already_there.len(),
            s.chunks_uploaded,
            bytes(s.bytes_uploaded),
            s.chunks_present,
            if s.reencrypted { ", re-encrypted with the destination's keys" } else { "" },
            report.wal.files_copied,
            bytes(report.wal.bytes_copied),
            report.wal.files_present,
        )
    });
    Ok(0)
}
