//! Serializes a `Duration` as fractional seconds (`12.345`), the form reports and JSON
//! consumers expect. Use with `#[serde(with = "dr_core::duration_secs")]`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes whole milliseconds as seconds.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

/// Reads seconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = f64::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
}

/// Parses `90s`, `15m`, `6h`, `7d`, `2w` (or bare seconds), as objectives and policies
/// are written.
pub fn parse_human(text: &str) -> crate::Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().map_err(|_| {
        crate::err!(
            InvalidInput,
            "{text:?} is not a duration; use e.g. 90s, 15m, 6h, 7d or 2w"
        )
    })?;
    let unit = match t[split..].trim() {
        "" | "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        other => {
            return Err(crate::err!(
                InvalidInput,
                "{text:?} has an unknown unit {other:?}; use s, m, h, d or w"
            ))
        }
    };
    Ok(Duration::from_secs(n.saturating_mul(unit)))
}

/// The same for `Option<Duration>` (`null` when absent).
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes seconds or `null`.
    #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads seconds or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}
