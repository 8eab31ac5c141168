//! The one redactor every string leaving the engine passes: journal events (errors,
//! outputs, an `exec`'s output), terminal lines, `runs show`, notifications, plans and
//! reports. It masks every secret value the run knows as `***` — secret variables, URL
//! passwords of targets and variables, notifiers' URLs and keys, and drkit's own
//! credentials from the environment (`DRKIT_PASSWORD`, key and passphrase files,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `PGPASSWORD`) — and strips the password
//! of every URL (`scheme://user:password@host`) and `password=` setting it meets, known
//! or not.

use serde_json::{Map, Value};

use crate::Error;

/// What a masked secret reads as.
pub const MASK: &str = "***";

/// Secrets shorter than this are not masked: they would mask ordinary words, and are
/// no secret anyway.
pub const MIN_SECRET_LEN: usize = 4;

/// Masks known secret values; see the module documentation.
///
/// Clones share what they know: a secret learnt during a run (a step's secret output) is
/// masked from then on by the journal, the notifiers and the terminal alike.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: std::sync::Arc<std::sync::RwLock<Vec<String>>>,
}

/// Environment variables whose values are secrets wherever they appear.
const SECRET_ENV: &[&str] = &[
    "DRKIT_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PGPASSWORD",
];

/// Environment variables naming files whose contents are secrets.
const SECRET_FILE_ENV: &[&str] = &["DRKIT_PASSWORD_FILE", "DRKIT_KEY_FILE"];

/// Field names whose string values are secrets (in targets and notifiers).
pub(super) fn secret_field(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password")
        || n.contains("secret")
        || n.contains("token")
        || n.ends_with("key")
        || n == "url"
        || n.ends_with("_url")
}

impl Redactor {
    /// A redactor that strips URL passwords and knows no secret yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// A redactor that knows drkit's own credentials from this process's environment.
    #[must_use]
    pub fn from_environment() -> Self {
        let mut r = Self::new();
        for var in SECRET_ENV {
            if let Ok(v) = std::env::var(var) {
                r.add(&v);
            }
        }
        for var in SECRET_FILE_ENV {
            if let Some(text) = std::env::var_os(var).and_then(|p| std::fs::read(p).ok()) {
                let text = String::from_utf8_lossy(&text);
                r.add(text.trim());
                for line in text.lines() {
                    r.add(line.trim());
                }
            }
        }
        r
    }

    /// Masks `secret` from now on (with its percent-encoded form, as it appears in URLs).
    pub fn add(&mut self, secret: &str) {
        self.learn(secret);
    }

    /// Masks `secret` from now on, in this redactor and every clone of it: a value a run
    /// comes to know while it runs (a step's secret output).
    pub fn learn(&self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_LEN {
            return;
        }
        let encoded =
            percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        let mut secrets = self.known_mut();
        // JSON-escaped too: a value with a quote or a newline appears so in a JSON body.
        let escaped = serde_json::to_string(secret)
            .map(|q| q[1..q.len() - 1].to_owned())
            .unwrap_or_default();
        // Base64 too, as a Kubernetes Secret or a basic-auth header carries it (padding
        // left out: what precedes it in a longer text does not change these bytes).
        let b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(secret)
        };
        let b64url = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
        };
        for s in [secret.to_owned(), encoded, escaped, b64, b64url] {
            if s.chars().count() >= MIN_SECRET_LEN && !secrets.contains(&s) {
                secrets.push(s);
            }
        }
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    }

    /// Masks every string inside `value` from now on, as [`Redactor::learn`].
    pub fn learn_value(&self, value: &Value) {
        match value {
            Value::String(s) => self.learn(s),
            Value::Array(a) => a.iter().for_each(|v| self.learn_value(v)),
            Value::Object(m) => m.values().for_each(|v| self.learn_value(v)),
            Value::Number(n) => self.learn(&n.to_string()),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn known(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.secrets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn known_mut(&self) -> std::sync::RwLockWriteGuard<'_, Vec<String>> {
        self.secrets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Masks every string inside `value` (a secret variable's value).
    pub fn add_value(&mut self, value: &Value) {
        self.learn_value(value);
    }

    /// Masks the password of every URL inside `value`.
    pub fn add_url_passwords(&mut self, value: &Value) {
        match value {
            Value::String(s) => {
                for p in url_passwords(s) {
                    self.add(&p);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| self.add_url_passwords(v)),
            Value::Object(m) => m.values().for_each(|v| self.add_url_passwords(v)),
            _ => {}
        }
    }

    /// Masks URL passwords in `fields`, and the values of fields named like secrets
    /// (`password`, `token`, `api_key`, a notifier's `url`).
    pub fn add_fields(&mut self, fields: &Map<String, Value>) {
        for (k, v) in fields {
            if secret_field(k) {
                self.add_value(v);
            }
            match v {
                Value::Object(m) => self.add_fields(m),
                other => self.add_url_passwords(other),
            }
        }
    }

    /// Masks URL passwords in a target's `fields` and the values of fields named like
    /// secrets — but not its URLs themselves: a database's address is no secret (its
    /// password is), and an error that hid it would not say which server failed.
    pub fn add_target_fields(&mut self, fields: &Map<String, Value>) {
        for (k, v) in fields {
            let lower = k.to_ascii_lowercase();
            let address = lower == "url" || lower.ends_with("_url") || lower == "endpoint";
            if secret_field(k) && !address {
                self.add_value(v);
            }
            match v {
                Value::Object(m) => self.add_target_fields(m),
                other => self.add_url_passwords(other),
            }
        }
    }

    /// Whether `s` holds a known secret.
    #[must_use]
    pub fn reveals(&self, s: &str) -> bool {
        self.known().iter().any(|x| s.contains(x.as_str()))
    }

    /// `s` with every known secret masked and every URL password stripped.
    #[must_use]
    pub fn str(&self, s: &str) -> String {
        let mut out = strip_url_passwords(s);
        for secret in self.known().iter() {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), MASK);
            }
        }
        out
    }

    /// `value` with every string in it (keys too) redacted.
    #[must_use]
    pub fn value(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.str(s)),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.value(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (self.str(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// `e` with its message and causes redacted (the causes folded into the message, as
    /// a cause may quote a secret).
    #[must_use]
    pub fn error(&self, e: Error) -> Error {
        let full = e.full_message();
        let clean = self.str(&full);
        if clean == e.message() && e.causes().next().is_none() {
            return e;
        }
        let hint = e.hint().cloned();
        let out = Error::new(e.kind(), clean);
        match hint {
            Some(h) => out.with_hint(h),
            None => out,
        }
    }
}

/// `value` with the password of every URL and every `password=` setting in its strings
/// removed (what a frozen runbook keeps).
#[must_use]
pub fn strip_value(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(strip_url_passwords(s)),
        Value::Array(a) => Value::Array(a.iter().map(strip_value).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), strip_value(v))).collect())
        }
        other => other.clone(),
    }
}

