//! Notifiers: where a run's messages go — a Slack incoming webhook, a generic JSON
//! webhook, a Statuspage incident, PagerDuty Events v2 — routed by severity and by event.
//! A notifier that fails is journaled as a warning and never fails the run, unless the
//! `notify` step says `required: true`. URLs, keys and routing keys never appear in output,
//! journals or errors: notifiers are named by their `name`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::http;
use super::model::Severity;
use crate::{err, Result};

/// When the engine speaks on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyOn {
    /// The run starts.
    Start,
    /// A step succeeds.
    Step,
    /// A step fails.
    Failure,
    /// An approval waits.
    Approval,
    /// The run ends.
    End,
    /// A step finished: the share of the steps done and an ETA from earlier runs.
    Progress,
}

/// What kind of receiver.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum NotifierKind {
    /// A Slack incoming webhook (`url`).
    Slack {
        /// The webhook URL (a secret: give it through a secret variable).
        url: String,
    },
    /// Any JSON webhook (`url`): the message, severity, run and event as JSON.
    Webhook {
        /// Where to POST.
        url: String,
    },
    /// PagerDuty Events v2: trigger, and resolve at the end, one dedup key per run.
    Pagerduty {
        /// The integration's routing key (a secret).
        routing_key: String,
        /// The events endpoint (default PagerDuty's).
        #[serde(default = "pagerduty_url")]
        url: String,
    },
    /// A Statuspage incident, created on the first message and updated after.
    Statuspage {
        /// The page id.
        page_id: String,
        /// The API key (a secret).
        api_key: String,
        /// The API base (default Statuspage's).
        #[serde(default = "statuspage_url")]
        url: String,
    },
}

/// The JSON Schema of one `notify:` entry: each kind with its own fields and no other.
#[must_use]
pub fn json_schema() -> serde_json::Value {
    let kinds: [(&str, &[&str], &[&str]); 4] = [
        ("slack", &["url"], &["url"]),
        ("webhook", &["url"], &["url"]),
        ("pagerduty", &["routing_key"], &["routing_key", "url"]),
        (
            "statuspage",
            &["page_id", "api_key"],
            &["page_id", "api_key", "url"],
        ),
    ];
    let one_of: Vec<serde_json::Value> = kinds
        .iter()
        .map(|(kind, required, fields)| {
            let mut properties = serde_json::json!({
                "name": {"type": "string", "description": "Its name in messages and the journal."},
                "kind": {"const": kind},
                "severities": {"type": "array", "items": {"$ref": "#/$defs/Severity"}},
                "on": {"type": "array", "items": {"enum": ["start", "step", "failure", "approval", "end", "progress"]}},
            });
            for f in *fields {
                properties[*f] = serde_json::json!({"type": "string"});
            }
            let mut req = vec!["name", "kind"];
            req.extend_from_slice(required);
            serde_json::json!({
                "type": "object",
                "properties": properties,
                "required": req,
                "additionalProperties": false,
            })
        })
        .collect();
    serde_json::json!({"description": "Where notifications go: slack, webhook, pagerduty or statuspage.", "oneOf": one_of})
}

/// A webhook URL with `user:password@` in it, as the URL without them and the HTTP basic
/// authorization they stand for (receivers behind basic auth).
fn basic_auth(raw: &str) -> (String, Option<String>) {
    use base64::Engine as _;
    let Ok(mut url) = url::Url::parse(raw) else {
        return (raw.to_owned(), None);
    };
    if url.username().is_empty() && url.password().is_none() {
        return (raw.to_owned(), None);
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(url.username());
    let password = decode(url.password().unwrap_or_default());
    let _ = url.set_username("");
    let _ = url.set_password(None);
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    (url.to_string(), Some(format!("Basic {token}")))
}

fn pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// A Statuspage incident document: `fields`, with the components a message sets.
fn incident(mut fields: Value, components: Option<Value>) -> Value {
    if let (Some(f), Some(Value::Object(c))) = (fields.as_object_mut(), components) {
        f.extend(c);
    }
    json!({ "incident": fields })
}

fn statuspage_url() -> String {
    "https://api.statuspage.io".into()
}

/// One notifier, as a runbook's `notify:` declares it (variables replaced).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notifier {
    /// Its name in messages and the journal.
    pub name: String,
    /// Where messages go.
    #[serde(flatten)]
    pub kind: NotifierKind,
    /// The severities it takes (all when empty).
    #[serde(default)]
    pub severities: Vec<Severity>,
    /// What the engine tells it on its own (default: start, failure, approval, end).
    #[serde(default = "default_on")]
    pub on: Vec<NotifyOn>,
}

