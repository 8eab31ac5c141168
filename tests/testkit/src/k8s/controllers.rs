//! The controllers, one step per tick: Deployments keep a ReplicaSet per pod template
//! (revision annotations, renumbered when an old template comes back, as the real
//! controller does) and scale them one replica per tick; ReplicaSets and StatefulSets own
//! Pods (a deleted Pod is replaced); StatefulSets keep ControllerRevisions; a new Pod is
//! ready one tick after it was made; namespaces being deleted lose their content; objects
//! whose controller is gone are collected. In "stuck" mode nothing progresses.

use serde_json::{json, Value};

use super::kinds::{find, Kind};
use super::state::{resource_key, Key, State};

const REVISION: &str = "deployment.kubernetes.io/revision";

fn kind(group: &str, plural: &str) -> &'static Kind {
    find(group, "v1", plural).expect("a served kind")
}

#[must_use]
/// A stable hash of a pod template (keys sorted, unset fields ignored), as a short name
/// suffix.
pub fn template_hash(template: &Value) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                // Nulls and empty maps or lists are what typed clients add for unset
                // fields (kubectl's `creationTimestamp: null`, `resources: {}`).
                let empty = |v: &Value| {
                    v.is_null()
                        || v.as_object().is_some_and(serde_json::Map::is_empty)
                        || v.as_array().is_some_and(Vec::is_empty)
                };
                let mut keys: Vec<&String> = m
                    .iter()
                    .filter(|(_, v)| !empty(v))
                    .map(|(k, _)| k)
                    .collect();
                keys.sort();
                out.push('{');
                for k in keys {
                    out.push_str(k);
                    out.push(':');
                    canonical(&m[k], out);
                    out.push(',');
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for x in a {
                    canonical(x, out);
                    out.push(',');
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(template, &mut s);
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let alphabet = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = h;
    (0..9)
        .map(|_| {
            let c = alphabet[(n % 27) as usize] as char;
            n /= 27;
            c
        })
        .collect()
}

fn owner_ref(owner: &Value) -> Value {
    json!([{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
    }])
}

fn revision(o: &Value) -> i64 {
    o["metadata"]["annotations"][REVISION]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn ns_name(o: &Value) -> (String, String) {
    (
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

fn write(state: &mut State, k: &Kind, obj: Value) {
    let (ns, name) = ns_name(&obj);
    let mut obj = obj;
    if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("resourceVersion");
    }
    let _ = state.update(k, &ns, &name, obj, false, false);
}

fn write_status(state: &mut State, k: &Kind, obj: &Value, status: &Value) {
    let status = status.clone();
    if obj["status"] == status {
        return;
    }
    let (ns, name) = ns_name(obj);
    let _ = state.update(
        k,
        &ns,
        &name,
        json!({"metadata": {}, "status": status}),
        false,
        true,
    );
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// One tick: every controller takes one step, on the server's shared state, taking the
/// lock once per object so that requests are answered between the controllers' steps
/// (as a real API server and its controllers are separate processes).
pub fn tick_shared(shared: &std::sync::Mutex<State>) {
    let lock = || shared.lock().expect("state");
    {
        let mut state = lock();
        namespaces(&mut state);
        if std::mem::take(&mut state.removed) {
            collect_orphans(&mut state);
        }
        if state.faults.stuck {
            return;
        }
        pods_become_ready(&mut state);
    }
    for (plural, step) in [
        ("deployments", deployment as fn(&mut State, &Value)),
        ("replicasets", replica_set),
        ("statefulsets", stateful_set),
    ] {
        let k = kind("apps", plural);
        let rk = resource_key(k);
        let keys: Vec<Key> = lock()
            .objects
            .range((rk.clone(), String::new(), String::new())..)
            .take_while(|((r, _, _), _)| *r == rk)
            .map(|(key, _)| key.clone())
            .collect();
        for key in keys {
            let mut state = lock();
            let Some(obj) = state.objects.get(&key) else {
                continue;
            };
            let uid = obj["metadata"]["uid"].as_str().unwrap_or_default();
            let rv = obj["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default();
            if state.settled.get(uid).is_some_and(|seen| seen == rv) {
                continue;
            }
            let (uid, rv, obj) = (uid.to_owned(), rv.to_owned(), obj.clone());
            let before = state.rv;
            step(&mut state, &obj);
            if state.rv == before {
                state.settled.insert(uid, rv);
            }
        }
    }
}

fn namespaces(state: &mut State) {
    let nsk = kind("", "namespaces");
    for ns in state.list(nsk, None) {
        if ns["status"]["phase"] != "Terminating" {
            continue;
        }
        let name = ns["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let inside: Vec<Key> = state
            .objects
            .keys()
            .filter(|(_, n, _)| *n == name)
            .cloned()
            .collect();
        for k in &inside {
            state.remove(k);
        }
        state.remove(&(resource_key(nsk), String::new(), name));
    }
}

fn collect_orphans(state: &mut State) {
    let uids: std::collections::BTreeSet<String> = state
        .objects
        .values()
        .filter_map(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
        .collect();
    let orphans: Vec<Key> = state
        .objects
        .iter()
        .filter(|(_, o)| {
            o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| {
                    refs.iter().any(|r| {
                        r["controller"] == true
                            && !uids.contains(r["uid"].as_str().unwrap_or_default())
                    })
                })
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in &orphans {
        state.remove(k);
    }
}

fn pods_become_ready(state: &mut State) {
    let pk = kind("", "pods");
    let ts = state.timestamp();
    let rk = resource_key(pk);
    let pending: Vec<Value> = state
        .objects
        .range((rk.clone(), String::new(), String::new())..)
        .take_while(|((r, _, _), _)| *r == rk)
        .filter(|(_, p)| p["status"]["phase"] == "Pending")
        .map(|(_, p)| p.clone())
        .collect();
    for p in pending {
        let containers: Vec<Value> = p["spec"]["containers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "ready": true, "restartCount": 0, "started": true, "state": {"running": {"startedAt": ts}}}))
            .collect();
        write_status(
            state,
            pk,
            &p,
            &json!({
                "phase": "Running", "startTime": ts, "podIP": "10.244.0.10",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": ts}, {"type": "ContainersReady", "status": "True", "lastTransitionTime": ts}],
                "containerStatuses": containers,
            }),
        );
    }
}

fn pending_status() -> Value {
    json!({"phase": "Pending", "conditions": [{"type": "Ready", "status": "False"}]})
}

fn deployment(state: &mut State, d: &Value) {
    let rsk = kind("apps", "replicasets");
    let (ns, name) = ns_name(d);
    let uid = d["metadata"]["uid"].clone();
    let mut template = d["spec"]["template"].clone();
    let hash = template_hash(&template);
    let owned = state.owned(rsk, &uid);
    let max_rev = owned.iter().map(revision).max().unwrap_or(0);
    let mut annotations = d["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    annotations.remove(REVISION);
    let current = owned
        .iter()
        .find(|rs| rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str())
        .cloned();
    let new_rs = match current {
        Some(mut rs) if revision(&rs) < max_rev => {
            // An old template came back (a rollback): its revision becomes the newest.
            let old = revision(&rs);
            for (k, v) in &annotations {
                rs["metadata"]["annotations"][k] = v.clone();
            }
            rs["metadata"]["annotations"][REVISION] = json!((max_rev + 1).to_string());
            rs["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] =
                json!(old.to_string());
            write(state, rsk, rs);
            state.get(rsk, &ns, &format!("{name}-{hash}")).ok()
        }
        Some(rs) => Some(rs),
        None => {
            template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = d["spec"]["selector"].clone();
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut ann = serde_json::Map::from_iter(annotations.clone());
            ann.insert(REVISION.into(), json!((max_rev + 1).to_string()));
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-{hash}"), "namespace": ns, "labels": template["metadata"]["labels"], "annotations": ann, "ownerReferences": owner_ref(d)},
                "spec": {"replicas": 0, "selector": selector, "template": template},
            });
            state.create(rsk, &ns, rs, false).ok()
        }
    };
    let Some(new_rs) = new_rs else { return };
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    // One replica per tick toward the spec; old ReplicaSets give theirs up one per tick.
    let have = new_rs["spec"]["replicas"].as_i64().unwrap_or(0);
    if have != desired {
        let mut rs = new_rs.clone();
        rs["spec"]["replicas"] = json!(have + (desired - have).signum());
        write(state, rsk, rs);
    }
    for old in state.owned(rsk, &uid) {
        if old["metadata"]["name"] == new_rs["metadata"]["name"] {
            continue;
        }
        let n = old["spec"]["replicas"].as_i64().unwrap_or(0);
        if n > 0 {
            let mut o = old.clone();
            o["spec"]["replicas"] = json!(n - 1);
            write(state, rsk, o);
        }
    }
    let rev = state
        .get(
            rsk,
            &ns,
            new_rs["metadata"]["name"].as_str().unwrap_or_default(),
        )
        .map_or(0, |r| revision(&r));
    if revision(d) != rev {
        let mut dd = d.clone();
        dd["metadata"]["annotations"][REVISION] = json!(rev.to_string());
        write(state, kind("apps", "deployments"), dd);
    }
    deployment_status(state, &ns, &name);
}

fn deployment_status(state: &mut State, ns: &str, name: &str) {
    let (dk, rsk, pk) = (
        kind("apps", "deployments"),
        kind("apps", "replicasets"),
        kind("", "pods"),
    );
    let Ok(d) = state.get(dk, ns, name) else {
        return;
    };
    let uid = d["metadata"]["uid"].clone();
    let hash = template_hash(&d["spec"]["template"]);
    let (mut replicas, mut updated, mut readyn) = (0, 0, 0);
    for rs in state.owned(rsk, &uid) {
        let mine = state.owned(pk, &rs["metadata"]["uid"]);
        replicas += mine.len();
        readyn += mine.iter().filter(|p| ready(p)).count();
        if rs["metadata"]["labels"]["pod-template-hash"] == hash.as_str() {
            updated += mine.len();
        }
    }
    let desired = usize::try_from(d["spec"]["replicas"].as_i64().unwrap_or(1)).unwrap_or(0);
    let ts = state.timestamp();
    let complete = updated == desired && replicas == desired && readyn == desired;
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": replicas, "updatedReplicas": updated, "readyReplicas": readyn, "availableReplicas": readyn,
        "conditions": [
            {"type": "Available", "status": if readyn >= desired { "True" } else { "False" }, "reason": if readyn >= desired { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }, "lastUpdateTime": ts, "lastTransitionTime": ts},
            {"type": "Progressing", "status": "True", "reason": if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }, "lastUpdateTime": ts, "lastTransitionTime": ts},
        ],
    });
    if replicas > readyn {
        status["unavailableReplicas"] = json!(replicas - readyn);
    }
    // Timestamps change each tick; compare without them.
    let strip = |s: &Value| {
        let mut s = s.clone();
        if let Some(cs) = s["conditions"].as_array_mut() {
            for c in cs {
                if let Some(o) = c.as_object_mut() {
                    o.remove("lastUpdateTime");
                    o.remove("lastTransitionTime");
                }
            }
        }
        s
    };
    if strip(&d["status"]) != strip(&status) {
        write_status(state, dk, &d, &status);
    }
}

fn new_pod(owner: &Value, name: &str, template: &Value, extra_labels: &[(&str, &str)]) -> Value {
    let mut labels = template["metadata"]["labels"].clone();
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": owner["metadata"]["namespace"], "labels": labels, "annotations": template["metadata"]["annotations"], "ownerReferences": owner_ref(owner)},
        "spec": template["spec"], "status": pending_status(),
    })
}

fn replica_set(state: &mut State, rs: &Value) {
    let pk = kind("", "pods");
    let (ns, name) = ns_name(rs);
    let mine = state.owned(pk, &rs["metadata"]["uid"]);
    let want = usize::try_from(rs["spec"]["replicas"].as_i64().unwrap_or(0)).unwrap_or(0);
    if mine.len() < want {
        for _ in mine.len()..want {
            let pod = new_pod(rs, "", &rs["spec"]["template"], &[]);
            let mut pod = pod;
            pod["metadata"]["generateName"] = json!(format!("{name}-"));
            let _ = state.create(pk, &ns, pod, false);
        }
    } else {
        for p in mine.iter().skip(want) {
            let (pns, pname) = ns_name(p);
            let _ = state.delete(pk, &pns, &pname, false);
        }
    }
    let mine = state.owned(pk, &rs["metadata"]["uid"]);
    let r = mine.iter().filter(|p| ready(p)).count();
    let status = json!({"replicas": mine.len(), "fullyLabeledReplicas": mine.len(), "readyReplicas": r, "availableReplicas": r, "observedGeneration": rs["metadata"]["generation"]});
    if let Ok(now) = state.get(kind("apps", "replicasets"), &ns, &name) {
        write_status(state, kind("apps", "replicasets"), &now, &status);
    }
}

fn stateful_set(state: &mut State, s: &Value) {
    let (crk, pk, sk) = (
        kind("apps", "controllerrevisions"),
        kind("", "pods"),
        kind("apps", "statefulsets"),
    );
    let (ns, name) = ns_name(s);
    let uid = s["metadata"]["uid"].clone();
    let template = s["spec"]["template"].clone();
    let hash = template_hash(&template);
    let rev_name = format!("{name}-{hash}");
    let owned = state.owned(crk, &uid);
    let max_rev = owned
        .iter()
        .filter_map(|c| c["revision"].as_i64())
        .max()
        .unwrap_or(0);
    match owned
        .iter()
        .find(|c| c["metadata"]["name"] == rev_name.as_str())
    {
        Some(c) if c["revision"].as_i64().unwrap_or(0) < max_rev => {
            let mut c = c.clone();
            c["revision"] = json!(max_rev + 1);
            write(state, crk, c);
        }
        Some(_) => {}
        None => {
            let mut t = template.clone();
            t["$patch"] = json!("replace");
            let cr = json!({
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": rev_name, "namespace": ns, "labels": template["metadata"]["labels"], "ownerReferences": owner_ref(s)},
                "data": {"spec": {"template": t}}, "revision": max_rev + 1,
            });
            let _ = state.create(crk, &ns, cr, false);
        }
    }
    let want = s["spec"]["replicas"].as_i64().unwrap_or(1);
    let mine = state.owned(pk, &uid);
    let ordinal = |p: &Value| {
        p["metadata"]["name"]
            .as_str()
            .and_then(|n| n.rsplit('-').next())
            .and_then(|o| o.parse::<i64>().ok())
            .unwrap_or(-1)
    };
    // One pod per tick: the lowest missing ordinal, else the highest extra, else the
    // highest one still on an old revision.
    let missing = (0..want).find(|i| !mine.iter().any(|p| ordinal(p) == *i));
    let extra = mine
        .iter()
        .filter(|p| ordinal(p) >= want)
        .max_by_key(|p| ordinal(p));
    let outdated = mine
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] != rev_name.as_str())
        .max_by_key(|p| ordinal(p));
    if let Some(i) = missing {
        let pod = new_pod(
            s,
            &format!("{name}-{i}"),
            &template,
            &[
                ("controller-revision-hash", &rev_name),
                ("statefulset.kubernetes.io/pod-name", &format!("{name}-{i}")),
            ],
        );
        let _ = state.create(pk, &ns, pod, false);
    } else if let Some(p) = extra.or(outdated) {
        let (pns, pname) = ns_name(p);
        let _ = state.delete(pk, &pns, &pname, false);
    }
    let mine = state.owned(pk, &uid);
    let r = mine.iter().filter(|p| ready(p)).count();
    let updated = mine
        .iter()
        .filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == rev_name.as_str())
        .count();
    let all_updated = updated == mine.len() && mine.len() == usize::try_from(want).unwrap_or(0);
    let current = if all_updated {
        rev_name.clone()
    } else {
        s["status"]["currentRevision"]
            .as_str()
            .unwrap_or(&rev_name)
            .to_owned()
    };
    let status = json!({
        "observedGeneration": s["metadata"]["generation"], "replicas": mine.len(), "readyReplicas": r,
        "availableReplicas": r, "currentReplicas": if all_updated { updated } else { mine.len() - updated }, "updatedReplicas": updated,
        "currentRevision": current, "updateRevision": rev_name, "collisionCount": 0,
    });
    if let Ok(now) = state.get(sk, &ns, &name) {
        write_status(state, sk, &now, &status);
    }
}
