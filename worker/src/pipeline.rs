//! One source row to the texts to embed: load, parse, chunk, format.
//! No database, no provider; URIs are fetched through the `Fetch` it is
//! given (the worker's `Loader`, a fake in tests).

use std::borrow::Cow;

use serde_json::{Map, Value};

use pgai_migrate_core::config::{Chunking, Component, Formatting, Loading, Parsing};
use pgai_migrate_core::template::{self, Part};

use crate::chunking::Splitter;
use crate::loading::{Document, Fetch};
use crate::parsing;

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

/// URIs one batch fetches at once.
const FETCHES_AT_ONCE: usize = 8;

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
    /// A URI is fetched with `fetch`; bytes (a bytea column, a fetched
    /// document) are parsed.
    pub fn load<'r>(
        &self,
        row: &'r Map<String, Value>,
        fetch: &dyn Fetch,
    ) -> Result<Option<Cow<'r, str>>, Failure> {
        let loading = self
            .loading
            .as_ref()
            .ok_or_else(|| Failure::new("loading", "the config has no loading"))?;
        let col = loading.column_name();
        let value = match row.get(col) {
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
        let doc = match loading {
            Loading::Uri { aws_role_arn, .. } => {
                let uri = value.trim();
                if uri.is_empty() {
                    return Ok(None);
                }
                fetch
                    .fetch(uri, aws_role_arn.as_deref())
                    .map_err(|e| Failure::new("loading", e))?
            }
            Loading::Column { .. } if self.loading_is_bytea => Document {
                bytes: bytea_hex(value)
                    .map_err(|e| Failure::new("loading", format!("column {col:?}: {e}")))?,
                ..Document::default()
            },
            // Text in a text column is the document (pgai's auto and none).
            Loading::Column { .. } => {
                return Ok((!value.is_empty()).then_some(Cow::Borrowed(value)))
            }
        };
        let text = parsing::parse_within(doc, self.parsing, parsing::TIME_LIMIT)
            .map_err(|e| Failure::new("parsing", e))?;
        Ok((!text.is_empty()).then_some(Cow::Owned(text)))
    }

    /// The formatted chunks of a row, in `chunk_seq` order.
    pub fn chunks(
        &self,
        row: &Map<String, Value>,
        fetch: &dyn Fetch,
    ) -> Result<Vec<String>, Failure> {
        let Some(text) = self.load(row, fetch)? else {
            return Ok(Vec::new());
        };
        let splitter = self
            .splitter
            .as_ref()
            .map_err(|e| Failure::new("chunking", e.clone()))?;
        let chunks = splitter
            .split(&text)
            .map_err(|e| Failure::new("chunking", e))?;
        self.format(chunks, row)
    }

    /// `chunks` of each row (None: a deleted row, no chunks), in order.
    /// URIs are fetched `FETCHES_AT_ONCE` at a time: a batch waits on the
    /// network, not on the CPU.
    pub fn chunks_all(
        &self,
        rows: &[Option<&Map<String, Value>>],
        fetch: &(dyn Fetch + Sync),
    ) -> Vec<Result<Vec<String>, Failure>> {
        let one = |r: &Option<&Map<String, Value>>| match r {
            None => Ok(Vec::new()),
            Some(row) => self.chunks(row, fetch),
        };
        let threads = match self.loading {
            Some(Loading::Uri { .. }) => FETCHES_AT_ONCE.min(rows.len()),
            _ => 1,
        };
        if threads <= 1 {
            return rows.iter().map(one).collect();
        }
        // Thread t takes rows t, t + threads, …; results go back in order.
        let mut out: Vec<Option<Result<Vec<String>, Failure>>> =
            (0..rows.len()).map(|_| None).collect();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let one = &one;
                    s.spawn(move || {
                        (t..rows.len())
                            .step_by(threads)
                            .map(|i| (i, one(&rows[i])))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for h in handles {
                // A thread that panicked leaves its rows' results None.
                if let Ok(done) = h.join() {
                    done.into_iter().for_each(|(i, r)| out[i] = Some(r));
                }
            }
        });
        out.into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(Failure::new(
                        "loading",
                        "the worker thread loading this row failed",
                    ))
                })
            })
            .collect()
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

