//! Copies to a repository at another URL (another region or provider).

use std::sync::Arc;

use dr_core::progress::Progress;
use dr_core::repo::{Repository, Secret};
use dr_core::Result;
use dr_pg::{CopyOptions, CopyOutcome};

/// Copies what `options` selects from `source` to the repository at `options.to` (any
/// store this build links), archived WAL first; see [`dr_pg::copy_to`].
pub async fn copy(
    source: &Repository,
    options: &CopyOptions,
    secret: Option<Secret>,
    progress: &dyn Progress,
) -> Result<CopyOutcome> {
    let open: dr_pg::OpenStore = Arc::new(crate::open_store);
    dr_pg::copy_to(source, options, secret, &open, progress).await
}
