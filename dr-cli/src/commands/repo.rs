//! `drkit repo init`.

use std::fmt::Write as _;

use dr_core::repo::{InitOptions, Repository, Secret};
use dr_core::{err, Result};
use serde_json::json;

use crate::args::{Cli, InitArgs};
use crate::output::Output;

/// Creates a repository.
pub async fn init(cli: &Cli, a: &InitArgs, out: Output) -> Result<u8> {
    let url = super::repo_url(cli)?;
    let store = dr_core::store::open_url(url)?;
    let secret = if a.no_encryption {
        None
    } else if let Some(path) = &a.generate_key_file {
        Some(Secret::generate_key_file(path)?)
    } else {
        Some(Secret::from_env()?.ok_or_else(|| {
            err!(InvalidInput, "an encrypted repository needs a secret: set DRKIT_PASSWORD, DRKIT_PASSWORD_FILE or DRKIT_KEY_FILE, pass --generate-key-file PATH, or --no-encryption")
        })?)
    };
    let options = InitOptions {
        secret,
        compression_level: a.compression_level,
        ..InitOptions::unencrypted()
    };
    let repo = Repository::init(store, &options).await?;
    let c = repo.config();
    let doc = json!({
        "repository": repo.store().url(),
        "id": c.id,
        "format": c.format,
        "encrypted": repo.is_encrypted(),
        "key_file": a.generate_key_file,
        "chunker": c.chunker,
        "compression_level": c.compression_level,
        "create_only": c.create_only,
    });
    out.emit(&doc, || {
        let mut t = format!("created repository {} at {}", c.id, repo.store().url());
        if let Some(p) = &a.generate_key_file {
            let _ = write!(t, "\nkey file: {} (keep a copy somewhere safe: without it the backups cannot be read)", p.display());
        }
        if c.create_only == Some(dr_core::repo::CreateOnly::Ignored) {
            t.push_str("\nnote: this store does not enforce create-only writes: backups work, but store-based locks will refuse to run (use a Kubernetes Lease)");
        }
        if !repo.is_encrypted() {
            t.push_str("\nwarning: this repository is not encrypted");
        }
        t
    });
    Ok(0)
}
