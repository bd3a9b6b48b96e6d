//! HTML: the readable text of the body, parsed as browsers parse it
//! (html5ever, through scraper). Scripts, styles, templates, embedded
//! objects and the head are not text; block elements end paragraphs; runs
//! of whitespace collapse to one space except inside `<pre>`.

use ego_tree::iter::Edge;
use scraper::{Html, Node};

const SKIPPED: &[&str] = &[
    "head", "script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed",
    "canvas", "select", "button",
];

const BLOCKS: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "body",
    "caption",
    "dd",
    "details",
    "dialog",
    "div",
    "dl",
    "dt",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "td",
    "th",
    "tr",
    "ul",
];

pub fn text(html: &str) -> String {
    let doc = Html::parse_document(html);
    let mut out = Text::default();
    let mut skip = 0usize;
    let mut pre = 0usize;
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(e) => {
                    let name = e.name();
                    if skip > 0 || SKIPPED.contains(&name) {
                        skip += 1;
                    } else if name == "br" {
                        out.line_break();
                    } else if BLOCKS.contains(&name) {
                        out.paragraph();
                        pre += (name == "pre") as usize;
                    }
                }
                Node::Text(t) if skip == 0 => out.push(t, pre > 0),
                _ => {}
            },
            Edge::Close(node) => {
                if let Node::Element(e) = node.value() {
                    let name = e.name();
                    if skip > 0 {
                        skip -= 1;
                    } else if BLOCKS.contains(&name) {
                        out.paragraph();
                        pre -= (name == "pre" && pre > 0) as usize;
                    }
                }
            }
        }
    }
    out.finish()
}

#[derive(Default)]
struct Text {
    paragraphs: Vec<String>,
    current: String,
}

impl Text {
    fn push(&mut self, s: &str, pre: bool) {
        if pre {
            self.current.push_str(s);
            return;
        }
        for (i, word) in s.split(|c: char| c.is_ascii_whitespace()).enumerate() {
            let at_start = self.current.is_empty() || self.current.ends_with(['\n', ' ']);
            if i > 0 && !at_start {
                self.current.push(' ');
            }
            self.current.push_str(word);
        }
    }

    fn line_break(&mut self) {
        let t = self.current.trim_end_matches(' ').len();
        self.current.truncate(t);
        self.current.push('\n');
    }

    fn paragraph(&mut self) {
        let p = std::mem::take(&mut self.current);
        let p = p.trim_matches(|c: char| c.is_ascii_whitespace());
        if !p.is_empty() {
            self.paragraphs.push(p.to_string());
        }
    }

    fn finish(mut self) -> String {
        self.paragraph();
        self.paragraphs.join("\n\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_text_without_markup_scripts_or_styles() {
        let html = r#"<!DOCTYPE html><html><head><title>T</title>
            <style>body { color: red }</style><script>var secret = 1;</script></head>
            <body><h1>The   title</h1>
            <p>First <b>bold</b>
               sentence &amp; more.</p><script>alert("no")</script>
            <ul><li>one</li><li>two</li></ul>
            <p>line<br>break</p><pre>  keep
   spaces</pre><noscript>nojs</noscript>
            <div>trailing <span>span</span></div></body></html>"#;
        assert_eq!(
            text(html),
            "The title\n\nFirst bold sentence & more.\n\none\n\ntwo\n\nline\nbreak\n\nkeep\n   spaces\n\ntrailing span"
        );
    }

    #[test]
    fn fragments_and_broken_markup_still_give_text() {
        assert_eq!(text("just <i>text"), "just text");
        assert_eq!(text("<p>a<p>b</div></span>"), "a\n\nb");
        assert_eq!(text(""), "");
    }
}
