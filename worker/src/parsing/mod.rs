//! Document parsing: a loaded document's bytes to the text that is chunked.
//!
//! `auto`, `pymupdf` and `docling` all pick the parser by the document's
//! magic bytes, then its Content-Type, then its extension: PDF, DOCX and
//! HTML are extracted to plain text; Markdown and plain text pass as they
//! are. (pgai's pymupdf and docling convert to Markdown; here headings,
//! lists and tables come out as plain paragraphs.) `none` passes the text
//! through. Third-party parsers run under `catch_unwind`: a document that
//! makes one panic fails its key (step `parsing`), never the worker.

mod docx;
mod html;
mod pdf;

use pgai_migrate_core::config::Parsing;

use crate::loading::Document;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Docx,
    Html,
    /// Plain text, Markdown, or anything else that is UTF-8.
    Text,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pdf => "PDF",
            Kind::Docx => "DOCX",
            Kind::Html => "HTML",
            Kind::Text => "text",
        }
    }
}

/// Which parser a document needs.
pub fn detect(doc: &Document) -> Kind {
    let b = &doc.bytes;
    // Magic bytes first: they cannot be mislabelled. A PDF may have junk
    // before its header (readers accept up to 1 KiB).
    if memchr::memmem::find(&b[..b.len().min(1024)], b"%PDF-").is_some() {
        return Kind::Pdf;
    }
    if b.starts_with(b"PK\x03\x04") {
        return Kind::Docx;
    }
    let mime = doc.content_type.as_deref().map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match mime.as_deref() {
        Some("application/pdf") => return Kind::Pdf,
        Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document") => {
            return Kind::Docx
        }
        Some("text/html" | "application/xhtml+xml") => return Kind::Html,
        Some("text/plain" | "text/markdown" | "text/x-markdown") => return Kind::Text,
        _ => {}
    }
    let ext = doc
        .name
        .rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => return Kind::Pdf,
        Some("docx") => return Kind::Docx,
        Some("html" | "htm" | "xhtml") => return Kind::Html,
        Some("md" | "markdown" | "txt" | "text") => return Kind::Text,
        _ => {}
    }
    // Unlabelled: sniff HTML as browsers do.
    let head = String::from_utf8_lossy(&b[..b.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    if head.starts_with("<!doctype html") || head.starts_with("<html") {
        return Kind::Html;
    }
    Kind::Text
}

/// The text of a document, or why it has none.
pub fn parse(doc: &Document, parsing: Parsing) -> Result<String, String> {
    let kind = match parsing {
        Parsing::None => Kind::Text,
        Parsing::Auto | Parsing::Pymupdf | Parsing::Docling => detect(doc),
    };
    let text = match kind {
        Kind::Text => {
            return utf8(&doc.bytes).map_err(|e| match parsing {
                Parsing::None => format!("{e} (parsing \"none\" reads UTF-8 text only)"),
                _ => format!("{e}, nor a PDF, DOCX or HTML document"),
            })
        }
        Kind::Pdf => guarded(kind, || pdf::text(&doc.bytes)),
        Kind::Docx => guarded(kind, || docx::text(&doc.bytes)),
        Kind::Html => guarded(kind, || {
            Ok(html::text(&String::from_utf8_lossy(&doc.bytes)))
        }),
    }?;
    Ok(text)
}

/// How long one document's parse may take before its key fails.
pub const TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `parse` on a thread of its own, given up after `limit`: a parser that
/// loops on a hostile document fails that key instead of holding the
/// batch (the thread is left to finish, or spin, on its own).
pub fn parse_within(
    doc: Document,
    parsing: Parsing,
    limit: std::time::Duration,
) -> Result<String, String> {
    // Text needs no parser: no thread.
    if parsing == Parsing::None || detect(&doc) == Kind::Text {
        return parse(&doc, parsing);
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("pgai-migrate-parse".into())
        .spawn(move || {
            let _ = tx.send(parse(&doc, parsing));
        })
        .map_err(|e| format!("cannot start a parser thread: {e}"))?;
    match rx.recv_timeout(limit) {
        Ok(r) => r,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "the parser did not finish within {} s; the document is skipped",
            limit.as_secs()
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("the parser failed on the document".into())
        }
    }
}

fn utf8(b: &[u8]) -> Result<String, String> {
    let b = b.strip_prefix("\u{feff}".as_bytes()).unwrap_or(b);
    match std::str::from_utf8(b) {
        Ok(s) => Ok(s.to_string()),
        Err(e) => Err(format!(
            "the document is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )),
    }
}

/// Runs a parser; a panic is the document's error.
fn guarded(kind: Kind, f: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(e)) => Err(format!("{} document: {e}", kind.name())),
        Err(p) => {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(format!(
                "{} document: the parser failed on it (corrupt or unsupported): {msg}",
                kind.name()
            ))
        }
    }
}

/// Lines trimmed at the end, runs of blank lines to one, no leading or
/// trailing blank lines: extracted text as chunkers expect paragraphs.
fn tidy(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(bytes: &[u8], ct: Option<&str>, name: &str) -> Document {
        Document {
            bytes: bytes.to_vec(),
            content_type: ct.map(String::from),
            name: name.into(),
        }
    }

    #[test]
    fn the_parser_is_picked_by_magic_then_type_then_extension() {
        assert_eq!(
            detect(&doc(b"%PDF-1.4 ...", Some("text/plain"), "a.txt")),
            Kind::Pdf
        );
        assert_eq!(detect(&doc(b"PK\x03\x04...", None, "x")), Kind::Docx);
        assert_eq!(
            detect(&doc(b"<p>x", Some("text/html; charset=utf-8"), "a.txt")),
            Kind::Html
        );
        assert_eq!(
            detect(&doc(b"# Title", Some("text/markdown"), "a.html")),
            Kind::Text
        );
        assert_eq!(
            detect(&doc(b"<p>x</p>", None, "/docs/page.HTM")),
            Kind::Html
        );
        assert_eq!(
            detect(&doc(b"<p>x</p>", Some("application/octet-stream"), "n.md")),
            Kind::Text
        );
        assert_eq!(
            detect(&doc(b"\xef\xbb\xbf <!DOCTYPE html><p>x", None, "")),
            Kind::Html
        );
        assert_eq!(detect(&doc(b"plain words", None, "")), Kind::Text);
    }

    #[test]
    fn text_passes_through_and_must_be_utf8() {
        let md = doc("# Über\n\nText.".as_bytes(), None, "a.md");
        assert_eq!(parse(&md, Parsing::Auto).unwrap(), "# Über\n\nText.");
        assert_eq!(parse(&md, Parsing::None).unwrap(), "# Über\n\nText.");
        let bom = doc(b"\xef\xbb\xbfhi", None, "");
        assert_eq!(parse(&bom, Parsing::Auto).unwrap(), "hi");
        let bin = doc(b"ab\xff\xfe", None, "");
        assert!(parse(&bin, Parsing::None).unwrap_err().contains("offset 2"));
        assert!(parse(&bin, Parsing::Auto)
            .unwrap_err()
            .contains("nor a PDF"));
        // `none` never parses, whatever the bytes.
        let html = doc(b"<p>x</p>", Some("text/html"), "");
        assert_eq!(parse(&html, Parsing::None).unwrap(), "<p>x</p>");
        assert_eq!(parse(&html, Parsing::Pymupdf).unwrap(), "x");
    }

    #[test]
    fn corrupt_documents_are_errors_not_panics() {
        let pdf = doc(b"%PDF-1.7\n1 0 obj << /Type /Catalog", None, "");
        assert!(parse(&pdf, Parsing::Auto)
            .unwrap_err()
            .starts_with("PDF document:"));
        let docx = doc(b"PK\x03\x04\x14\x00\x00\x00", None, "");
        assert!(parse(&docx, Parsing::Docling)
            .unwrap_err()
            .starts_with("DOCX document:"));
        let panicky = guarded(Kind::Pdf, || panic!("index out of bounds"));
        assert!(panicky.unwrap_err().contains("index out of bounds"));
    }

    #[test]
    fn a_parse_is_bounded_in_time() {
        let html = doc(b"<p>quick</p>", Some("text/html"), "");
        let d = std::time::Duration::from_secs(10);
        assert_eq!(parse_within(html, Parsing::Auto, d).unwrap(), "quick");
        let big = "<p>x</p>".repeat(200_000);
        let slow = doc(big.as_bytes(), Some("text/html"), "");
        let e = parse_within(slow, Parsing::Auto, std::time::Duration::ZERO).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }

    #[test]
    fn extracted_text_is_tidied_to_paragraphs() {
        assert_eq!(tidy("\n\n a  \nb\n\n\n\nc   \n\n"), " a\nb\n\nc");
    }
}
