//! Evidence that cannot be edited afterwards: a run's report, its journal objects as
//! stored (the header and every event, each event carrying the hash of the object
//! before it) and the chain's head, signed with an Ed25519 key. Verification names the
//! event that was changed, removed or put out of order, and refuses a report that is not
//! the one the events give.

use std::path::Path;

use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::journal::{chain_hash, Event, RunHeader};
use super::report::Report;
use crate::{err, Error, Result};

/// The format's name, first in every bundle.
pub const FORMAT: &str = "drkit-evidence/1";

/// A signed bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// [`FORMAT`].
    pub format: String,
    /// The run's id.
    pub run: String,
    /// The run's header, as stored.
    pub header: String,
    /// Every event, as stored, in order.
    pub events: Vec<String>,
    /// The hash of the last object (the chain's head).
    pub head: String,
    /// The report the events give, as JSON (checked field for field: nothing may be
    /// added, changed or removed).
    pub report: serde_json::Value,
    /// The signer's public key (hex).
    pub public_key: String,
    /// Ed25519 over [`Evidence::message`] (hex).
    pub signature: String,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verified {
    /// Always true: a bundle that does not check is an error.
    pub verified: bool,
    /// The run.
    pub run: String,
    /// Its runbook.
    pub runbook: String,
    /// Events checked.
    pub events: u64,
    /// The chain's head.
    pub head: String,
    /// The signer's public key (hex).
    pub public_key: String,
    /// When the run started.
    pub started: jiff::Timestamp,
    /// Its verdicts (`RTO met, RPO met`).
    pub verdicts: String,
}

fn text(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| err!(Corrupt, "a journal object is not UTF-8 JSON"))
}

impl Evidence {
    fn message(run: &str, header: &str, head: &str, report: &serde_json::Value) -> Vec<u8> {
        let report = serde_json::to_vec(report).expect("a report serializes");
        format!(
            "{FORMAT}\n{run}\n{}\n{head}\n{}\n",
            chain_hash(header.as_bytes()),
            chain_hash(&report)
        )
        .into_bytes()
    }

    /// A bundle of the run whose journal objects are `header` and `stored`, signed with
    /// `key`.
    pub fn sign(
        header: &(RunHeader, Vec<u8>),
        stored: &[(Event, Vec<u8>)],
        key: &SigningKey,
    ) -> Result<Self> {
        let report = serde_json::to_value(Report::of(&header.0, stored, &header.1))
            .expect("a report serializes");
        let header_text = text(&header.1)?;
        let events = stored
            .iter()
            .map(|(_, b)| text(b))
            .collect::<Result<Vec<_>>>()?;
        let head = chain_hash(stored.last().map_or(&header.1, |(_, b)| b));
        let run = header.0.id.to_string();
        let signature = key.sign(&Self::message(&run, &header_text, &head, &report));
        Ok(Self {
            format: FORMAT.into(),
            run,
            header: header_text,
            events,
            head,
            report,
            public_key: hex::encode(key.verifying_key().to_bytes()),
            signature: hex::encode(signature.to_bytes()),
        })
    }

    /// Checks the bundle against the public key `key`: the chain from the header through
    /// every event, its head, the signature, and that the report is the one the events
    /// give. The first thing wrong is named.
    #[allow(clippy::too_many_lines)] // each way a bundle can be wrong, named in its words
    pub fn verify(&self, key: &VerifyingKey) -> Result<Verified> {
        if self.format != FORMAT {
            return Err(err!(
                InvalidInput,
                "not a drkit evidence bundle (format {:?}, expected {FORMAT})",
                self.format
            ));
        }
        if hex::encode(key.to_bytes()) != self.public_key {
            return Err(err!(
                Corrupt,
                "the bundle was signed with another key ({}), not the one given",
                self.public_key
            ));
        }
        let header: RunHeader = serde_json::from_str(&self.header)
            .map_err(|e| err!(Corrupt, "the run's header in the bundle is unreadable: {e}"))?;
        let mut prev = chain_hash(self.header.as_bytes());
        let mut stored = Vec::with_capacity(self.events.len());
        for (i, raw) in self.events.iter().enumerate() {
            let position = i as u64 + 1;
            let event: Event = serde_json::from_str(raw)
                .map_err(|e| err!(Corrupt, "event {position} in the bundle is unreadable: {e}"))?;
            if event.seq > position {
                let later = self.events[i + 1..]
                    .iter()
                    .filter_map(|raw| serde_json::from_str::<Event>(raw).ok())
                    .any(|e| e.seq == position);
                if later {
                    return Err(err!(
                        Corrupt,
                        "the events were reordered: event {} is at position {position}, event {position} later",
                        event.seq
                    ));
                }
                return Err(err!(
                    Corrupt,
                    "event {position} was removed: the bundle goes from event {} to event {}",
                    position - 1,
                    event.seq
                ));
            }
            if event.seq < position {
                return Err(err!(
                    Corrupt,
                    "the events were reordered: event {} is at position {position}",
                    event.seq
                ));
            }
            if event.prev.as_deref() != Some(prev.as_str()) {
                return Err(err!(
                    Corrupt,
                    "{} was changed: event {position} chains to another hash than its own",
                    if position == 1 {
                        "the run's header".to_owned()
                    } else {
                        format!("event {}", position - 1)
                    }
                ));
            }
            prev = chain_hash(raw.as_bytes());
            stored.push((event, raw.as_bytes().to_vec()));
        }
        if prev != self.head {
            return Err(err!(
                Corrupt,
                "{} was changed, or events were removed from the end: the chain ends at another head than the one signed",
                if self.events.is_empty() {
                    "the run's header".to_owned()
                } else {
                    format!("event {} (the last)", self.events.len())
                }
            ));
        }
        let signature = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b.as_slice()).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| err!(Corrupt, "the bundle's signature is unreadable"))?;
        key.verify(
            &Self::message(&self.run, &self.header, &self.head, &self.report),
            &signature,
        )
        .map_err(|_| {
            err!(
                Corrupt,
                "the signature does not match: the bundle's run, header, head or report was changed after it was signed"
            )
        })?;
        let report = Report::of(&header, &stored, self.header.as_bytes());
        if serde_json::to_value(&report).ok().as_ref() != Some(&self.report) {
            return Err(err!(
                Corrupt,
                "the report is not the one the events give: it was changed"
            ));
        }
        Ok(Verified {
            run: self.run.clone(),
            verified: true,
            runbook: report.runbook.clone(),
            events: self.events.len() as u64,
            head: self.head.clone(),
            public_key: self.public_key.clone(),
            started: report.started,
            verdicts: report.verdicts(),
        })
    }
}