fn default_on() -> Vec<NotifyOn> {
    vec![
        NotifyOn::Start,
        NotifyOn::Failure,
        NotifyOn::Approval,
        NotifyOn::End,
    ]
}

/// A message for the notifiers.
#[derive(Debug, Clone)]
pub struct Message {
    /// What to say.
    pub text: String,
    /// How urgent.
    pub severity: Severity,
    /// Why (`start`, `failure`, `end`, or a `notify` step's id).
    pub event: String,
    /// The run ends with this message (resolve PagerDuty, the Statuspage incident).
    pub resolves: bool,
    /// The status page incident's status, when the message sets it.
    pub status: Option<IncidentStatus>,
    /// Status page components and the status the message gives them, by component id.
    pub components: BTreeMap<String, ComponentStatus>,
}

impl Message {
    /// A message of `severity` for `event`.
    #[must_use]
    pub fn new(text: impl Into<String>, severity: Severity, event: &str) -> Self {
        Self {
            text: text.into(),
            severity,
            event: event.to_owned(),
            resolves: false,
            status: None,
            components: BTreeMap::new(),
        }
    }
}

/// A status page incident's status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Looking into it.
    Investigating,
    /// The cause is known.
    Identified,
    /// Fixed; watching.
    Monitoring,
    /// Over.
    Resolved,
}

/// A status page component's status.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ComponentStatus {
    /// Working.
    Operational,
    /// Slow.
    DegradedPerformance,
    /// Partly down.
    PartialOutage,
    /// Down.
    MajorOutage,
    /// In maintenance.
    UnderMaintenance,
}

impl Notifiers {
    /// The names of the notifiers a `notify` step of `severity` reaches.
    #[must_use]
    pub fn takers(&self, severity: Severity) -> Vec<String> {
        self.list
            .iter()
            .filter(|n| n.severities.is_empty() || n.severities.contains(&severity))
            .map(|n| n.name.clone())
            .collect()
    }
}

/// The notifiers of one run, with what they remember (Statuspage incident ids).
#[derive(Clone, Default)]
pub struct Notifiers {
    list: Arc<Vec<Notifier>>,
    run_id: String,
    runbook: String,
    incidents: Arc<Mutex<BTreeMap<String, String>>>,
    redactor: Arc<super::redact::Redactor>,
}

impl std::fmt::Debug for Notifiers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.list.iter().map(|n| n.name.as_str()).collect();
        write!(f, "Notifiers({names:?})")
    }
}

fn pd_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "error",
        Severity::Medium | Severity::Low => "warning",
        Severity::Info => "info",
    }
}

