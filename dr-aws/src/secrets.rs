//! AWS Secrets Manager: a secret's value — or one key of a secret stored as a JSON
//! object — read for the step that needs it (a Kubernetes Secret, a program's
//! environment). The value is never stored or printed: [`SecretRead`]'s `Debug` hides
//! it, [`describe`] says what a secret holds without it, and the `secretsmanager.get`
//! action marks it a secret output (kept in the running process only).

use aws_sdk_secretsmanager::Client;
use base64::Engine as _;
use dr_core::{err, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::classify;
use crate::AwsConfig;

/// Which secret, and which part of it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSecretOptions {
    /// The secret's name or ARN (`prod/db`).
    pub secret: String,
    /// One key of a secret stored as a JSON object (`password`); default the whole value.
    #[serde(default)]
    pub key: Option<String>,
    /// The version stage to read (default `AWSCURRENT`; `AWSPREVIOUS` is the value before
    /// the last rotation).
    #[serde(default)]
    pub stage: Option<String>,
    /// One version by its id, instead of a stage.
    #[serde(default)]
    pub version_id: Option<String>,
}

/// A secret's value and where it came from.
#[derive(Clone, Serialize, Deserialize, JsonSchema)]
pub struct SecretRead {
    /// The value (of `key`, when one was asked): text as stored, a binary secret in
    /// base64.
    pub value: String,
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The version read.
    pub version_id: String,
    /// That version's stages (`AWSCURRENT`, …).
    pub stages: Vec<String>,
    /// When that version was made (RFC 3339), if the service says.
    pub created: Option<String>,
}

impl std::fmt::Debug for SecretRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretRead")
            .field("value", &"<secret>")
            .field("name", &self.name)
            .field("arn", &self.arn)
            .field("version_id", &self.version_id)
            .field("stages", &self.stages)
            .finish_non_exhaustive()
    }
}

/// What a secret holds, without its value: `drkit secrets get` and plans show this.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SecretInfo {
    /// The secret's name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// The version read.
    pub version_id: String,
    /// That version's stages.
    pub stages: Vec<String>,
    /// When that version was made (RFC 3339).
    pub created: Option<String>,
    /// `text`, `json` (an object: `keys` are its keys) or `binary`.
    pub format: String,
    /// The keys of a JSON object secret, sorted.
    pub keys: Vec<String>,
    /// Characters of the value (of `key`, when one was asked).
    pub length: usize,
    /// The key asked for, if any.
    pub key: Option<String>,
}

/// Secrets Manager, reached as `aws` says.
pub struct SecretsManager {
    client: Client,
    region: String,
}

/// A version as the service returns it, before a key is picked.
struct Fetched {
    text: Option<String>,
    binary: Option<Vec<u8>>,
    name: String,
    arn: String,
    version_id: String,
    stages: Vec<String>,
    created: Option<String>,
}

impl SecretsManager {
    /// Connects with `aws`.
    pub async fn connect(aws: &AwsConfig) -> Result<Self> {
        let sdk = aws.load().await?;
        Ok(Self {
            region: sdk
                .region()
                .map_or_else(|| "us-east-1".to_owned(), ToString::to_string),
            client: Client::new(&sdk),
        })
    }