/// The passwords of the URLs in `s` (`scheme://user:password@host`).
fn url_passwords(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let tail = &rest[i + 3..];
        let end = tail.find(['/', ' ', '"', '\'', '?']).unwrap_or(tail.len());
        let authority = &tail[..end];
        if let Some(at) = authority.rfind('@') {
            if let Some(colon) = authority[..at].find(':') {
                let raw = &authority[colon + 1..at];
                out.push(raw.to_owned());
                if let Ok(decoded) = percent_encoding::percent_decode_str(raw).decode_utf8() {
                    out.push(decoded.into_owned());
                }
            }
        }
        rest = &tail[end..];
    }
    out
}

/// `s` with the password of every URL (`scheme://user:password@host`) removed and every
/// `password=` setting (a query parameter, a libpq keyword) masked.
#[must_use]
pub fn strip_url_passwords(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail.find(['/', ' ', '"', '\'', '?']).unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let user = &authority[..authority[..at].find(':').unwrap_or(at)];
                out.push_str(user);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    mask_password_settings(&out)
}

/// Masks the value of every `password=…` (case-insensitive), up to `&`, a space or a quote.
fn mask_password_settings(s: &str) -> String {
    const KEY: &str = "password=";
    let lower = s.to_ascii_lowercase();
    if !lower.contains(KEY) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(found) = lower[i..].find(KEY) {
        let start = i + found + KEY.len();
        out.push_str(&s[i..start]);
        let end = s[start..]
            .find(['&', ' ', '"', '\'', '\n'])
            .map_or(s.len(), |e| start + e);
        if end > start {
            out.push_str(MASK);
        }
        i = end;
    }
    out.push_str(&s[i..]);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn urls_lose_their_passwords_known_or_not() {
        let r = Redactor::new();
        let v = json!({"url": "postgres://app:s3cret@db:5432/shop", "list": ["http://u:p@h/x and https://h/y"], "n": 1, "plain": "no url", "dsn": "host=db password=hunter2 user=app", "q": "postgres://h/db?sslmode=require&password=pw42"});
        let out = r.value(&v);
        assert_eq!(
            out,
            json!({"url": "postgres://app@db:5432/shop", "list": ["http://u@h/x and https://h/y"], "n": 1, "plain": "no url", "dsn": "host=db password=*** user=app", "q": "postgres://h/db?sslmode=require&password=***"})
        );
    }

    #[test]
    fn known_secrets_are_masked_wherever_they_appear() {
        let mut r = Redactor::new();
        r.add("hunter2-long");
        r.add("ab"); // too short to mask
        r.add_url_passwords(&json!(["postgres://app:p%40ss-word@db/x"]));
        let text = "ALTER ROLE app PASSWORD 'hunter2-long' failed; p@ss-word and p%40ss-word; ab";
        assert_eq!(
            r.str(text),
            "ALTER ROLE app PASSWORD '***' failed; *** and ***; ab"
        );
        assert!(r.reveals("x hunter2-long y"));
        let e = r.error(crate::err!(External, "psql: hunter2-long rejected"));
        assert_eq!(e.message(), "psql: *** rejected");
        assert_eq!(e.kind(), crate::ErrorKind::External);
    }

    #[test]
    fn secret_fields_of_targets_and_notifiers_are_known() {
        let mut r = Redactor::new();
        let fields = json!({"kind": "webhook", "url": "https://hooks.example/T0/B0/XYZ", "api_key": "k-123456", "region": "eu-west-1"});
        r.add_fields(fields.as_object().unwrap());
        assert_eq!(
            r.str("posting to https://hooks.example/T0/B0/XYZ with k-123456 in eu-west-1"),
            "posting to *** with *** in eu-west-1"
        );
    }
}