/// How `drkit evidence keygen` labels its files, so one is not taken for the other.
const SIGNING_LABEL: &str = "drkit-ed25519-signing-key";
const PUBLIC_LABEL: &str = "drkit-ed25519-public-key";

/// The key in the file at `path`: `LABEL HEX` (or bare hex); a file with the other label
/// is refused, naming the mistake.
fn read_labeled(
    path: &Path,
    label: &str,
    other: &str,
    what: &str,
    instead: &str,
) -> Result<[u8; 32]> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {what} {}", path.display()), e))?;
    let text = text.trim();
    if text.starts_with(other) {
        return Err(err!(
            InvalidInput,
            "{} is {instead}, not {what}",
            path.display()
        ));
    }
    let hex_text = text.strip_prefix(label).unwrap_or(text).trim();
    hex::decode(hex_text)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .ok_or_else(|| {
            err!(
                InvalidInput,
                "{what} {} is not 32 bytes in hex (drkit evidence keygen writes one)",
                path.display()
            )
        })
}

/// The signing key in the file at `path` (as `drkit evidence keygen` writes it).
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    Ok(SigningKey::from_bytes(&read_labeled(
        path,
        SIGNING_LABEL,
        PUBLIC_LABEL,
        "a signing key",
        "a public key (give the signing key, the file without .pub)",
    )?))
}

/// The public key in the file at `path` (`KEY.pub`).
pub fn read_public_key(path: &Path) -> Result<VerifyingKey> {
    let bytes = read_labeled(
        path,
        PUBLIC_LABEL,
        SIGNING_LABEL,
        "a public key",
        "a signing key, which stays with the signer (give its .pub file)",
    )?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| err!(InvalidInput, "public key {}: {e}", path.display()))
}

/// Writes a new key pair: the signing key to `path` (mode 0600, never overwritten), the
/// public key to `path.pub`. The public key in hex.
pub fn generate_key(path: &Path) -> Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| err!(Io, "no randomness for a key: {e}"))?;
    let key = SigningKey::from_bytes(&seed);
    let public = hex::encode(key.verifying_key().to_bytes());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating signing key {}", path.display()), e))?;
    f.write_all(format!("{SIGNING_LABEL} {}\n", hex::encode(seed.as_ref())).as_bytes())
        .map_err(|e| Error::io(format!("writing signing key {}", path.display()), e))?;
    let public_path = format!("{}.pub", path.display());
    std::fs::write(&public_path, format!("{PUBLIC_LABEL} {public}\n"))
        .map_err(|e| Error::io(format!("writing public key {public_path}"), e))?;
    Ok(public)
}

#[cfg(test)]
mod tests {
    use crate::runbook::drill::{Measure, Verdict};

    /// A bundle's report is read back and compared with the one its events give: every
    /// figure must come back as the same number (serde_json's exact float parsing).
    #[test]
    fn figures_read_back_are_the_figures_written() {
        for i in 1..5000_u32 {
            let x = f64::from(i) / 7.0 * 1e-3 + f64::from(i).sqrt();
            let m = Measure {
                objective_seconds: Some(60.0),
                achieved_seconds: Some(x),
                verdict: Verdict::Met,
                clock: None,
                why: String::new(),
            };
            let back: Measure = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert_eq!(back, m, "{x}");
        }
    }
}
