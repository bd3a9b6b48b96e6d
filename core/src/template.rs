//! Python `string.Template` placeholders, as pgai's worker substitutes them:
//! `$name`, `${name}` and `$$` for a literal dollar sign.

/// The placeholder names a template refers to, in order, or why it is
/// invalid (Python would raise `ValueError` at embedding time).
pub fn references(template: &str) -> Result<Vec<String>, String> {
    let bytes = template.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        match bytes.get(i) {
            Some(b'$') => i += 1,
            Some(b'{') => {
                let end = template[i + 1..].find('}').map(|e| i + 1 + e);
                match end {
                    Some(end) if is_identifier(&template[i + 1..end]) => {
                        out.push(template[i + 1..end].to_string());
                        i = end + 1;
                    }
                    _ => return Err(invalid(template, start)),
                }
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let mut end = i;
                while end < bytes.len()
                    && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_')
                {
                    end += 1;
                }
                out.push(template[i..end].to_string());
                i = end;
            }
            _ => return Err(invalid(template, start)),
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

fn invalid(template: &str, at: usize) -> String {
    let col = template[..at].chars().count() + 1;
    format!(
        "invalid placeholder at character {col}; expected $name, ${{name}} or $$ for a literal dollar sign"
    )
}

#[cfg(test)]
mod tests {
    use super::{references, rename};

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
