//! One source row to the texts to embed: load, parse, chunk, format.
//! Pure: no database, no provider.

use serde_json::{Map, Value};

use pgai_migrate_core::config::{Chunking, Component, Formatting, Loading, Parsing};
use pgai_migrate_core::template::{self, Part};

use crate::chunking::Splitter;

/// Why a row produced no texts: the pipeline step and the message, as
/// recorded in the failed queue (`failure_step`) and the errors table.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub step: &'static str,
    pub message: String,
}

impl Failure {
    pub fn new(step: &'static str, message: impl Into<String>) -> Self {
        Failure {
            step,
            message: message.into(),
        }
    }
}

/// A vectorizer's pipeline, compiled once.
pub struct Prepared {
    loading: Option<Loading>,
    parsing: Parsing,
    loading_is_bytea: bool,
    splitter: Result<Splitter, String>,
    template: Result<Option<Vec<Part>>, String>,
}

impl Prepared {
    /// Config errors are kept and reported per key, so one bad vectorizer
    /// never stops the worker. `loading` is None for the `chunk` command,
    /// which is given the document itself.
    pub fn new(
        loading: Option<&Loading>,
        parsing: Parsing,
        chunking: &Chunking,
        formatting: &Formatting,
        loading_is_bytea: bool,
    ) -> Self {
        Prepared {
            loading: loading.cloned(),
            parsing,
            loading_is_bytea,
            splitter: Splitter::new(chunking),
            template: match formatting {
                Formatting::ChunkValue => Ok(None),
                Formatting::PythonTemplate { template: t } => template::parse(t)
                    .map(Some)
                    .map_err(|e| e.python_message(t)),
            },
        }
    }

    /// For a vectorizer whose config cannot be run (its keys are never
    /// claimed).
    pub fn placeholder() -> Self {
        Prepared::new(
            None,
            Parsing::None,
            &Chunking::None,
            &Formatting::ChunkValue,
            false,
        )
    }

    /// From the components of a (possibly partial) config document.
    pub fn from_document(doc: &Value, loading_is_bytea: bool) -> Result<Self, String> {
        let e = |e: pgai_migrate_core::ConfigError| e.to_string();
        let loading = match doc.get("loading") {
            None | Some(Value::Null) => None,
            Some(_) => Some(Loading::from_document(doc).map_err(e)?),
        };
        Ok(Prepared::new(
            loading.as_ref(),
            Parsing::from_document(doc).map_err(e)?,
            &Chunking::from_document(doc).map_err(e)?,
            &Formatting::from_document(doc).map_err(e)?,
            loading_is_bytea,
        ))
    }

    /// The loaded document of a row: None for NULL or empty (no chunks).
    pub fn load<'r>(&self, row: &'r Map<String, Value>) -> Result<Option<&'r str>, Failure> {
        let loading = self
            .loading
            .as_ref()
            .ok_or_else(|| Failure::new("loading", "the config has no loading"))?;
        if let Loading::Uri { .. } = loading {
            return Err(Failure::new(
                "loading",
                "uri loading is not supported by this worker yet",
            ));
        }
        let col = loading.column_name();
        let text = match row.get(col) {
            None => {
                return Err(Failure::new(
                    "loading",
                    format!("the source row has no column {col:?}"),
                ))
            }
            Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(Failure::new(
                    "loading",
                    format!("column {col:?} is not text: {other}"),
                ))
            }
        };
        match (&self.parsing, self.loading_is_bytea) {
            (p @ (Parsing::Pymupdf | Parsing::Docling), _) => {
                return Err(Failure::new("parsing", format!("parsing {:?} is not supported by this worker (it has no document parsers)", p.implementation())))
            }
            (Parsing::Auto, true) => {
                return Err(Failure::new(
                    "parsing",
                    format!("column {col:?} is bytea: documents need a parser (pymupdf, docling), which this worker does not have"),
                ))
            }
            _ => {}
        }
        Ok(if text.is_empty() { None } else { Some(text) })
    }

    /// The formatted chunks of a row, in `chunk_seq` order.
    pub fn chunks(&self, row: &Map<String, Value>) -> Result<Vec<String>, Failure> {
        let Some(text) = self.load(row)? else {
            return Ok(Vec::new());
        };
        let splitter = self
            .splitter
            .as_ref()
            .map_err(|e| Failure::new("chunking", e.clone()))?;
        let chunks = splitter
            .split(text)
            .map_err(|e| Failure::new("chunking", e))?;
        self.format(chunks, row)
    }

    pub fn format(
        &self,
        chunks: Vec<String>,
        row: &Map<String, Value>,
    ) -> Result<Vec<String>, Failure> {
        match self
            .template
            .as_ref()
            .map_err(|e| Failure::new("formatting", e.clone()))?
        {
            None => Ok(chunks),
            Some(parts) => chunks
                .iter()
                .map(|c| {
                    template::substitute(parts, c, row).map_err(|e| Failure::new("formatting", e))
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prepared(cfg: Value, bytea: bool) -> Prepared {
        Prepared::from_document(&cfg, bytea).unwrap()
    }

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn formats_each_chunk_with_the_row() {
        let p = prepared(
            json!({"loading": {"implementation": "column", "column_name": "body"},
                   "chunking": {"implementation": "character_text_splitter", "chunk_size": 5, "chunk_overlap": 0, "separator": " "},
                   "formatting": {"implementation": "python_template", "template": "$title: $chunk"}}),
            false,
        );
        assert_eq!(
            p.chunks(&row(json!({"title": "T", "body": "aaa bbb"})))
                .unwrap(),
            ["T: aaa", "T: bbb"]
        );
    }

    #[test]
    fn null_and_empty_values_have_no_chunks() {
        let p = prepared(
            json!({"loading": {"implementation": "column", "column_name": "body"}}),
            false,
        );
        assert!(p.chunks(&row(json!({"body": null}))).unwrap().is_empty());
        assert!(p.chunks(&row(json!({"body": ""}))).unwrap().is_empty());
    }

    #[test]
    fn what_the_worker_cannot_do_fails_the_key_with_its_step() {
        let uri = prepared(
            json!({"loading": {"implementation": "uri", "column_name": "u"}}),
            false,
        );
        assert_eq!(
            uri.chunks(&row(json!({"u": "s3://x"}))).unwrap_err().step,
            "loading"
        );
        let pdf = prepared(
            json!({"loading": {"implementation": "column", "column_name": "d"}, "parsing": "pymupdf"}),
            true,
        );
        assert_eq!(
            pdf.chunks(&row(json!({"d": "\\x25"}))).unwrap_err().step,
            "parsing"
        );
        let auto = prepared(
            json!({"loading": {"implementation": "column", "column_name": "d"}}),
            true,
        );
        assert!(auto
            .chunks(&row(json!({"d": "\\x25"})))
            .unwrap_err()
            .message
            .contains("bytea"));
        let tpl = prepared(
            json!({"loading": {"implementation": "column", "column_name": "b"},
                   "formatting": {"implementation": "python_template", "template": "$nope $chunk"}}),
            false,
        );
        assert_eq!(
            tpl.chunks(&row(json!({"b": "x"}))).unwrap_err().step,
            "formatting"
        );
    }
}
