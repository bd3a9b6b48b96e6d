//! Token-aware inputs for OpenAI's embedding models, as pgai sends them:
//! each input is cut to the model's context (8191 tokens) and decoded back
//! to text, and a request carries at most 300,000 tokens.
//!
//! Tokens are counted with tiktoken's encodings (`tiktoken-rs`). The
//! encoding's data is parsed on the first input it counts, so a process
//! that never embeds with OpenAI never loads it.

use std::borrow::Cow;

use tiktoken_rs::tokenizer::{get_tokenizer, Tokenizer};
use tiktoken_rs::CoreBPE;

/// OpenAI's limit on one embeddings request.
pub const MAX_REQUEST_TOKENS: usize = 300_000;

/// The context of OpenAI's embedding models (pgai's table).
const CONTEXT: &[(&str, usize)] = &[
    ("text-embedding-ada-002", 8191),
    ("text-embedding-3-small", 8191),
    ("text-embedding-3-large", 8191),
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tokens {
    encoding: Tokenizer,
    /// Inputs longer than this are cut; None: only counted.
    context: Option<usize>,
}

impl Tokens {
    /// The encoding tiktoken uses for `model` (none known: None), and the
    /// context to cut to where the model is one of OpenAI's embedders.
    pub fn for_model(model: &str) -> Option<Tokens> {
        let context = CONTEXT.iter().find(|(m, _)| *m == model).map(|(_, n)| *n);
        // OpenAI's embedders use cl100k_base; only it and o200k_base (the
        // newer models') are linked in, to keep the binary small.
        let encoding = get_tokenizer(model)
            .filter(|t| matches!(t, Tokenizer::Cl100kBase | Tokenizer::O200kBase))?;
        Some(Tokens { encoding, context })
    }

    /// Azure serves OpenAI's embedding models under deployment names of
    /// the customer's choosing: cl100k_base and 8191 tokens unless the
    /// name is a model tiktoken knows.
    pub fn for_azure(deployment: &str) -> Tokens {
        Tokens::for_model(deployment)
            .filter(|t| t.context.is_some())
            .unwrap_or(Tokens {
                encoding: Tokenizer::Cl100kBase,
                context: Some(8191),
            })
    }

    pub fn context(&self) -> Option<usize> {
        self.context
    }

    fn bpe(&self) -> &'static CoreBPE {
        match self.encoding {
            Tokenizer::O200kBase => tiktoken_rs::o200k_base_singleton(),
            _ => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    /// `text` cut to the context, and its weight against the request
    /// limit.
    pub fn prepare<'a>(&self, text: &'a str) -> (Cow<'a, str>, usize) {
        let bpe = self.bpe();
        let tokens = bpe.encode_ordinary(text);
        let (text, n) = match self.context {
            Some(max) if tokens.len() > max => {
                let t = truncate(bpe, &tokens, max);
                let n = bpe.encode_ordinary(&t).len();
                (Cow::Owned(t), n)
            }
            _ => (Cow::Borrowed(text), tokens.len()),
        };
        let weight = n.max(estimate(&text));
        (text, weight)
    }
}

/// OpenAI counts a request against its limit with an estimate of about
/// four bytes a token, not with the tokenizer (pgai batches by it too):
/// the larger of the two keeps a request under the limit either way.
pub fn estimate(text: &str) -> usize {
    text.len().div_ceil(4)
}

/// The longest prefix of the decoded first `max` tokens that encodes to
/// at most `max` tokens. A cut inside a character drops its partial bytes
/// (so the text is a prefix of the input); re-encoding the end of the
/// prefix may merge differently, so it is checked and shortened until it
/// fits.
fn truncate(bpe: &CoreBPE, tokens: &[u32], max: usize) -> String {
    let mut keep = max.min(tokens.len());
    loop {
        let text = decode_prefix(bpe, &tokens[..keep]);
        if keep == 0 || bpe.encode_ordinary(&text).len() <= max {
            return text;
        }
        keep -= 1;
    }
}

fn decode_prefix(bpe: &CoreBPE, tokens: &[u32]) -> String {
    let bytes = bpe.decode_bytes(tokens).unwrap_or_default();
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_embedders_are_cut_at_8191_tokens_other_models_only_counted() {
        let t = Tokens::for_model("text-embedding-3-small").unwrap();
        assert_eq!(t.context(), Some(8191));
        assert_eq!(t.encoding, Tokenizer::Cl100kBase);
        let g = Tokens::for_model("gpt-4o").unwrap();
        assert_eq!((g.encoding, g.context()), (Tokenizer::O200kBase, None));
        assert!(Tokens::for_model("nomic-embed-text").is_none());
        assert!(Tokens::for_model("text-davinci-003").is_none());
        assert_eq!(Tokens::for_azure("my-embeddings").context(), Some(8191));
    }

    #[test]
    fn long_inputs_are_cut_to_a_prefix_of_at_most_the_context() {
        let t = Tokens::for_model("text-embedding-3-small").unwrap();
        // Multi-byte characters whose tokens split them, and whitespace
        // runs whose merging depends on what follows.
        let unit = "héllo wörld — 日本語のテキスト  \n\n  emoji 🎉🎉 ";
        let long = unit.repeat(2000);
        let (cut, weight) = t.prepare(&long);
        assert!(long.starts_with(cut.as_ref()) && cut.len() < long.len());
        let n = t.bpe().encode_ordinary(&cut).len();
        assert!(n <= 8191 && n > 8100, "{n}");
        assert_eq!(weight, n.max(estimate(&cut)));
        let (same, w) = t.prepare("a short text");
        assert!(matches!(same, Cow::Borrowed("a short text")));
        assert_eq!(w, 3);
    }

    #[test]
    fn a_cut_inside_a_character_drops_its_partial_bytes() {
        let bpe = Tokens::for_model("text-embedding-3-small").unwrap().bpe();
        let tokens = bpe.encode_ordinary("🎉");
        assert!(tokens.len() > 1);
        assert_eq!(decode_prefix(bpe, &tokens[..1]), "");
        assert_eq!(truncate(bpe, &tokens, 1), "");
    }
}
