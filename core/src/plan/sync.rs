//! Following DDL on a source: after any ALTER TABLE/SCHEMA/VIEW, the
//! extension compares what a vectorizer recorded with what the database
//! says now. Renames (of the source, its schema, its key and read
//! columns, the queue, store or view) are followed: the queue, store and
//! view columns are renamed with the key, and the config and catalog names
//! are updated. A changed primary key is refused.

use serde_json::{json, Value};

use crate::error::{ConfigError, ErrorKind, Result};
use crate::ident::{qualified, quote_ident};
use crate::source::KeyColumn;
use crate::template;

/// What the catalog recorded for one vectorizer.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub name: String,
    pub source_pk: Vec<KeyColumn>,
    pub read_columns: Vec<String>,
    pub config: Value,
}

/// What the database says now. Relations are (schema, name) found by OID.
#[derive(Debug, Clone)]
pub struct Current {
    /// The source's regclass text.
    pub source: String,
    /// The source's primary key now: (name, type as format_type prints it).
    pub primary_key: Vec<(String, String)>,
    /// The `UPDATE OF` column list of the vectorizer's update trigger now,
    /// in order (PostgreSQL keeps it by column number through renames).
    pub read_columns: Vec<String>,
    pub queue: (String, String),
    pub failed_queue: (String, String),
    pub store: Option<(String, String)>,
    pub view: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub source_pk: Vec<KeyColumn>,
    pub read_columns: Vec<String>,
    pub config: Value,
    /// Column renames of the queues, store and view, run as the extension
    /// owner.
    pub ddl: Vec<String>,
}

