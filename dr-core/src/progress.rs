//! Progress reporting for long work; the CLI draws bars, libraries ignore it.

/// Receives progress events from backups, restores and verifies.
pub trait Progress: Send + Sync {
    /// A phase of the work started (e.g. "dump", "globals", "restore").
    fn phase(&self, _name: &str) {}
    /// `raw` bytes of source were processed; `stored_new` of them went to the store as new data.
    fn advance(&self, _raw: u64, _stored_new: u64) {}
    /// Work on one named item (a table, a range of one) started; several may be under way.
    fn item_started(&self, _name: &str) {}
    /// Work on one named item finished.
    fn item_finished(&self, _name: &str) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
