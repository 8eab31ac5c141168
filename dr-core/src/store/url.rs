//! Store URLs: `file:///path`, `memory://name`, `s3://bucket/prefix`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{DynStore, LocalStore, MemoryStore};
use crate::{err, Result};

/// A parsed store location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A folder on this machine.
    Local(PathBuf),
    /// A named in-memory store, shared within this process.
    Memory(String),
    /// An S3 bucket and key prefix; opened by the AWS adapter.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
        /// The whole URL, for options in its query string.
        url: String,
    },
}

impl StoreUrl {
    /// Parses a store URL. A bare absolute path is taken as a local folder.
    pub fn parse(input: &str) -> Result<Self> {
        let input = input.trim();
        if input.starts_with('/') {
            return Ok(Self::Local(PathBuf::from(input)));
        }
        let hint = "use file:///absolute/path, memory://name or s3://bucket/prefix";
        let parsed = url::Url::parse(input).map_err(|e| {
            err!(
                InvalidInput,
                "invalid repository URL {input:?}: {e}; {hint}"
            )
        })?;
        match parsed.scheme() {
            "file" => {
                if parsed
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(err!(
                        InvalidInput,
                        "invalid repository URL {input:?}: file URLs name a local folder (file:///path, three slashes)"
                    ));
                }
                let path = parsed.to_file_path().map_err(|()| {
                    err!(
                        InvalidInput,
                        "invalid repository URL {input:?}: not an absolute path; {hint}"
                    )
                })?;
                Ok(Self::Local(path))
            }
            "memory" => Ok(Self::Memory(
                parsed.host_str().unwrap_or_default().to_owned() + parsed.path(),
            )),
            "s3" => {
                let bucket = parsed.host_str().unwrap_or_default().to_owned();
                if bucket.is_empty() {
                    return Err(err!(
                        InvalidInput,
                        "invalid repository URL {input:?}: no bucket; use s3://bucket/prefix"
                    ));
                }
                let prefix = parsed.path().trim_matches('/').to_owned();
                Ok(Self::S3 {
                    bucket,
                    prefix,
                    url: input.to_owned(),
                })
            }
            other => Err(err!(
                InvalidInput,
                "unsupported repository URL scheme {other:?} in {input:?}; {hint}"
            )),
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local(p) => write!(f, "file://{}", p.display()),
            Self::Memory(n) => write!(f, "memory://{n}"),
            Self::S3 { bucket, prefix, .. } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// Opens the store a URL names, of the schemes dr-core itself has (`file://`,
/// `memory://`). Other schemes (`s3://`) belong to adapters: open them through the
/// `drkit` facade (`drkit::open_store`), which links every adapter.
pub fn open_url(input: &str) -> Result<DynStore> {
    let url = StoreUrl::parse(input)?;
    match &url {
        StoreUrl::Local(path) => Ok(Arc::new(LocalStore::new(path.clone()))),
        StoreUrl::Memory(name) => Ok(MemoryStore::named(name)),
        StoreUrl::S3 { .. } => Err(err!(
            Unsupported,
            "S3 repositories ({url}) are opened by the dr-aws adapter: use drkit::open_store, which links it"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_schemes() {
        assert_eq!(
            StoreUrl::parse("file:///var/b").unwrap(),
            StoreUrl::Local("/var/b".into())
        );
        assert_eq!(
            StoreUrl::parse("/var/b").unwrap(),
            StoreUrl::Local("/var/b".into())
        );
        assert_eq!(
            StoreUrl::parse("memory://x").unwrap(),
            StoreUrl::Memory("x".into())
        );
        match StoreUrl::parse("s3://bkt/a/b/").unwrap() {
            StoreUrl::S3 { bucket, prefix, .. } => {
                assert_eq!((bucket.as_str(), prefix.as_str()), ("bkt", "a/b"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_urls_say_what_to_use() {
        for bad in [
            "ftp://x/y",
            "relative/path",
            "file://host/x",
            "s3:///nobucket",
        ] {
            let e = StoreUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }
}
