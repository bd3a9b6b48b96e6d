//! Python `string.Template`, as pgai's worker substitutes it: `$name`,
//! `${name}` and `$$` for a literal dollar sign. The extension checks and
//! renames placeholders with it; the worker renders chunks with it.

use serde_json::{Map, Value};

/// A parsed template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Name(String),
}

/// Where a template has a `$` that starts no placeholder (byte offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid {
    pub at: usize,
}

impl Invalid {
    /// Python's own `ValueError` text, as pgai's worker would report it.
    pub fn python_message(self, template: &str) -> String {
        let before = &template[..self.at];
        let line = before.matches('\n').count() + 1;
        let col = before[before.rfind('\n').map_or(0, |p| p + 1)..]
            .chars()
            .count()
            + 1;
        format!("Invalid placeholder in string: line {line}, col {col}")
    }

    /// The extension's message, for a config that names the template.
    pub fn config_message(self, template: &str) -> String {
        let col = template[..self.at].chars().count() + 1;
        format!(
            "invalid placeholder at character {col}; expected $name, ${{name}} or $$ for a literal dollar sign"
        )
    }
}

fn is_ident_start(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphabetic()
}

fn is_ident(b: u8) -> bool {
    b == b'_' || b.is_ascii_alphanumeric()
}

/// Parses a template as `string.Template` does: `$$`, `$name`, `${name}`
/// with names `[_a-zA-Z][_a-zA-Z0-9]*`; any other `$` is invalid.
pub fn parse(template: &str) -> Result<Vec<Part>, Invalid> {
    let b = template.as_bytes();
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    let mut last = 0;
    let ident_len = |from: &[u8]| from.iter().take_while(|c| is_ident(**c)).count();
    while let Some(off) = template[i..].find('$') {
        let d = i + off;
        text.push_str(&template[last..d]);
        let rest = &b[d + 1..];
        let name = match rest.first() {
            Some(b'$') => {
                text.push('$');
                i = d + 2;
                last = i;
                continue;
            }
            Some(c) if is_ident_start(*c) => {
                let n = 1 + ident_len(&rest[1..]);
                i = d + 1 + n;
                &template[d + 1..d + 1 + n]
            }
            Some(b'{') if rest.get(1).copied().is_some_and(is_ident_start) => {
                let n = 1 + ident_len(&rest[2..]);
                if rest.get(1 + n) != Some(&b'}') {
                    return Err(Invalid { at: d });
                }
                i = d + 3 + n;
                &template[d + 2..d + 2 + n]
            }
            _ => return Err(Invalid { at: d }),
        };
        if !text.is_empty() {
            parts.push(Part::Text(std::mem::take(&mut text)));
        }
        parts.push(Part::Name(name.to_string()));
        last = i;
    }
    text.push_str(&template[last..]);
    if !text.is_empty() {
        parts.push(Part::Text(text));
    }
    Ok(parts)
}

/// The placeholder names a template refers to, in order, or why it is
/// invalid (Python would raise `ValueError` at embedding time).
pub fn references(template: &str) -> Result<Vec<String>, String> {
    let parts = parse(template).map_err(|e| e.config_message(template))?;
    Ok(parts
        .into_iter()
        .filter_map(|p| match p {
            Part::Name(n) => Some(n),
            Part::Text(_) => None,
        })
        .collect())
}

/// Python's `str()` of a row value as psycopg would have returned it.
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

/// The template with every placeholder `$old`/`${old}` naming `new`
/// instead (as `${new}`); an error when `new` cannot be a placeholder.
pub fn rename(template: &str, old: &str, new: &str) -> Result<String, String> {
    if !is_identifier(new) {
        return Err(format!(
            "\"{new}\" cannot be a template placeholder (letters, digits and _ only, not first a digit)"
        ));
    }
    let bytes = template.as_bytes();
    let mut out = String::with_capacity(template.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            let next = template[i..].find('$').map_or(template.len(), |n| i + n);
            out.push_str(&template[i..next]);
            i = next;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'$') => {
                out.push_str("$$");
                i += 2;
            }
            Some(b'{') => {
                let end = template[i + 2..]
                    .find('}')
                    .map_or(template.len(), |e| i + 2 + e);
                let name = &template[i + 2..end.min(template.len())];
                if name == old && end < template.len() {
                    out.push_str(&format!("${{{new}}}"));
                } else {
                    out.push_str(&template[i..(end + 1).min(template.len())]);
                }
                i = (end + 1).min(template.len());
            }
            _ => {
                let mut end = i + 1;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                if &template[i + 1..end] == old {
                    out.push_str(&format!("${{{new}}}"));
                } else {
                    out.push_str(&template[i..end]);
                }
                i = end;
            }
        }
    }
    Ok(out)
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::{parse, references, rename, substitute};
    use serde_json::{json, Value};

    fn fmt(t: &str, row: Value) -> Result<String, String> {
        let parts = parse(t).map_err(|e| e.python_message(t))?;
        substitute(&parts, "CH", row.as_object().unwrap())
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
        for bad in ["${chunk", "$1", "x$", "${}", "${a b}"] {
            assert!(
                fmt(bad, json!({}))
                    .unwrap_err()
                    .starts_with("Invalid placeholder"),
                "{bad}"
            );
        }
        assert!(fmt("$missing", json!({}))
            .unwrap_err()
            .starts_with("KeyError: 'missing'"));
    }

    #[test]
    fn rename_follows_a_column_rename() {
        assert_eq!(
            rename(
                "$title - ${title}: $chunk $$title $titles",
                "title",
                "headline"
            )
            .unwrap(),
            "${headline} - ${headline}: $chunk $$title $titles"
        );
        assert!(rename("$title", "title", "two words").is_err());
    }

    #[test]
    fn finds_both_placeholder_forms() {
        assert_eq!(
            references("$title - ${chunk}!").unwrap(),
            ["title", "chunk"]
        );
        assert_eq!(references("cost: $$5 $chunk").unwrap(), ["chunk"]);
        assert_eq!(references("no placeholders").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rejects_what_python_rejects() {
        assert!(references("$ chunk").is_err());
        assert!(references("${chunk").is_err());
        assert!(references("${1x} $chunk").is_err());
        assert!(references("trailing $")
            .unwrap_err()
            .contains("character 10"));
    }
}
