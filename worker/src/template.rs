//! `python_template` formatting: Python's `string.Template.substitute`
//! (`$$`, `$name`, `${name}`, identifiers `[_a-zA-Z][_a-zA-Z0-9]*`, a missing
//! name is a KeyError, any other `$` a ValueError), with values rendered as
//! Python's `str()` renders the row values pgai passes.

use serde_json::{Map, Value};

/// A parsed template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Name(String),
}

fn is_ident_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_ident(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Parses a template; an invalid placeholder is reported as Python does
/// (`Invalid placeholder in string: line L, col C`).
pub fn parse(template: &str) -> Result<Vec<Part>, String> {
    let b = template.as_bytes();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    let mut last = 0;
    while let Some(off) = template[i..].find('$') {
        let d = i + off;
        text.push_str(&template[last..d]);
        let rest = &b[d + 1..];
        if rest.first() == Some(&b'$') {
            text.push('$');
            i = d + 2;
        } else if rest.first().copied().is_some_and(is_ident_start) {
            let n = 1 + rest[1..].iter().take_while(|c| is_ident(**c)).count();
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Name(template[d + 1..d + 1 + n].to_string()));
            i = d + 1 + n;
        } else if rest.first() == Some(&b'{')
            && rest.get(1).copied().is_some_and(is_ident_start)
            && {
                let n = 1 + rest[2..].iter().take_while(|c| is_ident(**c)).count();
                rest.get(1 + n) == Some(&b'}')
            }
        {
            let n = 1 + rest[2..].iter().take_while(|c| is_ident(**c)).count();
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Name(template[d + 2..d + 2 + n].to_string()));
            i = d + 3 + n;
        } else {
            let before = &template[..d];
            let line = before.matches('\n').count() + 1;
            let col = before[before.rfind('\n').map_or(0, |p| p + 1)..]
                .chars()
                .count()
                + 1;
            return Err(format!(
                "Invalid placeholder in string: line {line}, col {col}"
            ));
        }
        last = i;
    }
    text.push_str(&template[last..]);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// Python's `str()` of a value as psycopg would have returned it.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

/// `Template(template).substitute(chunk=chunk, **row)`.
pub fn substitute(parts: &[Part], chunk: &str, row: &Map<String, Value>) -> Result<String, String> {
    let mut out = String::with_capacity(chunk.len() + 64);
    for p in parts {
        match p {
            Part::Text(t) => out.push_str(t),
            Part::Name(n) if n == "chunk" => out.push_str(chunk),
            Part::Name(n) => match row.get(n) {
                Some(v) => out.push_str(&py_str(v)),
                None => {
                    return Err(format!(
                        "KeyError: '{n}' (the template names a column the row does not have)"
                    ))
                }
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fmt(t: &str, row: Value) -> Result<String, String> {
        substitute(&parse(t)?, "CH", row.as_object().unwrap())
    }

    #[test]
    fn substitutes_like_string_template() {
        let row = json!({"title": "T", "n": 3, "b": true, "x": null, "title2": "U"});
        assert_eq!(fmt("$title - $chunk", row.clone()).unwrap(), "T - CH");
        assert_eq!(fmt("${title}2 $title2", row.clone()).unwrap(), "T2 U");
        assert_eq!(
            fmt("$$chunk costs $$5: $n $b $x", row.clone()).unwrap(),
            "$chunk costs $5: 3 True None"
        );
        assert_eq!(fmt("é$chunk.é", row).unwrap(), "éCH.é");
    }

    #[test]
    fn errors_match_python() {
        assert_eq!(
            fmt("a\nb $ c", json!({})).unwrap_err(),
            "Invalid placeholder in string: line 2, col 3"
        );
        assert!(fmt("${chunk", json!({}))
            .unwrap_err()
            .starts_with("Invalid placeholder"));
        assert!(fmt("$1", json!({}))
            .unwrap_err()
            .starts_with("Invalid placeholder"));
        assert!(fmt("x$", json!({}))
            .unwrap_err()
            .starts_with("Invalid placeholder"));
        assert!(fmt("$missing", json!({}))
            .unwrap_err()
            .starts_with("KeyError: 'missing'"));
    }
}
