//! The vector index a vectorizer's `indexing` asks for, as pgai's worker
//! builds it: once the embeddings hold `min_rows` rows (and, with
//! `create_when_queue_empty`, the queue is empty). Each index this project
//! makes carries a comment (`MARKER` + its settings), which is how it is
//! found again and how an altered `indexing` is told from the built one.

use crate::config::Indexing;
use crate::ident::{quote_ident, quote_literal};

/// The start of the comment on every index this project builds.
pub const MARKER: &str = "pgai_migrate vector index: ";

/// pgai's `min_rows` default for `indexing_default`, `_hnsw`, `_diskann`.
pub const DEFAULT_MIN_ROWS: i64 = 100_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The access method: `hnsw` (pgvector) or `diskann` (pgvectorscale).
    pub method: &'static str,
    /// The extension that must provide the method and the operator class.
    pub extension: &'static str,
    pub opclass: String,
    pub min_rows: i64,
    pub when_queue_empty: bool,
    /// Storage parameters, in the config's order.
    pub with: Vec<(&'static str, String)>,
}

/// What `indexing` asks for; `vectorscale` is whether that extension is in
/// the database (`indexing_default` then means diskann, as in pgai).
pub fn wanted(indexing: &Indexing, vectorscale: bool) -> Option<Wanted> {
    let int = |k: &'static str, v: &Option<i64>| v.map(|v| (k, v.to_string()));
    match indexing {
        Indexing::None => None,
        Indexing::Default if vectorscale => Some(Wanted {
            method: "diskann",
            extension: "vectorscale",
            opclass: "vector_cosine_ops".into(),
            min_rows: DEFAULT_MIN_ROWS,
            when_queue_empty: true,
            with: Vec::new(),
        }),
        Indexing::Default => Some(Wanted {
            method: "hnsw",
            extension: "vector",
            opclass: "vector_cosine_ops".into(),
            min_rows: DEFAULT_MIN_ROWS,
            when_queue_empty: true,
            with: Vec::new(),
        }),
        Indexing::Hnsw {
            min_rows,
            opclass,
            m,
            ef_construction,
            create_when_queue_empty,
        } => Some(Wanted {
            method: "hnsw",
            extension: "vector",
            opclass: opclass.clone(),
            min_rows: *min_rows,
            when_queue_empty: *create_when_queue_empty,
            with: [int("m", m), int("ef_construction", ef_construction)]
                .into_iter()
                .flatten()
                .collect(),
        }),
        Indexing::Diskann {
            min_rows,
            storage_layout,
            num_neighbors,
            search_list_size,
            max_alpha,
            num_dimensions,
            num_bits_per_dimension,
            create_when_queue_empty,
        } => Some(Wanted {
            method: "diskann",
            extension: "vectorscale",
            opclass: "vector_cosine_ops".into(),
            min_rows: *min_rows,
            when_queue_empty: *create_when_queue_empty,
            with: [
                storage_layout
                    .as_ref()
                    .map(|s| ("storage_layout", quote_literal(s))),
                int("num_neighbors", num_neighbors),
                int("search_list_size", search_list_size),
                max_alpha.map(|a| ("max_alpha", a.to_string())),
                int("num_dimensions", num_dimensions),
                int("num_bits_per_dimension", num_bits_per_dimension),
            ]
            .into_iter()
            .flatten()
            .collect(),
        }),
    }
}

impl Wanted {
    /// The comment that identifies the built index and its settings.
    pub fn marker(&self) -> String {
        let with: Vec<String> = self.with.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{MARKER}{} {} {}",
            self.method,
            self.opclass,
            with.join(" ")
        )
        .trim_end()
        .to_string()
    }

    /// `CREATE INDEX` of `name` on `table(column)`; `opclass` is the
    /// operator class already resolved and qualified through the catalogs.
    pub fn create_sql(&self, name: &str, table: &str, column: &str, opclass: &str) -> String {
        let with = if self.with.is_empty() {
            String::new()
        } else {
            let opts: Vec<String> = self
                .with
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            format!(" WITH ({})", opts.join(", "))
        };
        format!(
            "CREATE INDEX {} ON {table} USING {} ({} {opclass}){with}",
            quote_ident(name),
            self.method,
            quote_ident(column)
        )
    }
}

/// The index's name: `<table>_<column>_idx`, cut to PostgreSQL's 63 bytes
/// at a character boundary, with `n` > 0 appended to avoid a taken name.
pub fn index_name(table: &str, column: &str, n: u32) -> String {
    let suffix = if n == 0 {
        "_idx".to_string()
    } else {
        format!("_idx{n}")
    };
    let mut base = format!("{table}_{column}");
    while base.len() + suffix.len() > 63 {
        base.pop();
    }
    base + &suffix
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_indexing_asks_for() {
        assert_eq!(wanted(&Indexing::None, true), None);
        let d = wanted(&Indexing::Default, false).unwrap();
        assert_eq!(
            (d.method, d.min_rows, d.when_queue_empty),
            ("hnsw", 100_000, true)
        );
        assert_eq!(wanted(&Indexing::Default, true).unwrap().method, "diskann");
        let h = wanted(
            &Indexing::Hnsw {
                min_rows: 5,
                opclass: "vector_l2_ops".into(),
                m: Some(8),
                ef_construction: None,
                create_when_queue_empty: false,
            },
            false,
        )
        .unwrap();
        assert_eq!(
            h.marker(),
            "pgai_migrate vector index: hnsw vector_l2_ops m=8"
        );
        assert_eq!(
            h.create_sql("t_embedding_idx", "public.\"T\"", "embedding", "public.vector_l2_ops"),
            "CREATE INDEX \"t_embedding_idx\" ON public.\"T\" USING hnsw (\"embedding\" public.vector_l2_ops) WITH (m = 8)"
        );
        assert_ne!(
            h.marker(),
            d.marker(),
            "a changed setting is a different index"
        );
    }

    #[test]
    fn names_fit_in_63_bytes() {
        assert_eq!(
            index_name("blog_embeddings_store", "embedding", 0),
            "blog_embeddings_store_embedding_idx"
        );
        let long = index_name(&"é".repeat(40), "embedding", 2);
        assert!(long.len() <= 63 && long.ends_with("_idx2"), "{long}");
    }
}
