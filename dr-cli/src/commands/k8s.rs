//! `drkit k8s`: the dr-k8s operations, their options built from kubectl-like flags.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use dr_core::{err, Result};
use dr_k8s::{ConfigMapOptions, ConnectOptions, EnvOptions, Kubernetes, ScaleOptions, Workload};
use serde_json::json;

use crate::args::{
    ConfigMapCommand, K8sArgs, K8sCommand, NamespaceCommand, PodCommand, RolloutCommand,
    SecretCommand,
};
use crate::output::Output;

fn changes(list: &[dr_k8s::Change]) -> String {
    list.iter()
        .map(|c| format!("would change {c}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pairs(items: &[String]) -> Result<BTreeMap<String, String>> {
    items
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| err!(InvalidInput, "{p:?} is not KEY=VALUE"))
        })
        .collect()
}

/// `NAME=VALUE` sets, `NAME-` removes (kubectl's `set env` syntax).
fn env_vars(items: &[String]) -> Result<BTreeMap<String, Option<String>>> {
    items
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), Some(v.to_owned()))),
            None => p
                .strip_suffix('-')
                .map(|k| (k.to_owned(), None))
                .ok_or_else(|| err!(InvalidInput, "{p:?} is neither NAME=VALUE nor NAME-")),
        })
        .collect()
}

/// `drkit k8s render …`: the options from the flags, the manifests printed.
fn render(
    cli: &crate::args::Cli,
    a: &K8sArgs,
    work: &crate::args::RenderWork,
    out: Output,
) -> Result<u8> {
    use crate::args::RenderWork as W;
    use dr_k8s::render::{RenderOptions, Work};
    let (work, c) = match work {
        W::Backup { source_key, common } => (
            Work::Backup {
                source_key: source_key.clone(),
            },
            common,
        ),
        W::Run { file, common } => (
            Work::Run {
                runbook: file.clone(),
            },
            common,
        ),
        W::Drill { file, common } => (
            Work::Drill {
                runbook: file.clone(),
            },
            common,
        ),
        W::Prune { common, args } => (Work::Prune { args: args.clone() }, common),
    };
    let repo = cli.repo.clone().ok_or_else(|| {
        err!(
            InvalidInput,
            "the Jobs need the repository: give --repo URL (or DRKIT_REPO)"
        )
    })?;
    let defaults: RenderOptions = serde_json::from_value(json!({
        "work": work,
        "name": c.name,
        "image": c.image,
        "repo": repo,
        "secret": c.secret,
    }))
    .map_err(|e| err!(InvalidInput, "{e}"))?;
    let o = RenderOptions {
        namespace: a.namespace.clone().unwrap_or(defaults.namespace.clone()),
        schedule: c.schedule.clone(),
        time_zone: c.time_zone.clone(),
        env: pairs(&c.env)?,
        lease: c.lease.clone(),
        lock_ttl: c.lock_ttl,
        deadline: c.deadline,
        keep_finished: c.keep_finished,
        ..defaults
    };
    let rendered = dr_k8s::render::render(&o)?;
    if out.json {
        out.emit(&rendered, String::new);
    } else {
        for n in &rendered.notes {
            eprintln!("note: {n}");
        }
        crate::output::stdout_line(rendered.yaml()?.trim_end());
    }
    Ok(0)
}

