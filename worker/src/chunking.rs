//! Chunking with the exact behaviour of `langchain-text-splitters`
//! (`CharacterTextSplitter` and `RecursiveCharacterTextSplitter` as pgai
//! configures them): lengths in code points, Python's `str.strip`, Python's
//! `re.split` semantics for regex separators, LangChain's merge-with-overlap.

use fancy_regex::Regex;

use pgai_migrate_core::config::Chunking;

/// A separator as LangChain sees it: a literal string (`re.escape`d) or a
/// regular expression.
pub enum Separator {
    Literal(String),
    Regex { source: String, re: Regex },
}

impl Separator {
    fn new(source: &str, is_regex: bool) -> Result<Self, String> {
        if !is_regex || source.is_empty() {
            return Ok(Separator::Literal(source.to_string()));
        }
        let re = Regex::new(&python_classes(source))
            .map_err(|e| format!("invalid separator regex {source:?}: {e}"))?;
        // LangChain concatenates the pieces re.split returns; extra groups
        // would be interleaved (or be None and raise in Python). Refuse them.
        if re.captures_len() > 1 {
            return Err(format!(
                "separator regex {source:?} has capturing groups; use non-capturing groups (?:…)"
            ));
        }
        Ok(Separator::Regex {
            source: source.to_string(),
            re,
        })
    }

    /// The separator as written in the config.
    fn source(&self) -> &str {
        match self {
            Separator::Literal(s) => s,
            Separator::Regex { source, .. } => source,
        }
    }

    fn is_empty(&self) -> bool {
        self.source().is_empty()
    }

    /// `re.search(separator, text)`.
    fn found_in(&self, text: &str) -> Result<bool, String> {
        match self {
            Separator::Literal(s) => {
                Ok(memchr::memmem::find(text.as_bytes(), s.as_bytes()).is_some())
            }
            Separator::Regex { re, .. } => re.is_match(text).map_err(|e| e.to_string()),
        }
    }

    /// Byte ranges of the matches `re.split` splits at, in order.
    fn matches(&self, text: &str) -> Result<Vec<(usize, usize)>, String> {
        match self {
            // memmem (SIMD) finds the same non-overlapping leftmost matches
            // as str::match_indices, faster. Byte offsets of a valid UTF-8
            // needle in valid UTF-8 text are char boundaries.
            Separator::Literal(s) => Ok(memchr::memmem::find_iter(text.as_bytes(), s.as_bytes())
                .map(|i| (i, i + s.len()))
                .collect()),
            Separator::Regex { re, .. } => python_regex_matches(re, text),
        }
    }
}

/// Python's `\s` (for str patterns) also matches U+001C..U+001F, which
/// Unicode's White_Space does not: widen `\s` and `\S` accordingly.
fn python_classes(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut in_class = false;
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str("\\s\\x1c-\\x1f"),
                Some('s') => out.push_str("[\\s\\x1c-\\x1f]"),
                Some('S') if !in_class => out.push_str("[^\\s\\x1c-\\x1f]"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                // A `]` right after `[` or `[^` is a literal.
                let rest = chars.as_str();
                let lead = if rest.starts_with('^') { 1 } else { 0 };
                if rest[lead..].starts_with(']') {
                    out.push_str(&rest[..lead + 1]);
                    chars = rest[lead + 1..].chars();
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The matches Python's `re.split` uses: leftmost, non-overlapping; an empty
/// match is allowed right after a non-empty one, but not at the position of
/// the previous empty match (CPython's `must_advance`).
fn python_regex_matches(re: &Regex, text: &str) -> Result<Vec<(usize, usize)>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut must_advance = false;
    while pos <= text.len() {
        let mut found = re.find_from_pos(text, pos).map_err(|e| e.to_string())?;
        if let Some(m) = &found {
            if must_advance && m.start() == pos && m.end() == pos {
                let Some(c) = text[pos..].chars().next() else {
                    break;
                };
                found = re
                    .find_from_pos(text, pos + c.len_utf8())
                    .map_err(|e| e.to_string())?;
            }
        }
        let Some(m) = found else { break };
        out.push((m.start(), m.end()));
        must_advance = m.start() == m.end();
        pos = m.end();
    }
    Ok(out)
}

/// Where LangChain puts a kept separator.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    No,
    Start,
}

/// `_split_text_with_regex`: the pieces between (or, kept, starting at)
/// the separator's matches, empty pieces dropped. With `keep`, each piece
/// is a contiguous slice of `text`.
fn split_with_separator<'a>(
    text: &'a str,
    sep: &Separator,
    keep: Keep,
) -> Result<Vec<&'a str>, String> {
    if sep.is_empty() {
        return Ok(text
            .char_indices()
            .map(|(i, c)| &text[i..i + c.len_utf8()])
            .collect());
    }
    let matches = sep.matches(text)?;
    let mut out = Vec::with_capacity(matches.len() + 1);
    let mut last = 0;
    match keep {
        Keep::No => {
            for (s, e) in matches {
                out.push(&text[last..s]);
                last = e;
            }
            out.push(&text[last..]);
        }
        Keep::Start => {
            for (s, _) in matches {
                out.push(&text[last..s]);
                last = s;
            }
            out.push(&text[last..]);
        }
    }
    out.retain(|s| !s.is_empty());
    Ok(out)
}

