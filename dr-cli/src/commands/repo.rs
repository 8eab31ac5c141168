//! `drkit repo init`, and the key slots: `repo add-key`, `repo keys`, `repo remove-key`.

use std::fmt::Write as _;

use dr_core::repo::{InitOptions, Repository, Secret};
use dr_core::{err, Result};
use serde_json::json;

use crate::args::{AddKeyArgs, Cli, InitArgs};
use crate::output::Output;

/// Creates a repository.
pub async fn init(cli: &Cli, a: &InitArgs, out: Output) -> Result<u8> {
    let url = super::repo_url(cli)?;
    let store = drkit::open_store(url)?;
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
            t.push_str("\nnote: this store does not enforce create-only writes: backups work, but store-based locks will refuse to run (take them on a Kubernetes Lease: --lock k8s:CONTEXT/NAMESPACE/NAME)");
        }
        if !repo.is_encrypted() {
            t.push_str("\nwarning: this repository is not encrypted");
        }
        t
    });
    Ok(0)
}

/// Adds a key slot.
pub async fn add_key(cli: &Cli, a: &AddKeyArgs, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let secret = match (&a.generate_key_file, &a.key_file, &a.password_file) {
        (Some(p), _, _) => Secret::generate_key_file(p)?,
        (_, Some(p), _) => {
            let secret = Secret::KeyFile(p.clone());
            // Read it now: a key file that cannot be read must not become a slot.
            secret.check()?;
            secret
        }
        (_, _, Some(p)) => Secret::from_password_file(p)?,
        _ => {
            return Err(err!(
                InvalidInput,
                "give --generate-key-file, --key-file or --password-file"
            ))
        }
    };
    let slot = repo.add_key(&secret, &a.label).await?;
    out.emit(&slot, || {
        let mut t = format!(
            "added key slot {} ({}) to {}",
            slot.id,
            slot.kind(),
            repo.store().url()
        );
        if let Some(p) = &a.generate_key_file {
            let _ = write!(
                t,
                "\nkey file: {} (keep a copy somewhere safe)",
                p.display()
            );
        }
        t
    });
    Ok(0)
}

/// Lists the key slots.
pub async fn keys(cli: &Cli, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    let slots = repo.key_slots().await?;
    out.emit(&slots, || {
        let mut t = format!(
            "{}: opened by its own secret{}",
            repo.store().url(),
            if slots.is_empty() { " only" } else { " and:" }
        );
        for s in &slots {
            let _ = write!(
                t,
                "\n  {}  {:<10}  added {}  {}",
                s.id,
                s.kind(),
                s.created,
                s.label
            );
        }
        t
    });
    Ok(0)
}

/// Removes a key slot.
pub async fn remove_key(cli: &Cli, id: &str, out: Output) -> Result<u8> {
    let repo = super::open_repo(cli).await?;
    repo.remove_key(id).await?;
    out.emit(&json!({"removed": id}), || format!("removed key slot {id}"));
    Ok(0)
}