/// `drkit k8s …`.
#[allow(clippy::too_many_lines)] // one arm per subcommand, each only converting and printing
pub async fn k8s(cli: &crate::args::Cli, a: &K8sArgs, out: Output) -> Result<u8> {
    if let K8sCommand::Render(work) = &a.command {
        return render(cli, a, work, out);
    }
    let k = Kubernetes::connect(&ConnectOptions {
        kubeconfig: a.kubeconfig.clone(),
        context: a.context.clone(),
        namespace: a.namespace.clone(),
        in_cluster: a.in_cluster,
    })
    .await?;
    match &a.command {
        K8sCommand::Render(_) => unreachable!("rendered before connecting"),
        K8sCommand::Scale {
            workload,
            replicas,
            wait,
            timeout,
            dry_run,
        } => {
            let o = ScaleOptions {
                workload: workload.parse()?,
                replicas: *replicas,
                namespace: None,
                wait: *wait,
                timeout: *timeout,
            };
            if *dry_run {
                let c = k.plan_scale(&o).await?;
                out.emit(&c, || changes(std::slice::from_ref(&c)));
                return Ok(0);
            }
            let s = k.scale(&o).await?;
            out.emit(&s, || {
                format!(
                    "{} scaled from {} to {} replicas in namespace {}{}",
                    s.workload,
                    s.previous,
                    s.replicas,
                    s.namespace,
                    s.ready.map_or(String::new(), |r| format!(" ({r} ready)"))
                )
            });
        }
        K8sCommand::Rollout(RolloutCommand::Undo {
            workload,
            to_revision,
            dry_run,
        }) => {
            let w: Workload = workload.parse()?;
            if *dry_run {
                let c = k.plan_rollout_undo(&w, None, *to_revision).await?;
                out.emit(&c, || changes(std::slice::from_ref(&c)));
                return Ok(0);
            }
            let u = k.rollout_undo(&w, None, *to_revision).await?;
            out.emit(&u, || {
                format!(
                    "{} rolled back from revision {} to the template of revision {} ({} -> {})",
                    u.workload,
                    u.from_revision,
                    u.to_revision,
                    u.image_before.as_deref().unwrap_or("?"),
                    u.image_after.as_deref().unwrap_or("?")
                )
            });
        }
        K8sCommand::Rollout(RolloutCommand::Status { workload, timeout }) => {
            let w: Workload = workload.parse()?;
            let s = k.wait_ready(&w, None, *timeout).await?;
            out.emit(&s, || {
                format!(
                    "{} successfully rolled out ({} of {} ready)",
                    s.workload, s.ready, s.desired
                )
            });
        }
        K8sCommand::Rollout(RolloutCommand::History { workload }) => {
            let h = k.rollout_history(&workload.parse()?, None).await?;
            out.emit(&h, || {
                let mut t = format!(
                    "{} in namespace {}\nREVISION  IMAGES",
                    h.workload, h.namespace
                );
                for r in &h.revisions {
                    let mark = if r.revision == h.current {
                        "  (current)"
                    } else {
                        ""
                    };
                    let _ = write!(t, "\n{:<9} {}{mark}", r.revision, r.images.join(", "));
                }
                t
            });
        }
        K8sCommand::Rollout(RolloutCommand::Restart { workload }) => {
            let r = k.rollout_restart(&workload.parse()?, None).await?;
            out.emit(&r, || {
                format!("{} restarted (restartedAt {})", r.workload, r.restarted_at)
            });
        }
        K8sCommand::SetEnv {
            workload,
            vars,
            container,
            dry_run,
        } => {
            let o = EnvOptions {
                container: container.clone(),
                ..EnvOptions::new(workload.parse()?, env_vars(vars)?)
            };
            if *dry_run {
                let c = k.plan_set_env(&o).await?;
                out.emit(&c, || changes(&c));
                return Ok(0);
            }
            let c = k.set_env(&o).await?;
            out.emit(&c, || {
                if c.changed {
                    format!("{} env updated", c.workload)
                } else {
                    format!("{} env unchanged", c.workload)
                }
            });
        }
        K8sCommand::Configmap(ConfigMapCommand::Set {
            name,
            pairs: kv,
            remove,
            dry_run,
        }) => {
            let o = ConfigMapOptions {
                name: name.clone(),
                namespace: None,
                set: pairs(kv)?,
                remove: remove.clone(),
            };
            if *dry_run {
                let c = k.plan_configmap(&o).await?;
                out.emit(&c, || changes(&c));
                return Ok(0);
            }
            let c = k.configmap_set(&o).await?;
            out.emit(&c, || {
                let old: Vec<String> = c
                    .previous
                    .iter()
                    .map(|(key, v)| {
                        format!(
                            "{key} was {}",
                            v.as_deref()
                                .map_or("absent".to_owned(), |v| json!(v).to_string())
                        )
                    })
                    .collect();
                format!(
                    "configmap {} {}: {}",
                    c.name,
                    if c.changed { "changed" } else { "unchanged" },
                    old.join(", ")
                )
            });
        }
        K8sCommand::Secret(c) => return secret(&k, c, out).await,
        K8sCommand::Namespace(NamespaceCommand::Create { name, labels }) => {
            let name = object_name(name, &["namespace", "namespaces", "ns"])?;
            let labels = labels.iter().cloned().collect();
            let r = k.namespace_create(&name, &labels).await?;
            out.emit(&r, || {
                format!(
                    "namespace {} {}",
                    r.name,
                    if r.changed {
                        "created"
                    } else {
                        "already exists"
                    }
                )
            });
        }
        K8sCommand::Namespace(NamespaceCommand::Delete { name, timeout }) => {
            let name = object_name(name, &["namespace", "namespaces", "ns"])?;
            let r = k.namespace_delete(&name, *timeout).await?;
            out.emit(&r, || {
                format!(
                    "namespace {} {}",
                    r.name,
                    if r.changed {
                        "deleted, and gone"
                    } else {
                        "did not exist"
                    }
                )
            });
        }
        K8sCommand::WaitAvailable { timeout } => {
            let names = k.wait_available(None, *timeout).await?;
            out.emit(&names, || {
                format!(
                    "available: {}",
                    if names.is_empty() {
                        "(no deployments)".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            });
        }
        K8sCommand::Pod(PodCommand::Delete { name, timeout }) => {
            let name = object_name(name, &["pod", "pods", "po"])?;
            let r = k.pod_delete(&name, None, *timeout).await?;
            out.emit(&r, || {
                format!(
                    "pod {} deleted; {} replaced it, ready after {:.1}s",
                    r.deleted, r.replacement, r.seconds
                )
            });
        }
        K8sCommand::Logs { pod, tail } => {
            let name = object_name(pod, &["pod", "pods", "po"])?;
            let r = k.logs(&name, None, *tail).await?;
            out.emit(&r, || {
                r.containers
                    .iter()
                    .map(|(c, lines)| format!("== {c} ==\n{}", lines.join("\n")))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        K8sCommand::Maintenance {
            state,
            ingress,
            service,
            port,
            image,
            dry_run,
        } => {
            let o = dr_k8s::MaintenanceOptions {
                ingress: object_name(ingress, &["ingress", "ingresses", "ing"])?,
                namespace: None,
                service: service.clone(),
                port: *port,
                image: image.clone(),
            };
            let on = state == "on";
            if *dry_run {
                let c = k.plan_maintenance(&o, on).await?;
                out.emit(&c, || changes(std::slice::from_ref(&c)));
                return Ok(0);
            }
            let m = if on {
                k.maintenance_on(&o).await?
            } else {
                k.maintenance_off(&o).await?
            };
            out.emit(&m, || {
                format!(
                    "ingress {} maintenance {}{}: {} -> {}",
                    m.ingress,
                    if m.on { "on" } else { "off" },
                    if m.changed { "" } else { " (already)" },
                    m.before.join(", "),
                    m.after.join(", ")
                )
            });
        }
        K8sCommand::Export {
            namespaces,
            cluster,
            kinds,
            selector,
        } => {
            let repo = super::open_repo(cli).await?;
            let o = dr_k8s::ExportOptions {
                namespace: None,
                namespaces: namespaces.clone(),
                cluster: *cluster,
                kinds: kinds.clone(),
                selector: selector.clone(),
                tags: BTreeMap::new(),
            };
            let e = k.export(&repo, &o).await?;
            out.emit(&e, || {
                let list: Vec<String> = e
                    .objects
                    .iter()
                    .map(|o| match &o.namespace {
                        Some(ns) if e.namespaces.len() > 1 => {
                            format!("  {}/{} (in {ns})", o.kind, o.name)
                        }
                        Some(_) => format!("  {}/{}", o.kind, o.name),
                        None => format!("  {}/{} (cluster-wide)", o.kind, o.name),
                    })
                    .collect();
                format!(
                    "snapshot {} of namespace{} {}: {} objects\n{}",
                    e.snapshot,
                    if e.namespaces.len() > 1 { "s" } else { "" },
                    e.namespaces.join(", "),
                    e.objects.len(),
                    list.join("\n")
                )
            });
        }
        K8sCommand::Apply {
            snapshot,
            files,
            kinds,
            selector,
            source,
            namespace_map,
            dry_run,
            wait,
            timeout,
        } => {
            let repo = if files.is_empty() {
                Some(super::open_repo(cli).await?)
            } else {
                None
            };
            let options = dr_k8s::ApplyOptions {
                snapshot: snapshot.as_deref().map(dr_core::repo::SnapshotRef::from),
                source: source.clone(),
                files: (!files.is_empty()).then(|| files.clone()),
                // -n given with -f: the objects' namespaces must agree, as kubectl's do.
                namespace: if files.is_empty() {
                    None
                } else {
                    a.namespace.clone()
                },
                kinds: kinds.clone(),
                selector: selector.clone(),
                namespace_map: pairs(namespace_map)?,
                dry_run: *dry_run,
                wait: *wait,
                timeout: Some(*timeout),
            };
            let r = k.apply(repo.as_ref(), &options).await?;
            out.emit(&r, || {
                let verb = if r.dry_run { "would apply" } else { "applied" };
                let mut text = match &r.snapshot {
                    Some(s) => format!("{verb} snapshot {s}"),
                    None => format!("{verb} {}", r.files.join(", ")),
                };
                for obj in &r.objects {
                    let place = if obj.namespace.is_empty() {
                        obj.name.clone()
                    } else {
                        format!("{}/{}", obj.namespace, obj.name)
                    };
                    let _ = write!(text, "\n  {} {place}: {}", obj.kind, obj.action);
                    for d in &obj.diff {
                        let _ = write!(text, "\n      {d}");
                    }
                }
                text
            });
        }
    }
    Ok(0)
}

async fn secret(k: &Kubernetes, c: &SecretCommand, out: Output) -> Result<u8> {
    let (o, dry) = match c {
        SecretCommand::Restore { name } => {
            let r = k.secret_restore(name, None).await?;
            out.emit(&r, || {
                format!(
                    "secret {} put back ({} keys); restarted: {}",
                    r.name,
                    r.changed.len(),
                    r.restarted.join(", ")
                )
            });
            return Ok(0);
        }
        SecretCommand::Set {
            name,
            pairs: kv,
            from_env_file,
            create,
            no_restart,
            dry_run,
        } => (
            dr_k8s::SecretOptions {
                name: name.clone(),
                set: pairs(kv)?,
                from_env_file: from_env_file.clone(),
                create: *create,
                restart: !no_restart,
                ..secret_defaults(name)
            },
            *dry_run,
        ),
        SecretCommand::Rotate {
            name,
            keys,
            length,
            no_restart,
            dry_run,
        } => (
            dr_k8s::SecretOptions {
                name: name.clone(),
                rotate: keys.clone(),
                length: *length,
                restart: !no_restart,
                ..secret_defaults(name)
            },
            *dry_run,
        ),
    };
    if dry {
        let c = k.plan_secret(&o).await?;
        out.emit(&c, || changes(std::slice::from_ref(&c)));
        return Ok(0);
    }
    let r = k.secret_set(&o).await?;
    out.emit(&r, || {
        format!(
            "secret {}: {} changed (values not shown; the old ones are kept in {}); restarted: {}",
            r.name,
            r.changed.join(", "),
            r.previous,
            if r.restarted.is_empty() {
                "none".to_owned()
            } else {
                r.restarted.join(", ")
            }
        )
    });
    Ok(0)
}

fn secret_defaults(name: &str) -> dr_k8s::SecretOptions {
    serde_json::from_value(json!({"name": name})).expect("the defaults deserialize")
}

/// `NAME`, or kubectl's `TYPE/NAME` with TYPE one of `kinds` (any case, API group
/// allowed: `ingress.networking.k8s.io/main`).
fn object_name(arg: &str, kinds: &[&str]) -> Result<String> {
    match arg.split_once('/') {
        None => Ok(arg.to_owned()),
        Some((kind, name)) => {
            let bare = kind.split('.').next().unwrap_or(kind).to_ascii_lowercase();
            if kinds.contains(&bare.as_str()) && !name.is_empty() && !name.contains('/') {
                Ok(name.to_owned())
            } else {
                Err(dr_core::err!(
                    InvalidInput,
                    "{arg:?} is not a {}: give NAME or {}/NAME",
                    kinds[0],
                    kinds[0]
                ))
            }
        }
    }
}