/// A bytea value as the row's JSON gives it: `\\x` and hex digits.
fn bytea_hex(s: &str) -> Result<Vec<u8>, String> {
    let hex = s
        .strip_prefix("\\x")
        .ok_or("a bytea value should read as \\x… in the row's JSON")?;
    if hex.len() % 2 != 0 {
        return Err("odd number of hex digits in the bytea value".into());
    }
    let digit = |c: u8| {
        (c as char)
            .to_digit(16)
            .ok_or("not a hex digit in the bytea value")
    };
    hex.as_bytes()
        .chunks(2)
        .map(|p| Ok((digit(p[0])? * 16 + digit(p[1])?) as u8))
        .collect()
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
            p.chunks(&row(json!({"title": "T", "body": "aaa bbb"})), &NONE)
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
        assert!(p
            .chunks(&row(json!({"body": null})), &NONE)
            .unwrap()
            .is_empty());
        assert!(p
            .chunks(&row(json!({"body": ""})), &NONE)
            .unwrap()
            .is_empty());
    }

    /// Serves `uri` → (content type, bytes); other URIs fail.
    struct Fake(Vec<(&'static str, Option<&'static str>, &'static [u8])>);

    impl Fetch for Fake {
        fn fetch(&self, uri: &str, role: Option<&str>) -> Result<Document, String> {
            if let Some(r) = role {
                return Err(format!("role {r}"));
            }
            self.0
                .iter()
                .find(|(u, _, _)| *u == uri)
                .map(|(u, ct, b)| Document {
                    bytes: b.to_vec(),
                    content_type: ct.map(String::from),
                    name: u.to_string(),
                })
                .ok_or_else(|| format!("{uri}: HTTP 404"))
        }
    }

    const NONE: Fake = Fake(Vec::new());

    #[test]
    fn uris_are_fetched_and_parsed() {
        let p = prepared(
            json!({"loading": {"implementation": "uri", "column_name": "u"}}),
            false,
        );
        let fake = Fake(vec![
            ("https://h/a.md", None, b"# Title\n\nSome text."),
            (
                "https://h/page",
                Some("text/html"),
                b"<p>Hello <script>x()</script>web</p>",
            ),
            ("https://h/empty.txt", None, b""),
        ]);
        let chunks = |u: Value| p.chunks(&row(json!({ "u": u })), &fake);
        assert_eq!(
            chunks(json!("https://h/a.md")).unwrap(),
            ["# Title\n\nSome text."]
        );
        assert_eq!(chunks(json!(" https://h/page ")).unwrap(), ["Hello web"]);
        assert!(chunks(json!("https://h/empty.txt")).unwrap().is_empty());
        assert!(chunks(json!("")).unwrap().is_empty());
        assert!(chunks(Value::Null).unwrap().is_empty());
        let missing = chunks(json!("https://h/missing")).unwrap_err();
        assert_eq!(
            (missing.step, missing.message.as_str()),
            ("loading", "https://h/missing: HTTP 404")
        );
        let role = prepared(
            json!({"loading": {"implementation": "uri", "column_name": "u", "aws_role_arn": "arn:x"}}),
            false,
        );
        assert_eq!(
            role.chunks(&row(json!({"u": "s3://b/k"})), &fake)
                .unwrap_err()
                .message,
            "role arn:x"
        );
    }

    #[test]
    fn a_batch_of_uris_keeps_its_order() {
        let p = prepared(
            json!({"loading": {"implementation": "uri", "column_name": "u"}}),
            false,
        );
        let fake = Fake(vec![
            ("a", None, b"A"),
            ("b", None, b"B"),
            ("c", None, b"C"),
        ]);
        let rows: Vec<Map<String, Value>> = ["a", "b", "x", "c", "a", "b", "c", "a", "b", "c", "x"]
            .iter()
            .map(|u| row(json!({ "u": u })))
            .collect();
        let mut refs: Vec<Option<&Map<String, Value>>> = rows.iter().map(Some).collect();
        refs.insert(1, None);
        let got: Vec<String> = p
            .chunks_all(&refs, &fake)
            .into_iter()
            .map(|r| r.map(|c| c.join("")).unwrap_or_else(|f| f.step.to_string()))
            .collect();
        assert_eq!(
            got,
            ["A", "", "B", "loading", "C", "A", "B", "C", "A", "B", "C", "loading"]
        );
    }

    #[test]
    fn bytea_documents_are_parsed() {
        let doc = |parsing: &str| {
            prepared(
                json!({"loading": {"implementation": "column", "column_name": "d"}, "parsing": parsing}),
                true,
            )
        };
        let hex = |b: &[u8]| {
            format!(
                "\\x{}",
                b.iter().map(|c| format!("{c:02x}")).collect::<String>()
            )
        };
        let html = row(json!({"d": hex(b"<!doctype html><p>Bytes</p>")}));
        assert_eq!(doc("auto").chunks(&html, &NONE).unwrap(), ["Bytes"]);
        assert_eq!(doc("docling").chunks(&html, &NONE).unwrap(), ["Bytes"]);
        let text = row(json!({"d": hex("plain é".as_bytes())}));
        assert_eq!(doc("pymupdf").chunks(&text, &NONE).unwrap(), ["plain é"]);
        let bad = doc("auto")
            .chunks(&row(json!({"d": hex(b"%PDF-1.4 junk")})), &NONE)
            .unwrap_err();
        assert_eq!(bad.step, "parsing");
        assert!(doc("auto")
            .chunks(&row(json!({"d": "\\x"})), &NONE)
            .unwrap()
            .is_empty());
        assert_eq!(
            doc("auto")
                .chunks(&row(json!({"d": "\\x4"})), &NONE)
                .unwrap_err()
                .step,
            "loading"
        );
    }

    #[test]
    fn bytea_values_decode_from_hex() {
        assert_eq!(bytea_hex("\\x00ff41").unwrap(), [0, 255, b'A']);
        assert_eq!(bytea_hex("\\x").unwrap(), Vec::<u8>::new());
        assert!(bytea_hex("00ff").is_err());
        assert!(bytea_hex("\\x0g").is_err());
    }

    #[test]
    fn a_bad_template_fails_the_key_with_its_step() {
        let tpl = prepared(
            json!({"loading": {"implementation": "column", "column_name": "b"},
                   "formatting": {"implementation": "python_template", "template": "$nope $chunk"}}),
            false,
        );
        assert_eq!(
            tpl.chunks(&row(json!({"b": "x"})), &NONE).unwrap_err().step,
            "formatting"
        );
    }
}
