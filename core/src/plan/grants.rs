//! What `grant_to` roles are given: on the vectorizer's own objects, and
//! on shared ones (the source, schemas), recorded so drop takes back
//! exactly what create added.

use super::*;

/// Privileges given to `grant_to` roles on the store and the view.
pub(super) const STORE_PRIVILEGES: &str = "SELECT, INSERT, UPDATE, DELETE";
pub(super) const VIEW_PRIVILEGES: &str = "SELECT";

#[derive(Debug, Clone, PartialEq)]
pub enum GrantTarget {
    /// SELECT on the source table.
    Source,
    /// USAGE on a schema.
    Schema(String),
    /// UPDATE of a column destination's embedding column on the source
    /// (new with the vectorizer, so always granted, and revoked by drop).
    EmbeddingColumn(String),
}

/// A privilege on an object shared with others, for a `grant_to` role.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedGrant {
    pub target: GrantTarget,
    pub role: String,
}

impl SharedGrant {
    /// `source` is the source table's qualified name.
    pub fn grant_sql(&self, source: &str) -> String {
        format!("GRANT {} TO {}", self.what(source), quote_ident(&self.role))
    }

    pub fn revoke_sql(&self, source: &str) -> String {
        format!(
            "REVOKE {} FROM {}",
            self.what(source),
            quote_ident(&self.role)
        )
    }

    fn what(&self, source: &str) -> String {
        match &self.target {
            GrantTarget::Source => format!("SELECT ON {source}"),
            GrantTarget::Schema(s) => format!("USAGE ON SCHEMA {}", quote_ident(s)),
            GrantTarget::EmbeddingColumn(c) => format!("UPDATE ({}) ON {source}", quote_ident(c)),
        }
    }

    /// How the catalog records it.
    pub fn to_json(&self) -> Value {
        match &self.target {
            GrantTarget::Source => {
                json!({"on": "source", "privilege": "SELECT", "role": self.role})
            }
            GrantTarget::Schema(s) => {
                json!({"on": "schema", "schema": s, "privilege": "USAGE", "role": self.role})
            }
            GrantTarget::EmbeddingColumn(c) => {
                json!({"on": "column", "column": c, "privilege": "UPDATE", "role": self.role})
            }
        }
    }

    pub fn from_json(v: &Value) -> Option<SharedGrant> {
        let role = v.get("role")?.as_str()?.to_string();
        let target = match v.get("on")?.as_str()? {
            "source" => GrantTarget::Source,
            "schema" => GrantTarget::Schema(v.get("schema")?.as_str()?.to_string()),
            "column" => GrantTarget::EmbeddingColumn(v.get("column")?.as_str()?.to_string()),
            _ => return None,
        };
        Some(SharedGrant { target, role })
    }
}

/// What a drop that keeps the store and view takes back from the
/// `grant_to` roles on them (they were the vectorizer's to give).
pub fn revoke_kept_sql(
    store: Option<&Relation>,
    view: Option<&Relation>,
    roles: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for role in roles {
        let r = quote_ident(role);
        if let Some(s) = store {
            out.push(format!(
                "REVOKE {STORE_PRIVILEGES} ON {} FROM {r}",
                qualified(&s.schema, &s.name)
            ));
        }
        if let Some(v) = view {
            out.push(format!(
                "REVOKE {VIEW_PRIVILEGES} ON {} FROM {r}",
                qualified(&v.schema, &v.name)
            ));
        }
    }
    out
}
