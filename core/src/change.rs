//! Changing a vectorizer: how a partial config is merged over the stored
//! (evaluated) one, which leaves changed, and what each change costs.
//! `alter_vectorizer` and `plan_vectorizer` both go through here, so the
//! plan always says what the alter does.

use serde_json::{Map, Value};

use crate::error::{ConfigError, Result};
use crate::json::describe;

/// What a changed leaf needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Applied to the catalog and the objects; stored embeddings stay valid.
    InPlace,
    /// Stored embeddings no longer match the config: every row is queued
    /// again.
    Reembed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::InPlace => "in_place",
            Action::Reembed => "reembed",
        }
    }
}

/// One changed leaf of the evaluated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Dotted JSON path, e.g. `chunking.chunk_size`.
    pub path: String,
    /// None where the key was absent.
    pub old: Option<Value>,
    pub new: Option<Value>,
    pub action: Action,
}

/// Keys only `create_vectorizer` understands.
pub const CREATE_ONLY: [&str; 2] = ["if_not_exists", "enqueue_existing"];

/// Merges `changes` (a partial config, same keys as create's) over the
/// stored config. A top-level key replaces the stored value, except a
/// sub-object without `"implementation"`, which is merged into the stored
/// one key by key (`{"chunking": {"chunk_size": 500}}` keeps the splitter
/// and its other options). A sub-object that names its implementation
/// replaces the stored one whole, its missing options taking their
/// defaults, as in create. The result is parsed again by the caller.
pub fn merge(current: &Value, changes: &Value) -> Result<Value> {
    let Some(changes) = changes.as_object() else {
        return Err(ConfigError::invalid(
            "",
            format!(
                "changes must be a JSON object of config keys, got {}",
                describe(changes)
            ),
        ));
    };
    let mut out = current.as_object().cloned().unwrap_or_default();
    for (key, value) in changes {
        if CREATE_ONLY.contains(&key.as_str()) {
            return Err(ConfigError::invalid(
                key.as_str(),
                "applies only to create_vectorizer, not to a change",
            ));
        }
        let merged = match (out.get(key), value) {
            (Some(Value::Object(old)), Value::Object(new))
                if !new.contains_key("implementation") && old.contains_key("implementation") =>
            {
                let mut m = old.clone();
                // `destination` is shorthand for target_table and
                // view_name: it replaces both.
                if key == "destination" && new.contains_key("destination") {
                    m.remove("target_table");
                    m.remove("view_name");
                }
                for (k, v) in new {
                    m.insert(k.clone(), v.clone());
                }
                Value::Object(m)
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Ok(Value::Object(out))
}

/// Every leaf that differs between two evaluated configs, in path order,
/// with what it needs. Arrays are leaves.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", Some(old), Some(new), &mut out);
    out
}

fn walk(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                walk(&p, a.get(k), b.get(k), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(Change {
            path: path.to_string(),
            old: a.cloned(),
            new: b.cloned(),
            action: action(path),
        }),
    }
}

/// Which changes keep the stored embeddings valid. Renames of the
/// vectorizer and of its objects, how and when work is scheduled and
/// indexed, who may use it, retry counts and credentials leave every
/// stored embedding as it is; anything that changes what text is embedded
/// or how, or where embeddings live, does not.
pub fn action(path: &str) -> Action {
    const IN_PLACE: [&str; 18] = [
        "name",
        "grant_to",
        "scheduling",
        "processing",
        "indexing",
        "queue_schema",
        "queue_table",
        "loading.retries",
        "loading.aws_role_arn",
        "embedding.api_key_name",
        "embedding.base_url",
        "embedding.user",
        "embedding.keep_alive",
        "destination.target_schema",
        "destination.target_table",
        "destination.view_schema",
        "destination.view_name",
        "destination.embedding_column",
    ];
    let top = |p: &str| path == p || path.starts_with(&format!("{p}."));
    if IN_PLACE.iter().any(|p| top(p)) {
        Action::InPlace
    } else {
        Action::Reembed
    }
}

/// The reembed changes' paths, for messages.
pub fn reembed_paths(changes: &[Change]) -> Vec<&str> {
    changes
        .iter()
        .filter(|c| c.action == Action::Reembed)
        .map(|c| c.path.as_str())
        .collect()
}

/// Whether any change under `prefix` (a top-level key) is present.
pub fn touches(changes: &[Change], prefix: &str) -> bool {
    changes
        .iter()
        .any(|c| c.path == prefix || c.path.starts_with(&format!("{prefix}.")))
}

/// The stored embeddings cannot be kept at all (only re-queued): another
/// model, provider or dimension count makes every stored vector
/// meaningless next to new ones, and another destination kind has nowhere
/// to keep them.
pub fn clears_embeddings(changes: &[Change]) -> bool {
    changes.iter().any(|c| {
        c.action == Action::Reembed
            && (c.path.starts_with("embedding.") || c.path == "destination.implementation")
    })
}

/// Removes the queue's default name from a config recorded for vectorizer
/// `id`, so that re-creating it from history names the queue after the new
/// id (a name given by the user is kept).
pub fn without_default_queue(config: &Value, id: i64) -> Value {
    let mut c = config.clone();
    if let Some(m) = c.as_object_mut() {
        if m.get("queue_table").and_then(Value::as_str) == Some(&format!("_vectorizer_q_{id}")) {
            m.remove("queue_table");
        }
    }
    c
}

/// Drops the keys only create understands, so a create-style config can
/// be compared with a stored one.
pub fn strip_create_only(config: &Value) -> Value {
    let mut c: Map<String, Value> = config.as_object().cloned().unwrap_or_default();
    for k in CREATE_ONLY {
        c.remove(k);
    }
    Value::Object(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored() -> Value {
        json!({
            "name": "v",
            "source": "public.blog",
            "chunking": {"config_type": "chunking", "implementation": "character_text_splitter",
                         "chunk_size": 800, "chunk_overlap": 400, "separator": "."},
            "destination": {"config_type": "destination", "implementation": "table",
                            "target_schema": "public", "target_table": "b_store",
                            "view_schema": "public", "view_name": "b"},
            "grant_to": ["a"],
        })
    }

    #[test]
    fn options_merge_into_the_same_implementation() {
        let m = merge(&stored(), &json!({"chunking": {"chunk_size": 500}})).unwrap();
        assert_eq!(m["chunking"]["chunk_size"], 500);
        assert_eq!(m["chunking"]["separator"], ".");
        assert_eq!(m["chunking"]["implementation"], "character_text_splitter");
    }

    #[test]
    fn a_named_implementation_replaces_the_whole_object() {
        let m = merge(
            &stored(),
            &json!({"chunking": {"implementation": "character_text_splitter", "chunk_size": 500}}),
        )
        .unwrap();
        assert_eq!(
            m["chunking"],
            json!({"implementation": "character_text_splitter", "chunk_size": 500})
        );
        let m = merge(&stored(), &json!({"chunking": "none"})).unwrap();
        assert_eq!(m["chunking"], "none");
    }

    #[test]
    fn destination_shorthand_replaces_both_names() {
        let m = merge(&stored(), &json!({"destination": {"destination": "x"}})).unwrap();
        assert_eq!(m["destination"]["destination"], "x");
        assert!(m["destination"].get("target_table").is_none());
        assert!(m["destination"].get("view_name").is_none());
        assert_eq!(m["destination"]["target_schema"], "public");
    }

    #[test]
    fn create_only_keys_and_non_objects_are_refused() {
        let e = merge(&stored(), &json!({"if_not_exists": true})).unwrap_err();
        assert_eq!(e.path, "if_not_exists");
        let e = merge(&stored(), &json!([1])).unwrap_err();
        assert!(e.message.contains("got an array"), "{}", e.message);
    }

    #[test]
    fn diff_lists_changed_leaves_with_their_action() {
        let old = stored();
        let new = merge(
            &old,
            &json!({"chunking": {"chunk_size": 500}, "grant_to": ["a", "b"], "name": "w"}),
        )
        .unwrap();
        let d = diff(&old, &new);
        let got: Vec<(&str, Action)> = d.iter().map(|c| (c.path.as_str(), c.action)).collect();
        assert_eq!(
            got,
            vec![
                ("chunking.chunk_size", Action::Reembed),
                ("grant_to", Action::InPlace),
                ("name", Action::InPlace)
            ]
        );
        assert_eq!(d[0].old, Some(json!(800)));
        assert_eq!(d[0].new, Some(json!(500)));
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn absent_keys_are_changes_too() {
        let old = json!({"embedding": {"implementation": "openai", "model": "m", "base_url": "u"}});
        let new = json!({"embedding": {"implementation": "openai", "model": "m"}});
        let d = diff(&old, &new);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].path, "embedding.base_url");
        assert_eq!(d[0].new, None);
        assert_eq!(d[0].action, Action::InPlace);
    }

    #[test]
    fn actions() {
        for p in [
            "scheduling.implementation",
            "indexing.min_rows",
            "processing.batch_size",
            "loading.retries",
            "destination.view_name",
            "queue_table",
            "embedding.api_key_name",
        ] {
            assert_eq!(action(p), Action::InPlace, "{p}");
        }
        for p in [
            "loading.column_name",
            "parsing.implementation",
            "chunking.chunk_size",
            "formatting.template",
            "embedding.model",
            "embedding.dimensions",
            "destination.implementation",
        ] {
            assert_eq!(action(p), Action::Reembed, "{p}");
        }
        // A prefix of a key is not that key.
        assert_eq!(action("names"), Action::Reembed);
    }

    #[test]
    fn clearing() {
        let c = |p: &str| Change {
            path: p.into(),
            old: None,
            new: None,
            action: action(p),
        };
        assert!(clears_embeddings(&[c("embedding.model")]));
        assert!(clears_embeddings(&[c("destination.implementation")]));
        assert!(!clears_embeddings(&[c("chunking.chunk_size")]));
        assert!(!clears_embeddings(&[c("embedding.api_key_name")]));
    }

    #[test]
    fn default_queue_names_follow_the_new_id() {
        let c = json!({"queue_table": "_vectorizer_q_7", "name": "v"});
        assert!(without_default_queue(&c, 7).get("queue_table").is_none());
        assert_eq!(
            without_default_queue(&c, 8)["queue_table"],
            "_vectorizer_q_7"
        );
    }
}
