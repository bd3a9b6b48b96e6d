//! A small reader over a JSON object that knows its own path, so every
//! error names exactly where it happened, and that rejects unknown keys.

use serde_json::{Map, Value};

use crate::error::{ConfigError, Result};

/// How a value is shown after "got" in an error message.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Object(_) => "an object".into(),
        Value::Array(_) => "an array".into(),
        other => {
            let s = other.to_string();
            if s.chars().count() > 60 {
                let short: String = s.chars().take(57).collect();
                format!("{short}...")
            } else {
                s
            }
        }
    }
}

pub fn join(path: &str, key: &str) -> String {
    // Keys that would make the path ambiguous ("", "a.b", " ") are shown
    // as JSON strings.
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let key = if plain {
        key.to_string()
    } else {
        Value::String(key.to_string()).to_string()
    };
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

pub struct Obj<'a> {
    pub path: String,
    map: &'a Map<String, Value>,
    seen: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    pub fn new(value: &'a Value, path: &str) -> Result<Obj<'a>> {
        match value {
            Value::Object(map) => Ok(Obj {
                path: path.to_string(),
                map,
                seen: Vec::new(),
            }),
            other => Err(ConfigError::invalid(
                path,
                format!("expected a JSON object, got {}", describe(other)),
            )),
        }
    }

    pub fn at(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The value under `key`; JSON `null` counts as absent, as in pgai's
    /// `jsonb_strip_nulls`-ed configs.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.seen.push(key);
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn has(&self, key: &str) -> bool {
        !matches!(self.map.get(key), None | Some(Value::Null))
    }

    fn missing(&self, key: &str, what: &str) -> ConfigError {
        ConfigError::invalid(
            self.at(key),
            format!("required key is missing; expected {what}"),
        )
    }

    pub fn string(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) if s.contains('\0') => Err(ConfigError::invalid(
                self.at(key),
                "expected a string without NUL characters",
            )),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(ConfigError::invalid(
                self.at(key),
                format!("expected a string, got {}", describe(other)),
            )),
        }
    }

    pub fn required_string(&mut self, key: &'static str) -> Result<String> {
        let s = self
            .string(key)?
            .ok_or_else(|| self.missing(key, "a string"))?;
        if s.trim().is_empty() {
            return Err(ConfigError::invalid(
                self.at(key),
                "expected a non-empty string, got \"\"",
            ));
        }
        Ok(s)
    }

    /// A PostgreSQL identifier: non-empty and short enough not to be
    /// silently truncated.
    pub fn identifier(&mut self, key: &'static str) -> Result<Option<String>> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) => check_identifier(&self.at(key), &s).map(Some),
        }
    }

    pub fn required_identifier(&mut self, key: &'static str) -> Result<String> {
        self.identifier(key)?
            .ok_or_else(|| self.missing(key, "a name"))
    }

    pub fn boolean(&mut self, key: &'static str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ConfigError::invalid(
                self.at(key),
                format!("expected true or false, got {}", describe(other)),
            )),
        }
    }

    /// An integer in `min..=max`.
    pub fn int(&mut self, key: &'static str, min: i64, max: i64) -> Result<Option<i64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let expected = if max == i64::from(i32::MAX) {
            if min == 1 {
                "a positive integer".to_string()
            } else {
                format!("an integer of at least {min}")
            }
        } else {
            format!("an integer between {min} and {max}")
        };
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(ConfigError::invalid(
                self.at(key),
                format!("expected {expected}, got {}", describe(v)),
            )),
        }
    }

    pub fn required_int(&mut self, key: &'static str, min: i64, max: i64) -> Result<i64> {
        let r = self.int(key, min, max)?;
        r.ok_or_else(|| self.missing(key, "an integer"))
    }

    pub fn number(&mut self, key: &'static str, min_exclusive: f64) -> Result<Option<f64>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.as_f64() {
            Some(n) if n > min_exclusive && n.is_finite() => Ok(Some(n)),
            _ => Err(ConfigError::invalid(
                self.at(key),
                format!(
                    "expected a number greater than {min_exclusive}, got {}",
                    describe(v)
                ),
            )),
        }
    }

    /// Any JSON object, kept as it is (provider options).
    pub fn object(&mut self, key: &'static str) -> Result<Option<Value>> {
        match self.get(key) {
            None => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
            Some(other) => Err(ConfigError::invalid(
                self.at(key),
                format!("expected a JSON object, got {}", describe(other)),
            )),
        }
    }

    pub fn string_array(&mut self, key: &'static str) -> Result<Option<Vec<String>>> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return Err(ConfigError::invalid(
                self.at(key),
                format!("expected an array of strings, got {}", describe(v)),
            ));
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(ConfigError::invalid(
                    format!("{}[{i}]", self.at(key)),
                    format!("expected a string, got {}", describe(other)),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// One of a fixed set of strings.
    pub fn choice(&mut self, key: &'static str, allowed: &[&str]) -> Result<Option<String>> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) if allowed.contains(&s.as_str()) => Ok(Some(s)),
            Some(s) => Err(ConfigError::invalid(
                self.at(key),
                format!(
                    "expected one of {}, got {}",
                    allowed.join(", "),
                    describe(&Value::String(s))
                ),
            )),
        }
    }

    /// Every key must have been read: unknown keys are errors, not ignored.
    pub fn finish(self) -> Result<()> {
        let mut unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.seen.contains(&k.as_str()))
            .collect();
        unknown.sort();
        if let Some(k) = unknown.first() {
            let mut known: Vec<&str> = self.seen.clone();
            known.sort();
            known.dedup();
            return Err(ConfigError::invalid(join(&self.path, k), "unknown key")
                .with_hint(format!("valid keys here are: {}", known.join(", "))));
        }
        Ok(())
    }
}

pub fn check_identifier(path: &str, s: &str) -> Result<String> {
    if s.contains('\0') {
        return Err(ConfigError::invalid(
            path,
            "expected a name without NUL characters",
        ));
    }
    if s.is_empty() {
        return Err(ConfigError::invalid(
            path,
            "expected a non-empty name, got \"\"",
        ));
    }
    if s.len() > crate::ident::MAX_IDENTIFIER_BYTES {
        return Err(ConfigError::invalid(
            path,
            format!(
                "name is {} bytes long; PostgreSQL names are at most {} bytes",
                s.len(),
                crate::ident::MAX_IDENTIFIER_BYTES
            ),
        ));
    }
    Ok(s.to_string())
}
