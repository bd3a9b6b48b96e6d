//! DOCX: the paragraphs of `word/document.xml`, in document order (table
//! cells paragraph by paragraph), one blank line between paragraphs.
//! Deleted revisions (`w:delText`) and field codes (`w:instrText`) are not
//! text; tabs and breaks are kept.

use std::io::{Cursor, Read};

use quick_xml::events::Event;

/// A document.xml larger than this is a zip bomb, not a document.
const MAX_XML: u64 = 256 << 20;

pub fn text(bytes: &[u8]) -> Result<String, String> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("not a readable zip archive ({e})"))?;
    let mut part = zip.by_name("word/document.xml").map_err(|e| match e {
        zip::result::ZipError::FileNotFound => {
            "a zip archive without word/document.xml (not a Word document)".to_string()
        }
        e => format!("word/document.xml: {e}"),
    })?;
    let mut xml = Vec::new();
    (&mut part)
        .take(MAX_XML + 1)
        .read_to_end(&mut xml)
        .map_err(|e| format!("word/document.xml: {e}"))?;
    if xml.len() as u64 > MAX_XML {
        return Err("word/document.xml is larger than 256 MiB uncompressed".into());
    }
    paragraphs(&xml)
}

fn paragraphs(xml: &[u8]) -> Result<String, String> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut buf = Vec::new();
    let mut out: Vec<String> = Vec::new();
    let mut para = String::new();
    let mut in_text = false;
    loop {
        let ev = reader
            .read_event_into(&mut buf)
            .map_err(|e| format!("word/document.xml: {e}"))?;
        match ev {
            Event::Start(e) if e.local_name().as_ref() == b"t" => in_text = true,
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => {
                    let p = std::mem::take(&mut para);
                    if !p.trim().is_empty() {
                        out.push(p.trim_end().to_string());
                    }
                }
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"tab" => para.push('\t'),
                b"br" | b"cr" => para.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => {
                let s = t.decode().map_err(|e| format!("word/document.xml: {e}"))?;
                para.push_str(&s);
            }
            Event::CData(t) if in_text => {
                para.push_str(&String::from_utf8_lossy(&t));
            }
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    para.push(c);
                } else {
                    let name = r.decode().map_err(|e| format!("word/document.xml: {e}"))?;
                    para.push_str(match &*name {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !para.trim().is_empty() {
        out.push(para.trim_end().to_string());
    }
    Ok(out.join("\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>
<w:p><w:r><w:t>First </w:t></w:r><w:r><w:t xml:space="preserve">paragraph &amp; more&#33;</w:t></w:r></w:p>
<w:p/>
<w:p><w:r><w:t>Second</w:t><w:tab/><w:t>tabbed</w:t><w:br/><w:t>broken</w:t></w:r></w:p>
<w:p><w:r><w:delText>deleted</w:delText><w:instrText>PAGE</w:instrText><w:t>Kept</w:t></w:r></w:p>
<w:tbl><w:tr><w:tc><w:p><w:r><w:t>Cell one</w:t></w:r></w:p></w:tc><w:tc><w:p><w:r><w:t>Cell two</w:t></w:r></w:p></w:tc></w:tr></w:tbl>
</w:body></w:document>"#;

    #[test]
    fn paragraphs_come_out_in_order() {
        assert_eq!(
            paragraphs(DOC.as_bytes()).unwrap(),
            "First paragraph & more!\n\nSecond\ttabbed\nbroken\n\nKept\n\nCell one\n\nCell two"
        );
    }

    #[test]
    fn a_docx_is_a_zip_with_document_xml() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file(
            "word/document.xml",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        std::io::Write::write_all(&mut w, DOC.as_bytes()).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        assert!(text(&bytes).unwrap().starts_with("First paragraph"));
        assert!(text(&bytes[..bytes.len() / 2]).unwrap_err().contains("zip"));
        assert!(text(b"not a zip").is_err());
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("x.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let other = w.finish().unwrap().into_inner();
        assert!(text(&other).unwrap_err().contains("not a Word document"));
        assert!(paragraphs(b"<w:p><w:t>x</w:p>").is_err());
    }
}