/// Python's `str.isspace` for one character: Unicode White_Space plus the
/// ASCII information separators U+001C..U+001F.
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

/// The length in code points if it is below `limit`, else some value
/// ≥ `limit` (counting stops early: long pieces are only compared).
fn char_len_below(s: &str, limit: usize) -> usize {
    if s.len() < limit {
        return char_len(s);
    }
    if s.len() >= limit.saturating_mul(4) {
        return s.len() / 4; // at most 4 bytes a code point: surely ≥ limit
    }
    // Every code point is at most 4 bytes: count a prefix that surely
    // holds `limit` code points.
    let mut end = (limit * 4).min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let n = s[..end].chars().count();
    if n >= limit {
        n
    } else {
        char_len(s)
    }
}

fn char_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Parameters shared by both splitters.
pub struct Merger {
    chunk_size: usize,
    chunk_overlap: usize,
}

impl Merger {
    /// `_join_docs` with `strip_whitespace=True`.
    fn join(docs: &[&str], sep: &str) -> Option<String> {
        let joined = docs.join(sep);
        let stripped = py_strip(&joined);
        if stripped.is_empty() {
            None
        } else if stripped.len() == joined.len() {
            Some(joined)
        } else {
            Some(stripped.to_string())
        }
    }

    /// `_merge_splits`: greedily packs splits into chunks of at most
    /// `chunk_size` code points, keeping up to `chunk_overlap` of the tail
    /// of one chunk at the start of the next. The current document is always
    /// a window `lo..i` of `splits`.
    fn merge(&self, splits: &[&str], sep: &str, out: &mut Vec<String>) {
        let lens: Vec<usize> = splits.iter().map(|s| char_len(s)).collect();
        self.merge_counted(splits, &lens, sep, out)
    }

    /// `merge` with the splits' lengths already counted.
    fn merge_counted(&self, splits: &[&str], lens: &[usize], sep: &str, out: &mut Vec<String>) {
        let sep_len = char_len(sep);
        let mut lo = 0;
        let mut total = 0usize;
        for i in 0..splits.len() {
            let len = lens[i];
            let sep_if_any = |n: usize| if n > 0 { sep_len } else { 0 };
            if total + len + sep_if_any(i - lo) > self.chunk_size && i > lo {
                if let Some(doc) = Self::join(&splits[lo..i], sep) {
                    out.push(doc);
                }
                while total > self.chunk_overlap
                    || (total + len + sep_if_any(i - lo) > self.chunk_size && total > 0)
                {
                    total -= lens[lo] + if i - lo > 1 { sep_len } else { 0 };
                    lo += 1;
                }
            }
            total += len + if i + 1 - lo > 1 { sep_len } else { 0 };
        }
        if let Some(doc) = Self::join(&splits[lo..], sep) {
            out.push(doc);
        }
    }
}

/// A configured splitter; build once, split many documents.
pub enum Splitter {
    /// `chunking_none`: the whole document is the one chunk.
    None,
    Character {
        merger: Merger,
        separator: Separator,
        merge_separator: String,
    },
    Recursive {
        merger: Merger,
        separators: Vec<Separator>,
    },
}

