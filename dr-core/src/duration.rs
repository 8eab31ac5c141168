//! The one duration grammar of drkit, for flags, URL options, objectives files, Python
//! keyword arguments and runbooks alike: one or more `<number><unit>` terms, units `ms`,
//! `s`, `m` (or `min`), `h`, `d` and `w`, so `90s`, `15m`, `1h30m`, `1.5h`, `250ms`,
//! `7d`; a bare number is seconds. Options structs read it with
//! `#[serde(with = "dr_core::duration::human")]` (a string in the grammar or a number of
//! seconds); reports write seconds with [`crate::duration_secs`].

use std::fmt::Write as _;
use std::time::Duration;

use crate::{err, Result};

const ACCEPTED: &str = "use e.g. 250ms, 90s, 15m, 1h30m, 6h, 7d or 2w (a bare number is seconds)";

/// Parses a duration in the grammar above.
pub fn parse(text: &str) -> Result<Duration> {
    let t = text.trim();
    if t.is_empty() {
        return Err(err!(InvalidInput, "an empty duration; {ACCEPTED}"));
    }
    if let Ok(secs) = t.parse::<f64>() {
        return from_secs(text, secs);
    }
    let mut total = 0.0_f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let unit_end = rest[num_end..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .map_or(rest.len(), |i| num_end + i);
        let (num, unit) = (&rest[..num_end], rest[num_end..unit_end].trim());
        let n: f64 = num
            .parse()
            .map_err(|_| err!(InvalidInput, "{text:?} is not a duration; {ACCEPTED}"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 604_800.0,
            other => {
                return Err(err!(
                    InvalidInput,
                    "{text:?} has an unknown unit {other:?}; {ACCEPTED}"
                ))
            }
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    from_secs(text, total)
}

fn from_secs(text: &str, secs: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| err!(InvalidInput, "{text:?} is not a duration; {ACCEPTED}"))
}

/// Writes a duration in the same grammar, largest units first (`1h30m`, `250ms`, `0s`).
#[must_use]
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if ms >= size {
            let _ = write!(out, "{}{unit}", ms / size);
            ms %= size;
        }
    }
    out
}

/// The grammar as a regular expression, for JSON Schemas (a number, or terms with units).
pub const PATTERN: &str = r"^\s*(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(?:ms|sec|s|min|m|h|d|w)\s*)+)\s*$";

/// The JSON Schema of a duration field: a string in the grammar, or a number of seconds.
#[must_use]
pub fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A duration: 250ms, 90s, 15m, 1h30m, 6h, 7d or 2w; a bare number is seconds.",
        "x-type": "duration",
        "anyOf": [
            {"type": "string", "pattern": PATTERN},
            {"type": "number", "minimum": 0, "maximum": MAX_SECONDS}
        ]
    })
}

/// The largest number of seconds a duration holds (the largest `f64` below 2^64).
const MAX_SECONDS: f64 = 18_446_744_073_709_549_568.0;

/// The JSON Schema of a deadline: a duration above zero, left out or `null`.
#[must_use]
pub fn positive_json_schema() -> serde_json::Value {
    serde_json::json!({
        "description": "A deadline above zero: 250ms, 90s, 15m, 1h30m, 6h, 7d or 2w; a bare number is seconds.",
        "x-type": "duration",
        "anyOf": [
            {"type": "string", "pattern": PATTERN, "not": {"pattern": ZERO_PATTERN}},
            {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
            {"type": "null"}
        ]
    })
}

/// Durations of zero in the grammar (`0`, `0s`, `0h0m`, `0.0`).
const ZERO_PATTERN: &str = r"^\s*(?:(?:0+(?:\.0*)?|\.0+)\s*(?:ms|sec|s|min|m|h|d|w)?\s*)+$";

/// The same for a field that may be left out or `null`.
#[must_use]
pub fn optional_json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut s = json_schema(g);
    if let Some(any) = s.get_mut("anyOf").and_then(serde_json::Value::as_array_mut) {
        any.push(serde_json::json!({"type": "null"}));
    }
    s
}

/// Serde for `Duration` fields of options: reads the grammar or a number of seconds,
/// writes the grammar.
pub mod human {
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    /// Writes `1h30m`.
    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*d))
    }

    /// Reads `"1h30m"` or `5400`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(HumanVisitor)
    }

    pub(super) struct HumanVisitor;

    impl Visitor<'_> for HumanVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a duration such as \"90s\", \"15m\", \"1h30m\" or a number of seconds")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse(v).map_err(|e| E::custom(e.message()))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            u64::try_from(v)
                .map(Duration::from_secs)
                .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            Duration::try_from_secs_f64(v)
                .map_err(|_| E::custom(format!("{v} is not a number of seconds")))
        }
    }

    /// The same for `Option<Duration>`.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes `"1h30m"` or `null`.
        #[allow(clippy::ref_option)] // serde's `with` passes `&Option<T>`
        pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a duration or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrap(#[serde(with = "super")] Duration);
            Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_every_input() {
        let cases = [
            ("90", 90_000),
            ("90s", 90_000),
            ("15m", 900_000),
            ("15min", 900_000),
            ("1h30m", 5_400_000),
            ("1.5h", 5_400_000),
            ("250ms", 250),
            ("7d", 604_800_000),
            ("2w", 1_209_600_000),
            (" 2m 30s ", 150_000),
            ("0.5", 500),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text).unwrap().as_millis(), ms, "{text}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_accepted() {
        for bad in ["", "1hour-ish", "h", "5 parsecs", "-3s", "1e400"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad}");
            assert!(e.message().contains("15m"), "{bad}: {e}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0_u64, 250, 1000, 90_000, 5_400_000, 604_800_000 + 3_600_000] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse(&format(d)).unwrap(), d, "{}", format(d));
        }
        assert_eq!(format(Duration::from_mins(90)), "1h30m");
    }

    #[test]
    fn serde_reads_strings_and_numbers() {
        #[derive(serde::Deserialize)]
        struct O {
            #[serde(with = "human")]
            a: Duration,
            #[serde(with = "human::option", default)]
            b: Option<Duration>,
        }
        let o: O = serde_json::from_str(r#"{"a": "1h30m", "b": 2.5}"#).unwrap();
        assert_eq!(
            (o.a, o.b),
            (Duration::from_mins(90), Some(Duration::from_millis(2500)))
        );
        let o: O = serde_json::from_str(r#"{"a": 60}"#).unwrap();
        assert_eq!((o.a, o.b), (Duration::from_mins(1), None));
        let e = serde_json::from_str::<O>(r#"{"a": "soon"}"#).err().unwrap();
        assert!(e.to_string().contains("15m"), "{e}");
    }
}