impl Notifiers {
    /// `notify:` entries (variables already replaced).
    pub fn new(entries: &[Value], run_id: &str, runbook: &str) -> Result<Self> {
        let list = entries
            .iter()
            .enumerate()
            .map(|(i, v)| {
                serde_json::from_value::<Notifier>(v.clone()).map_err(|e| {
                    err!(InvalidInput, "notify entry {}: {e}; give name, kind (slack, webhook, pagerduty, statuspage) and its fields", i + 1)
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            list: Arc::new(list),
            run_id: run_id.to_owned(),
            runbook: runbook.to_owned(),
            incidents: Arc::default(),
            redactor: Arc::default(),
        })
    }

    /// The same notifiers, masking `redactor`'s secrets in every message they send.
    #[must_use]
    pub fn with_redactor(mut self, redactor: Arc<super::redact::Redactor>) -> Self {
        self.redactor = redactor;
        self
    }

    /// Whether any notifier takes the engine's event `on`.
    #[must_use]
    pub fn wants(&self, on: NotifyOn) -> bool {
        self.list.iter().any(|n| n.on.contains(&on))
    }

    /// Sends `m` to every notifier that takes it; `on` is the engine's own event, `None`
    /// for a `notify` step. Returns, per notifier that failed, its name and why.
    pub async fn send(&self, m: &Message, on: Option<NotifyOn>) -> Vec<(String, String)> {
        let m = &Message {
            text: self.redactor.str(&m.text),
            ..m.clone()
        };
        let mut failed = Vec::new();
        for n in self.list.iter() {
            // An end that resolves reaches whoever was told of the trouble, whatever
            // its severity.
            let takes =
                (n.severities.is_empty() || n.severities.contains(&m.severity) || m.resolves)
                    && on.is_none_or(|e| n.on.contains(&e));
            if !takes {
                continue;
            }
            if let Err(e) = self.deliver(n, m).await {
                failed.push((n.name.clone(), self.redactor.str(e.message())));
            }
        }
        failed
    }

    /// The request that creates or updates run's Statuspage incident.
    async fn statuspage(
        &self,
        n: &Notifier,
        page_id: &str,
        api_key: &str,
        url: &str,
        m: &Message,
    ) -> (&'static str, String, Vec<(&'static str, String)>, Value) {
        let status = m.status.unwrap_or(if m.resolves {
            IncidentStatus::Resolved
        } else if m.event == "start" {
            IncidentStatus::Investigating
        } else {
            IncidentStatus::Identified
        });
        let components = (!m.components.is_empty()).then(|| {
            json!({
                "component_ids": m.components.keys().collect::<Vec<_>>(),
                "components": m.components,
            })
        });
        let auth = vec![("authorization", format!("OAuth {api_key}"))];
        let known = self.incidents.lock().await.get(&n.name).cloned();
        match known {
            None => (
                "POST",
                format!("{url}/v1/pages/{page_id}/incidents"),
                auth,
                incident(
                    json!({"name": format!("{} ({})", self.runbook, self.run_id), "status": status, "body": m.text}),
                    components,
                ),
            ),
            Some(id) => (
                "PATCH",
                format!("{url}/v1/pages/{page_id}/incidents/{id}"),
                auth,
                incident(json!({"status": status, "body": m.text}), components),
            ),
        }
    }

    async fn deliver(&self, n: &Notifier, m: &Message) -> Result<()> {
        let shown = format!("notifier {:?}", n.name);
        let (method, url, headers, body) = match &n.kind {
            NotifierKind::Slack { url } => (
                "POST",
                url.clone(),
                Vec::new(),
                json!({"text": m.text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": format!("*{}* ({}): {}", self.runbook, serde_json::to_value(m.severity).unwrap_or_default().as_str().unwrap_or(""), m.text)}}]}),
            ),
            NotifierKind::Webhook { url } => {
                let (url, auth) = basic_auth(url);
                (
                    "POST",
                    url,
                    auth.into_iter().map(|a| ("authorization", a)).collect(),
                    json!({"runbook": self.runbook, "run": self.run_id, "event": m.event, "severity": m.severity, "message": m.text}),
                )
            }
            NotifierKind::Pagerduty { routing_key, url } => (
                "POST",
                url.clone(),
                Vec::new(),
                json!({
                    "routing_key": routing_key,
                    "event_action": if m.resolves { "resolve" } else { "trigger" },
                    "dedup_key": format!("drkit-{}", self.run_id),
                    "payload": {"summary": format!("{}: {}", self.runbook, m.text), "source": "drkit", "severity": pd_severity(m.severity)},
                }),
            ),
            NotifierKind::Statuspage {
                page_id,
                api_key,
                url,
            } => self.statuspage(n, page_id, api_key, url, m).await,
        };
        let headers: Vec<(&str, String)> = headers.into_iter().collect();
        // 429: wait as long as Retry-After says (at most a minute), a few times.
        for _ in 0..4 {
            let reply = http::request(
                method,
                &url,
                &headers,
                http::Body::Json(&body),
                Duration::from_secs(15),
                &shown,
            )
            .await?;
            match reply.status {
                200..=299 => {
                    if let NotifierKind::Statuspage { .. } = n.kind {
                        if let Some(id) = serde_json::from_str::<Value>(&reply.body)
                            .ok()
                            .and_then(|v| v["id"].as_str().map(str::to_owned))
                        {
                            self.incidents.lock().await.insert(n.name.clone(), id);
                        }
                    }
                    return Ok(());
                }
                429 => {
                    tokio::time::sleep(
                        reply
                            .retry_after
                            .unwrap_or(Duration::from_secs(1))
                            .min(Duration::from_mins(1)),
                    )
                    .await;
                }
                s => return Err(err!(Unavailable, "{shown}: answered HTTP {s}")),
            }
        }
        Err(err!(
            Unavailable,
            "{shown}: still rate-limited (HTTP 429) after 4 tries"
        ))
    }
}