impl Splitter {
    pub fn new(cfg: &Chunking) -> Result<Self, String> {
        let merger = |size: i64, overlap: i64| -> Result<Merger, String> {
            if size <= 0 || overlap < 0 || overlap > size {
                return Err(format!(
                    "chunking: invalid chunk_size {size} / chunk_overlap {overlap}"
                ));
            }
            Ok(Merger {
                chunk_size: size as usize,
                chunk_overlap: overlap as usize,
            })
        };
        Ok(match cfg {
            Chunking::None => Splitter::None,
            Chunking::CharacterTextSplitter {
                chunk_size,
                chunk_overlap,
                separator,
                is_separator_regex,
            } => {
                let lookaround = *is_separator_regex
                    && ["(?=", "(?<!", "(?<=", "(?!"]
                        .iter()
                        .any(|p| separator.starts_with(p));
                Splitter::Character {
                    merger: merger(*chunk_size, *chunk_overlap)?,
                    separator: Separator::new(separator, *is_separator_regex)?,
                    // LangChain re-inserts the separator as written (even a
                    // regex), except a lookaround.
                    merge_separator: if lookaround {
                        String::new()
                    } else {
                        separator.clone()
                    },
                }
            }
            Chunking::RecursiveCharacterTextSplitter {
                chunk_size,
                chunk_overlap,
                separators,
                is_separator_regex,
            } => {
                let default = ["\n\n", "\n", " ", ""].map(String::from).to_vec();
                let seps = if separators.is_empty() {
                    &default
                } else {
                    separators
                };
                Splitter::Recursive {
                    merger: merger(*chunk_size, *chunk_overlap)?,
                    separators: seps
                        .iter()
                        .map(|s| Separator::new(s, *is_separator_regex))
                        .collect::<Result<_, _>>()?,
                }
            }
        })
    }

    /// The chunks of one document, as `split_text` returns them.
    pub fn split(&self, text: &str) -> Result<Vec<String>, String> {
        match self {
            Splitter::None => Ok(if text.is_empty() {
                vec![]
            } else {
                vec![text.to_string()]
            }),
            Splitter::Character {
                merger,
                separator,
                merge_separator,
            } => {
                let splits = split_with_separator(text, separator, Keep::No)?;
                let mut out = Vec::new();
                merger.merge(&splits, merge_separator, &mut out);
                Ok(out)
            }
            Splitter::Recursive { merger, separators } => {
                let mut out = Vec::new();
                recursive_split(merger, text, separators, &mut out)?;
                Ok(out)
            }
        }
    }
}

