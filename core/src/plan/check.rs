//! Checks of a config against the source table and the installed
//! extensions, before anything is planned.

use super::*;

/// Checks of the config against the source table and the installed
/// extensions.
pub(super) fn check_source(config: &Config, source: &SourceTable, env: &Environment) -> Result<()> {
    if source.primary_key.is_empty() {
        return Err(ConfigError::new(
            ErrorKind::ObjectState,
            "source",
            format!("table {} has no primary key", source.qualified_name),
        )
        .with_hint("a vectorizer identifies rows by primary key; add one with ALTER TABLE … ADD PRIMARY KEY"));
    }
    if !source.primary_key_btree {
        return Err(ConfigError::new(
            ErrorKind::FeatureNotSupported,
            "source",
            format!(
                "the primary key of {} is not a btree index (WITHOUT OVERLAPS)",
                source.qualified_name
            ),
        )
        .with_hint("a vectorizer identifies rows by a plain primary key"));
    }
    let column = config.loading.column_name();
    let Some(col) = source.column(column) else {
        return Err(ConfigError::new(
            ErrorKind::UndefinedColumn,
            "loading.column_name",
            format!(
                "column \"{column}\" does not exist in {}",
                source.qualified_name
            ),
        ));
    };
    let parsing = config.parsing.implementation();
    let uri = matches!(config.loading, Loading::Uri { .. });
    match (uri, col.category) {
        (true, TypeCategory::Text) => {}
        (true, _) => {
            return Err(ConfigError::new(
                ErrorKind::DatatypeMismatch,
                "loading.column_name",
                format!(
                    "uri loading needs a text column, \"{column}\" is {}",
                    col.type_sql
                ),
            ))
        }
        (_, TypeCategory::Text)
            if matches!(config.parsing, Parsing::Pymupdf | Parsing::Docling) =>
        {
            return Err(ConfigError::invalid(
                "parsing",
                format!(
                    "parsing \"{parsing}\" needs a bytea column, \"{column}\" is {}",
                    col.type_sql
                ),
            )
            .with_hint("use parsing \"auto\" or \"none\" for text columns"))
        }
        (_, TypeCategory::Text) => {}
        (_, TypeCategory::Bytea) if config.parsing == Parsing::None => {
            return Err(ConfigError::invalid(
                "parsing",
                format!("parsing \"none\" cannot read the bytea column \"{column}\""),
            )
            .with_hint("use parsing \"auto\", \"pymupdf\" or \"docling\" for documents"))
        }
        (_, TypeCategory::Bytea) => {}
        (_, TypeCategory::Other) => {
            return Err(ConfigError::new(
                ErrorKind::DatatypeMismatch,
                "loading.column_name",
                format!(
                    "expected a text, varchar, char or bytea column, \"{column}\" is {}",
                    col.type_sql
                ),
            ))
        }
    }
    if let Some(t) = config.formatting.template() {
        for r in crate::template::references(t).unwrap_or_default() {
            if r != "chunk" && source.column(&r).is_none() {
                return Err(ConfigError::new(
                    ErrorKind::UndefinedColumn,
                    "formatting.template",
                    format!(
                        "${r} refers to column \"{r}\", which does not exist in {}",
                        source.qualified_name
                    ),
                ));
            }
        }
    }
    match &config.destination {
        Destination::Table { .. } => {
            if let Some(c) = source
                .columns
                .iter()
                .find(|c| STORE_COLUMNS.contains(&c.name.as_str()))
            {
                return Err(ConfigError::new(
                    ErrorKind::DuplicateColumn,
                    "source",
                    format!(
                        "column \"{}\" of {} clashes with the embedding view's column of the same name",
                        c.name, source.qualified_name
                    ),
                ));
            }
        }
        Destination::Column { embedding_column } => {
            // A vector column may be one a drop kept: the caller decides
            // whether it can be taken over.
            let kept = |c: &SourceColumn| {
                c.type_sql
                    .ends_with(&format!("vector({})", config.embedding.dimensions()))
            };
            if source.column(embedding_column).is_some_and(|c| !kept(c)) {
                return Err(ConfigError::new(
                    ErrorKind::DuplicateColumn,
                    "destination.embedding_column",
                    format!(
                        "column \"{embedding_column}\" already exists in {}",
                        source.qualified_name
                    ),
                )
                .with_hint("the vectorizer adds this column itself; choose a new name"));
            }
        }
    }
    if let Some(c) = source
        .primary_key
        .iter()
        .find(|c| QUEUE_COLUMNS.contains(&c.as_str()))
    {
        return Err(ConfigError::new(
            ErrorKind::DuplicateColumn,
            "source",
            format!(
                "primary key column \"{c}\" clashes with the work queue's column of the same name"
            ),
        ));
    }
    if matches!(config.indexing, Indexing::Diskann { .. }) && !env.has_vectorscale {
        return Err(ConfigError::new(
            ErrorKind::FeatureNotSupported,
            "indexing.implementation",
            "diskann indexing needs the vectorscale extension, which is not installed",
        )
        .with_hint("CREATE EXTENSION vectorscale, or use indexing \"hnsw\""));
    }
    if matches!(config.scheduling, Scheduling::Timescaledb { .. }) && !env.has_timescaledb {
        return Err(ConfigError::new(
            ErrorKind::FeatureNotSupported,
            "scheduling.implementation",
            "timescaledb scheduling needs the timescaledb extension, which is not installed",
        )
        .with_hint(
            "CREATE EXTENSION timescaledb, or use scheduling \"none\" and run the worker yourself",
        ));
    }
    Ok(())
}
