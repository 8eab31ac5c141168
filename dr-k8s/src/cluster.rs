//! A connection to one cluster: a kubeconfig context, or the in-cluster service account.

use std::path::PathBuf;

use dr_core::{err, Result};
use serde::{Deserialize, Serialize};

/// Which cluster, as the CLI, Python and a runbook target give it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectOptions {
    /// The kubeconfig file (else `KUBECONFIG`, else `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The context (else the kubeconfig's current one).
    pub context: Option<String>,
    /// The namespace operations default to (else the context's, else `default`).
    pub namespace: Option<String>,
    /// Use the pod's service account instead of a kubeconfig.
    pub in_cluster: bool,
}

/// A client of one cluster.
#[derive(Clone)]
pub struct Kubernetes {
    pub(crate) client: kube::Client,
    context: String,
    namespace: String,
}

impl std::fmt::Debug for Kubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Kubernetes(context {:?}, namespace {:?})",
            self.context, self.namespace
        )
    }
}

impl Kubernetes {
    /// Connects as `options` say. An unknown context is refused naming the ones the
    /// kubeconfig has; nothing is sent to the server yet.
    pub async fn connect(options: &ConnectOptions) -> Result<Self> {
        let (config, context) = if options.in_cluster {
            let c = kube::Config::incluster().map_err(|e| {
                err!(InvalidInput, "in-cluster Kubernetes configuration is unavailable ({e}); run inside a pod with a service account, or give a kubeconfig and context")
            })?;
            (c, "in-cluster".to_owned())
        } else {
            let path = options
                .kubeconfig
                .clone()
                .or_else(|| std::env::var_os("KUBECONFIG").map(PathBuf::from))
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kube/config")))
                .ok_or_else(|| err!(InvalidInput, "no kubeconfig: set KUBECONFIG or give one"))?;
            let kubeconfig = kube::config::Kubeconfig::read_from(&path).map_err(|e| {
                err!(
                    InvalidInput,
                    "cannot read kubeconfig {}: {e}; check the path (KUBECONFIG or --kubeconfig)",
                    path.display()
                )
            })?;
            let known: Vec<String> = kubeconfig.contexts.iter().map(|c| c.name.clone()).collect();
            let Some(context) = options
                .context
                .clone()
                .or_else(|| kubeconfig.current_context.clone())
            else {
                return Err(err!(
                    InvalidInput,
                    "kubeconfig {} has no current context; give one of: {}",
                    path.display(),
                    known.join(", ")
                ));
            };
            if !known.contains(&context) {
                return Err(err!(
                    InvalidInput,
                    "kubeconfig {} has no context {context:?}; its contexts are {}",
                    path.display(),
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                ));
            }
            let opts = kube::config::KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            };
            let c = kube::Config::from_custom_kubeconfig(kubeconfig, &opts)
                .await
                .map_err(|e| {
                    err!(
                        InvalidInput,
                        "context {context:?} of kubeconfig {}: {e}",
                        path.display()
                    )
                })?;
            (c, context)
        };
        let namespace = options
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(|e| {
            err!(
                InvalidInput,
                "Kubernetes client for context {context:?}: {e}"
            )
        })?;
        Ok(Self {
            client,
            context,
            namespace,
        })
    }

    /// The context's name (`in-cluster` inside a pod).
    #[must_use]
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The namespace operations default to.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `namespace`, else the default one.
    pub(crate) fn ns<'a>(&'a self, namespace: Option<&'a str>) -> &'a str {
        namespace.unwrap_or(&self.namespace)
    }

    /// The objects of kind `K` in namespace `ns` that `lp` selects; `what` names them in
    /// an error (`pods app=api` → "list pods app=api in namespace shop …").
    pub(crate) async fn list<K>(
        &self,
        ns: &str,
        lp: &kube::api::ListParams,
        what: &str,
    ) -> Result<Vec<K>>
    where
        K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        kube::Api::<K>::namespaced(self.client.clone(), ns)
            .list(lp)
            .await
            .map(|l| l.items)
            .map_err(|e| {
                crate::error::classify(
                    self.context(),
                    "list",
                    &format!("{what} in namespace {ns}"),
                    e,
                )
            })
    }
}
