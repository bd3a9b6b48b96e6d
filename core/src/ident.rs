//! Quoting. Every identifier and literal that ends up in generated SQL goes
//! through these two functions; DDL cannot take bind parameters.

/// Quote an identifier the way PostgreSQL's `quote_ident` does, always.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."name"`
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// Quote a string literal the way PostgreSQL's `quote_literal` does: an
/// `E''` literal with doubled backslashes when needed, so the result is
/// correct whatever `standard_conforming_strings` says.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// PostgreSQL truncates identifiers longer than this many bytes.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_always_quoted_and_quotes_doubled() {
        assert_eq!(quote_ident("blog"), "\"blog\"");
        assert_eq!(quote_ident("My \"x\"; DROP"), "\"My \"\"x\"\"; DROP\"");
        assert_eq!(
            qualified("public", "Ünïcode table"),
            "\"public\".\"Ünïcode table\""
        );
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_literal("$$ x"), "'$$ x'");
    }
}
