//! Store URLs of every linked adapter.

use std::sync::Arc;

use dr_core::repo::{InitOptions, OpenOptions, Repository};
use dr_core::store::{DynStore, StoreUrl};
use dr_core::Result;

/// Opens the store `url` names: `file:///path` (or a bare absolute path),
/// `memory://name`, or `s3://bucket/prefix?options` (see [`dr_aws::S3Config::from_url`]).
pub fn open_store(url: &str) -> Result<DynStore> {
    match StoreUrl::parse(url)? {
        StoreUrl::S3 { url, .. } => Ok(Arc::new(dr_aws::S3Store::from_url(&url)?)),
        StoreUrl::Local(_) | StoreUrl::Memory(_) => dr_core::store::open_url(url),
    }
}

/// Opens the repository at `url`.
pub async fn open_repository(url: &str, options: &OpenOptions) -> Result<Repository> {
    Repository::open(open_store(url)?, options).await
}

/// Creates a repository at `url`.
pub async fn init_repository(url: &str, options: &InitOptions) -> Result<Repository> {
    Repository::init(open_store(url)?, options).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linked_scheme_opens() {
        assert!(open_store("memory://facade").is_ok());
        assert!(open_store("file:///tmp/drkit-facade-test").is_ok());
        let s3 =
            open_store("s3://bucket/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9").unwrap();
        assert_eq!(s3.url(), "s3://bucket/prefix");
        assert!(s3.location().contains("endpoint=http"), "{}", s3.location());
        let e = open_store("ftp://x/y").err().unwrap();
        assert_eq!(e.kind(), dr_core::ErrorKind::InvalidInput);
    }
}