pub fn sync(recorded: &Recorded, now: &Current) -> Result<Synced> {
    let key = |k: &[(String, String)]| {
        k.iter()
            .map(|(n, t)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let was: Vec<(String, String)> = recorded
        .source_pk
        .iter()
        .map(|k| (k.name.clone(), k.type_sql.clone()))
        .collect();
    let types_match = was.len() == now.primary_key.len()
        && was.iter().zip(&now.primary_key).all(|(a, b)| a.1 == b.1);
    if !types_match {
        return Err(ConfigError::new(
            ErrorKind::ObjectState,
            "",
            format!(
                "cannot change the primary key of {}: vectorizer \"{}\" identifies rows by ({})",
                now.source,
                recorded.name,
                key(&was)
            ),
        )
        .with_detail(format!("The primary key would become ({}).", key(&now.primary_key)))
        .with_hint("drop the vectorizer (migrate.drop_vectorizer), change the key, then create the vectorizer again"));
    }
    let mut config = recorded.config.clone();
    let mut ddl = Vec::new();
    let mut source_pk = recorded.source_pk.clone();
    let queues = [&now.queue, &now.failed_queue];
    for (k, (new, _)) in source_pk.iter_mut().zip(&now.primary_key) {
        if &k.name == new {
            continue;
        }
        let rename = |rel: &(String, String), kind: &str| {
            format!(
                "ALTER {kind} {} RENAME COLUMN {} TO {}",
                qualified(&rel.0, &rel.1),
                quote_ident(&k.name),
                quote_ident(new)
            )
        };
        for q in queues {
            ddl.push(rename(q, "TABLE"));
        }
        if let Some(s) = &now.store {
            ddl.push(rename(s, "TABLE"));
        }
        if let Some(v) = &now.view {
            ddl.push(rename(v, "VIEW"));
        }
        k.name = new.clone();
    }

    // Read columns: the loading column and the template's placeholders.
    if recorded.read_columns.len() == now.read_columns.len() {
        for (old, new) in recorded.read_columns.iter().zip(&now.read_columns) {
            if old == new || recorded.source_pk.iter().any(|k| &k.name == old) {
                continue;
            }
            if config["loading"]["column_name"].as_str() == Some(old.as_str()) {
                config["loading"]["column_name"] = json!(new);
            }
            if let Some(t) = config["formatting"]["template"].as_str() {
                if template::references(t).unwrap_or_default().contains(old) {
                    let renamed = template::rename(t, old, new).map_err(|e| {
                        ConfigError::new(
                            ErrorKind::ObjectState,
                            "formatting.template",
                            format!(
                                "cannot rename column \"{old}\" of {} to \"{new}\": vectorizer \"{}\" names it in its template, and {e}",
                                now.source, recorded.name
                            ),
                        )
                    })?;
                    config["formatting"]["template"] = json!(renamed);
                }
            }
            if let Some(v) = &now.view {
                ddl.push(format!(
                    "ALTER VIEW {} RENAME COLUMN {} TO {}",
                    qualified(&v.0, &v.1),
                    quote_ident(old),
                    quote_ident(new)
                ));
            }
        }
    }

    config["source"] = json!(now.source);
    config["queue_schema"] = json!(now.queue.0);
    config["queue_table"] = json!(now.queue.1);
    if let (Some(s), Some(d)) = (&now.store, config.get_mut("destination")) {
        d["target_schema"] = json!(s.0);
        d["target_table"] = json!(s.1);
    }
    if let (Some(v), Some(d)) = (&now.view, config.get_mut("destination")) {
        d["view_schema"] = json!(v.0);
        d["view_name"] = json!(v.1);
    }
    Ok(Synced {
        source_pk,
        read_columns: now.read_columns.clone(),
        config,
        ddl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, t: &str) -> KeyColumn {
        KeyColumn {
            name: name.into(),
            type_sql: t.into(),
            eq_schema: "pg_catalog".into(),
            eq_name: "=".into(),
            eq_type: None,
        }
    }

    fn recorded() -> Recorded {
        Recorded {
            name: "v".into(),
            source_pk: vec![key("id", "integer")],
            read_columns: vec!["id".into(), "title".into(), "content".into()],
            config: json!({
                "source": "public.blog", "queue_schema": "migrate", "queue_table": "_vectorizer_q_1",
                "loading": {"column_name": "content"},
                "formatting": {"template": "$title: $chunk"},
                "destination": {"target_schema": "public", "target_table": "e_store", "view_schema": "public", "view_name": "e"}}),
        }
    }

    fn now() -> Current {
        Current {
            source: "public.blog".into(),
            primary_key: vec![("id".into(), "integer".into())],
            read_columns: vec!["id".into(), "title".into(), "content".into()],
            queue: ("migrate".into(), "_vectorizer_q_1".into()),
            failed_queue: ("migrate".into(), "_vectorizer_q_failed_1".into()),
            store: Some(("public".into(), "e_store".into())),
            view: Some(("public".into(), "e".into())),
        }
    }

    #[test]
    fn nothing_changed_is_nothing_to_do() {
        let s = sync(&recorded(), &now()).unwrap();
        assert!(s.ddl.is_empty());
        assert_eq!(s.config, recorded().config);
    }

    #[test]
    fn renames_are_followed() {
        let mut n = now();
        n.source = "app.posts".into();
        n.primary_key[0].0 = "post_id".into();
        n.read_columns = vec!["post_id".into(), "headline".into(), "body".into()];
        n.store = Some(("app".into(), "chunks".into()));
        let s = sync(&recorded(), &n).unwrap();
        assert_eq!(s.source_pk[0].name, "post_id");
        assert_eq!(s.config["loading"]["column_name"], "body");
        assert_eq!(s.config["formatting"]["template"], "${headline}: $chunk");
        assert_eq!(s.config["source"], "app.posts");
        assert_eq!(s.config["destination"]["target_schema"], "app");
        assert_eq!(s.ddl, vec![
            "ALTER TABLE \"migrate\".\"_vectorizer_q_1\" RENAME COLUMN \"id\" TO \"post_id\"",
            "ALTER TABLE \"migrate\".\"_vectorizer_q_failed_1\" RENAME COLUMN \"id\" TO \"post_id\"",
            "ALTER TABLE \"app\".\"chunks\" RENAME COLUMN \"id\" TO \"post_id\"",
            "ALTER VIEW \"public\".\"e\" RENAME COLUMN \"id\" TO \"post_id\"",
            "ALTER VIEW \"public\".\"e\" RENAME COLUMN \"title\" TO \"headline\"",
            "ALTER VIEW \"public\".\"e\" RENAME COLUMN \"content\" TO \"body\"",
        ]);
    }

    #[test]
    fn a_changed_key_is_refused() {
        let mut n = now();
        n.primary_key = vec![("id".into(), "bigint".into())];
        let e = sync(&recorded(), &n).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ObjectState);
        assert!(
            e.message
                .contains("cannot change the primary key of public.blog"),
            "{}",
            e.message
        );
        n.primary_key = vec![];
        assert!(sync(&recorded(), &n).is_err());
        n.primary_key = vec![
            ("id".into(), "integer".into()),
            ("views".into(), "integer".into()),
        ];
        assert!(sync(&recorded(), &n).is_err());
    }

    #[test]
    fn a_template_column_renamed_to_a_non_identifier_is_refused() {
        let mut n = now();
        n.read_columns[1] = "the title".into();
        let e = sync(&recorded(), &n).unwrap_err();
        assert_eq!(e.path, "formatting.template");
    }
}
