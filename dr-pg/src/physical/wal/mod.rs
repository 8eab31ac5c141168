//! The WAL archive: PostgreSQL's `archive_command` and `restore_command` through drkit.
//!
//! One object per file under `wal/<timeline>/<name>`, compressed and (when the repository
//! is encrypted) sealed with its key. A push succeeds only once the store holds the file;
//! pushing the same name with the same bytes again succeeds, with different bytes it fails
//! and never overwrites. A fetch of a file never archived fails at once: PostgreSQL probes
//! for files that do not exist as part of normal recovery.

use dr_core::{err, Result};

mod archive;
mod copy;
mod fetch;
mod push;

pub use self::archive::{prune_before, Archived, WalArchive};
pub use self::copy::{copy, WalCopyReport, WalSelection};
pub use self::fetch::fetch;
pub use self::push::{push, Pushed};
pub use dr_core::target::Lsn;

/// Where WAL lives in a repository.
pub const WAL_PREFIX: &str = "wal/";

/// The default (and most common) WAL segment size.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 << 20;

/// The smallest WAL segment size PostgreSQL allows. Parsing a name with it accepts every
/// well-formed name, and the segment numbers it gives keep the names' order (enough for
/// keys, counts and "the newest"; contiguity needs the cluster's real size).
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;

/// Largest file accepted: a 1 GiB segment is PostgreSQL's maximum.
const MAX_FILE: usize = 1 << 30;

/// What an archived file is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalFile {
    /// A full segment: timeline and segment number.
    Segment {
        /// Timeline.
        timeline: u32,
        /// Log id × segments per log id + segment.
        number: u64,
    },
    /// The last, incomplete segment of a timeline that ended (`….partial`).
    Partial {
        /// Timeline.
        timeline: u32,
        /// Segment number.
        number: u64,
    },
    /// A backup history file (`…​.00000028.backup`).
    Backup {
        /// Timeline.
        timeline: u32,
        /// The file's whole name.
        name: String,
    },
    /// A timeline history file (`00000002.history`).
    History {
        /// The timeline it starts.
        timeline: u32,
    },
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` for a segment of `segment_size` bytes.
#[must_use]
pub fn segment_name(timeline: u32, number: u64, segment_size: u64) -> String {
    let per_log = 0x1_0000_0000 / segment_size;
    format!(
        "{timeline:08X}{:08X}{:08X}",
        number / per_log,
        number % per_log
    )
}

fn hex(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
}

impl WalFile {
    /// Parses an archived file name, as PostgreSQL passes it in `%f`.
    pub fn parse(name: &str, segment_size: u64) -> Result<Self> {
        let bad = || {
            err!(InvalidInput, "{name:?} is not a WAL file name (a 24-hex-digit segment, .partial, .backup or .history)")
        };
        let per_log = 0x1_0000_0000 / segment_size;
        let seg = |s: &str| -> Result<(u32, u64)> {
            if s.len() != 24 || !hex(s) {
                return Err(bad());
            }
            let tli = u32::from_str_radix(&s[..8], 16).map_err(|_| bad())?;
            let log = u64::from_str_radix(&s[8..16], 16).map_err(|_| bad())?;
            let n = u64::from_str_radix(&s[16..], 16).map_err(|_| bad())?;
            if n >= per_log {
                return Err(bad());
            }
            Ok((tli, log * per_log + n))
        };
        if let Some(base) = name.strip_suffix(".partial") {
            let (timeline, number) = seg(base)?;
            return Ok(Self::Partial { timeline, number });
        }
        if let Some(t) = name.strip_suffix(".history") {
            if t.len() != 8 || !hex(t) {
                return Err(bad());
            }
            return Ok(Self::History {
                timeline: u32::from_str_radix(t, 16).map_err(|_| bad())?,
            });
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (s, offset) = rest.split_once('.').ok_or_else(bad)?;
            if offset.len() != 8 || !hex(offset) {
                return Err(bad());
            }
            let (timeline, _) = seg(s)?;
            return Ok(Self::Backup {
                timeline,
                name: name.to_owned(),
            });
        }
        let (timeline, number) = seg(name)?;
        Ok(Self::Segment { timeline, number })
    }

    /// The timeline it belongs to.
    #[must_use]
    pub fn timeline(&self) -> u32 {
        match self {
            Self::Segment { timeline, .. }
            | Self::Partial { timeline, .. }
            | Self::Backup { timeline, .. }
            | Self::History { timeline } => *timeline,
        }
    }

    /// The store key for file `name`.
    #[must_use]
    pub fn key(&self, name: &str) -> String {
        format!("{WAL_PREFIX}{:08X}/{name}", self.timeline())
    }
}

/// `1 <tab> 0/3000158 <tab> no recovery target specified` lines → (parent timeline, switch LSN).
fn parse_history(text: &str) -> Vec<(u32, Lsn)> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let tli = parts.next()?.parse().ok()?;
            let lsn = Lsn::parse(parts.next()?).ok()?;
            Some((tli, lsn))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_lsns() {
        assert_eq!(
            Lsn::parse("16/B374D848").unwrap().to_string(),
            "16/B374D848"
        );
        let lsn = Lsn::parse("1/2000028").unwrap();
        assert_eq!(
            segment_name(1, lsn.segment(DEFAULT_SEGMENT_SIZE), DEFAULT_SEGMENT_SIZE),
            "000000010000000100000002"
        );
        assert_eq!(
            WalFile::parse("000000020000000100000002", DEFAULT_SEGMENT_SIZE).unwrap(),
            WalFile::Segment {
                timeline: 2,
                number: 258
            }
        );
        assert_eq!(
            WalFile::parse("00000003.history", DEFAULT_SEGMENT_SIZE)
                .unwrap()
                .timeline(),
            3
        );
        assert!(matches!(
            WalFile::parse(
                "000000010000000000000002.00000028.backup",
                DEFAULT_SEGMENT_SIZE
            )
            .unwrap(),
            WalFile::Backup { timeline: 1, .. }
        ));
        assert!(matches!(
            WalFile::parse("000000010000000000000005.partial", DEFAULT_SEGMENT_SIZE).unwrap(),
            WalFile::Partial {
                timeline: 1,
                number: 5
            }
        ));
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000001FF0",
            "../../etc/passwd",
            "000000010000000000000100",
            "00000001000000000000000g",
        ] {
            assert!(WalFile::parse(bad, DEFAULT_SEGMENT_SIZE).is_err(), "{bad}");
        }
    }

    #[test]
    fn chains_follow_timelines_and_stop_at_gaps() {
        let mut a = WalArchive::default();
        for n in 1..=6 {
            a.segments.entry(1).or_default().insert(n, None);
        }
        // Timeline 2 branched in segment 4.
        a.histories
            .insert(2, vec![(1, Lsn(4 * DEFAULT_SEGMENT_SIZE + 100))]);
        for n in 4..=8 {
            a.segments.entry(2).or_default().insert(n, None);
        }
        let (chain, gap) = a.chain(1, 2, DEFAULT_SEGMENT_SIZE);
        assert_eq!(gap, None);
        assert_eq!(
            chain,
            vec![(1, 2), (1, 3), (2, 4), (2, 5), (2, 6), (2, 7), (2, 8)]
        );
        a.segments.get_mut(&2).unwrap().remove(&6);
        let (chain, gap) = a.chain(1, 2, DEFAULT_SEGMENT_SIZE);
        assert_eq!(chain.last(), Some(&(2, 5)));
        assert_eq!(gap.as_deref(), Some("000000020000000000000006"));
    }
}