/// `RecursiveCharacterTextSplitter._split_text` (keep_separator=True, i.e.
/// at the start of the following piece).
fn recursive_split(
    m: &Merger,
    text: &str,
    separators: &[Separator],
    out: &mut Vec<String>,
) -> Result<(), String> {
    let mut chosen = separators.len() - 1;
    let mut rest: &[Separator] = &[];
    for (i, s) in separators.iter().enumerate() {
        if s.is_empty() {
            chosen = i;
            break;
        }
        if s.found_in(text)? {
            chosen = i;
            rest = &separators[i + 1..];
            break;
        }
    }
    let splits = split_with_separator(text, &separators[chosen], Keep::Start)?;
    let mut good: Vec<&str> = Vec::new();
    let mut good_lens: Vec<usize> = Vec::new();
    for s in splits {
        let len = char_len_below(s, m.chunk_size);
        if len < m.chunk_size {
            good.push(s);
            good_lens.push(len);
            continue;
        }
        if !good.is_empty() {
            m.merge_counted(&good, &good_lens, "", out);
            good.clear();
            good_lens.clear();
        }
        if rest.is_empty() {
            out.push(s.to_string());
        } else {
            recursive_split(m, s, rest, out)?;
        }
    }
    if !good.is_empty() {
        m.merge_counted(&good, &good_lens, "", out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn character(size: i64, overlap: i64, sep: &str, regex: bool) -> Splitter {
        Splitter::new(&Chunking::CharacterTextSplitter {
            chunk_size: size,
            chunk_overlap: overlap,
            separator: sep.into(),
            is_separator_regex: regex,
        })
        .unwrap()
    }

    fn recursive(size: i64, overlap: i64, seps: &[&str], regex: bool) -> Splitter {
        Splitter::new(&Chunking::RecursiveCharacterTextSplitter {
            chunk_size: size,
            chunk_overlap: overlap,
            separators: seps.iter().map(|s| s.to_string()).collect(),
            is_separator_regex: regex,
        })
        .unwrap()
    }

    // Expected values were produced with langchain-text-splitters 1.1.

    #[test]
    fn character_splitter_merges_with_overlap() {
        let s = character(7, 3, " ", false);
        assert_eq!(
            s.split("foo bar baz 123").unwrap(),
            ["foo bar", "bar baz", "baz 123"]
        );
    }

    #[test]
    fn character_splitter_reinserts_a_regex_separator_literally() {
        let s = character(5, 0, r"\.", true);
        assert_eq!(s.split("a.b.c.ddddd").unwrap(), [r"a\.b", "c", "ddddd"]);
    }

    #[test]
    fn character_splitter_lookaround_is_not_reinserted() {
        let s = character(3, 0, "(?=#)", true);
        assert_eq!(s.split("a#b#c").unwrap(), ["a#b", "#c"]);
    }

    #[test]
    fn recursive_splitter_keeps_separators_at_the_start() {
        let s = recursive(10, 0, &["\n\n", "\n", " ", ""], false);
        assert_eq!(
            s.split("Hi.\n\nI'm Harrison.\n\nHow?").unwrap(),
            ["Hi.", "I'm", "Harrison.", "How?"]
        );
    }

    #[test]
    fn long_piece_without_more_separators_is_kept_unstripped() {
        let s = recursive(3, 0, &[" "], false);
        assert_eq!(s.split("ab abcdef").unwrap(), ["ab", " abcdef"]);
    }

    #[test]
    fn empty_and_whitespace_documents_have_no_chunks() {
        let s = recursive(10, 2, &["\n\n", "\n", ".", "?", "!", " ", ""], false);
        assert!(s.split("").unwrap().is_empty());
        assert!(s.split(" \n\t \u{3000}").unwrap().is_empty());
        assert!(character(10, 2, "\n\n", false)
            .split("  \n\n  ")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn lengths_are_code_points() {
        let s = character(4, 0, " ", false);
        assert_eq!(s.split("éé éé ééé").unwrap(), ["éé", "éé", "ééé"]);
    }

    #[test]
    fn bounded_counts_are_exact_below_the_limit() {
        assert_eq!(char_len_below("ééé", 4), 3);
        assert_eq!(char_len_below("ééé", 3), 3);
        assert!(char_len_below(&"é".repeat(1000), 10) >= 10);
        assert_eq!(char_len_below(&format!("{}é", "a".repeat(9)), 11), 10);
    }

    #[test]
    fn python_strip_includes_information_separators() {
        assert_eq!(py_strip("\u{1c}\u{a0} x \u{2028}"), "x");
        assert_eq!(py_strip("\u{200b}x"), "\u{200b}x");
    }

    #[test]
    fn regex_split_follows_python_empty_match_rules() {
        let re = Regex::new("x*").unwrap();
        // re.split('x*', 'axbc') == ['', 'a', '', 'b', 'c', '']
        let m = python_regex_matches(&re, "axbc").unwrap();
        assert_eq!(m, [(0, 0), (1, 2), (2, 2), (3, 3), (4, 4)]);
    }

    #[test]
    fn whitespace_classes_follow_python() {
        assert_eq!(python_classes(r"\s+"), r"[\s\x1c-\x1f]+");
        assert_eq!(
            python_classes(r"[\s,]\S\\s"),
            r"[\s\x1c-\x1f,][^\s\x1c-\x1f]\\s"
        );
        assert_eq!(python_classes(r"[]\s]"), r"[]\s\x1c-\x1f]");
    }

    #[test]
    fn capturing_groups_are_refused() {
        assert!(Splitter::new(&Chunking::CharacterTextSplitter {
            chunk_size: 10,
            chunk_overlap: 0,
            separator: "(a)".into(),
            is_separator_regex: true
        })
        .is_err());
    }

    #[test]
    fn none_keeps_the_document() {
        assert_eq!(Splitter::None.split(" x ").unwrap(), [" x "]);
        assert!(Splitter::None.split("").unwrap().is_empty());
    }
}