    async fn version(&self, o: &GetSecretOptions) -> Result<Fetched> {
        if o.secret.trim().is_empty() {
            return Err(err!(
                InvalidInput,
                "no secret named: give its name or ARN (`prod/db`)"
            ));
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(&o.secret)
            .set_version_stage(o.stage.clone())
            .set_version_id(o.version_id.clone())
            .send()
            .await
            .map_err(|e| {
                let which = match (&o.version_id, &o.stage) {
                    (Some(v), _) => format!(" version {v}"),
                    (None, Some(s)) => format!(" stage {s}"),
                    (None, None) => String::new(),
                };
                classify(
                    format!(
                        "reading secret {:?}{which} from Secrets Manager in {}",
                        o.secret, self.region
                    ),
                    e,
                )
            })?;
        Ok(Fetched {
            text: out.secret_string().map(str::to_owned),
            binary: out.secret_binary().map(|b| b.as_ref().to_vec()),
            name: out.name().unwrap_or(&o.secret).to_owned(),
            arn: out.arn().unwrap_or_default().to_owned(),
            version_id: out.version_id().unwrap_or_default().to_owned(),
            stages: out.version_stages().to_vec(),
            created: out.created_date().map(ToString::to_string),
        })
    }

    /// The value `o` names, with where it came from.
    ///
    /// # Errors
    /// `NotFound` for a secret, version or key that does not exist (the error lists the
    /// keys there are, never a value); `InvalidInput` for a key of a secret that is not a
    /// JSON object.
    pub async fn get(&self, o: &GetSecretOptions) -> Result<SecretRead> {
        let v = self.version(o).await?;
        let value = pick(&v, o.key.as_deref())?;
        Ok(SecretRead {
            value,
            name: v.name,
            arn: v.arn,
            version_id: v.version_id,
            stages: v.stages,
            created: v.created,
        })
    }

    /// What the secret `o` names holds — its format, keys and length — without its value.
    ///
    /// # Errors
    /// As [`SecretsManager::get`].
    pub async fn describe(&self, o: &GetSecretOptions) -> Result<SecretInfo> {
        let v = self.version(o).await?;
        let value = pick(&v, o.key.as_deref())?;
        let object = v.text.as_deref().and_then(json_object);
        let format = match (&v.binary, &object) {
            (Some(_), _) => "binary",
            (None, Some(_)) => "json",
            (None, None) => "text",
        };
        Ok(SecretInfo {
            name: v.name,
            arn: v.arn,
            version_id: v.version_id,
            stages: v.stages,
            created: v.created,
            format: format.to_owned(),
            keys: object
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            length: value.chars().count(),
            key: o.key.clone(),
        })
    }
}

fn json_object(text: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    match serde_json::from_str(text) {
        Ok(serde_json::Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// The whole value, or its key `key`; an error never quotes the value.
fn pick(v: &Fetched, key: Option<&str>) -> Result<String> {
    let Some(key) = key else {
        return match (&v.text, &v.binary) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(b)) => Ok(base64::engine::general_purpose::STANDARD.encode(b)),
            (None, None) => Err(err!(
                NotFound,
                "secret {:?} (version {}) holds no value",
                v.name,
                v.version_id
            )),
        };
    };
    let Some(object) = v.text.as_deref().and_then(json_object) else {
        return Err(err!(
            InvalidInput,
            "secret {:?} is not a JSON object, so it has no key {key:?}; drop `key` to read the whole value",
            v.name
        ));
    };
    match object.get(key) {
        Some(serde_json::Value::String(s)) => Ok(s.clone()),
        Some(serde_json::Value::Null) | None => Err(err!(
            NotFound,
            "secret {:?} has no key {key:?}; its keys are {}",
            v.name,
            if object.is_empty() {
                "none".to_owned()
            } else {
                object.keys().cloned().collect::<Vec<_>>().join(", ")
            }
        )),
        Some(other) => Ok(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str) -> Fetched {
        Fetched {
            text: Some(text.to_owned()),
            binary: None,
            name: "prod/db".into(),
            arn: String::new(),
            version_id: "v1".into(),
            stages: vec![],
            created: None,
        }
    }

    #[test]
    fn a_key_is_read_from_a_json_secret_and_errors_never_quote_the_value() {
        let v = version(r#"{"username":"app","password":"hunter2-Zq","port":5432}"#);
        assert_eq!(pick(&v, Some("password")).unwrap(), "hunter2-Zq");
        assert_eq!(pick(&v, Some("port")).unwrap(), "5432");
        assert_eq!(pick(&v, None).unwrap(), v.text.clone().unwrap());
        let e = pick(&v, Some("pasword")).unwrap_err();
        assert_eq!(
            e.message(),
            "secret \"prod/db\" has no key \"pasword\"; its keys are password, port, username"
        );
        let text = version("hunter2-Zq");
        let e = pick(&text, Some("password")).unwrap_err();
        assert!(!e.message().contains("hunter2"), "{}", e.message());
        assert!(e.message().contains("drop `key`"), "{}", e.message());
    }

    #[test]
    fn debug_hides_the_value() {
        let r = SecretRead {
            value: "hunter2-Zq".into(),
            name: "prod/db".into(),
            arn: "arn".into(),
            version_id: "v1".into(),
            stages: vec!["AWSCURRENT".into()],
            created: None,
        };
        assert!(!format!("{r:?}").contains("hunter2"));
    }
}
