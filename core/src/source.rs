//! What the extension layer tells the pure code about the database: the
//! source table and which extensions are installed.

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TypeCategory {
    /// text, varchar, char and domains over them
    Text,
    Bytea,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SourceColumn {
    pub name: String,
    /// The type as `format_type` prints it with an empty search_path:
    /// schema-qualified where it is not in pg_catalog.
    pub type_sql: String,
    pub category: TypeCategory,
    /// For primary-key columns, the equality operator of the key index's
    /// operator class (operator classes are created by superusers only), so
    /// generated SQL names exactly that operator and never one found by
    /// name: its schema ...
    pub eq_schema: String,
    /// ... its name (`=` for every built-in operator class) ...
    #[serde(default = "default_eq_name")]
    pub eq_name: String,
    /// ... and the operator class's input type, both operands are cast to
    /// (`pg_catalog.text` for a varchar key), so that no operator with a
    /// closer signature can be chosen instead. None for polymorphic input
    /// types (enums, arrays, ranges), which cannot be cast to.
    #[serde(default)]
    pub eq_type: Option<String>,
    /// Schema the type lives in.
    pub type_schema: String,
}

fn default_eq_name() -> String {
    "=".into()
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SourceTable {
    pub schema: String,
    pub name: String,
    /// `regclass` text of the table with an empty search_path.
    pub qualified_name: String,
    /// Role that owns the table; everything created is given to it.
    pub owner: String,
    pub columns: Vec<SourceColumn>,
    /// Primary-key column names in key order.
    pub primary_key: Vec<String>,
    /// A partitioned table: its rows live in partitions, which the
    /// triggers cover. A plain table is read with ONLY, because its
    /// inheritance children are not covered.
    #[serde(default)]
    pub partitioned: bool,
    /// The primary key is a btree index (not a PostgreSQL 18 `WITHOUT
    /// OVERLAPS` key), so its operator classes have an equality operator.
    #[serde(default = "yes")]
    pub primary_key_btree: bool,
    /// For a partitioned table, its leaf partitions (regclass text): a
    /// TRUNCATE of one of them fires no trigger of the partitioned table,
    /// so each gets its own.
    #[serde(default)]
    pub partitions: Vec<String>,
}

fn yes() -> bool {
    true
}

impl SourceTable {
    pub fn column(&self, name: &str) -> Option<&SourceColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Environment {
    /// Schema of the pgvector extension, for `vector(N)`.
    pub vector_schema: String,
    pub has_vectorscale: bool,
    pub has_timescaledb: bool,
}

/// A primary-key column as the catalog records it (`source_pk`), which is
/// all the trigger function needs: the name (the same in the source, the
/// queues and the store) and the pinned equality operator.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct KeyColumn {
    #[serde(rename = "attname")]
    pub name: String,
    #[serde(rename = "typname")]
    pub type_sql: String,
    #[serde(default = "pg_catalog")]
    pub eq_schema: String,
    #[serde(default = "default_eq_name")]
    pub eq_name: String,
    #[serde(default)]
    pub eq_type: Option<String>,
}

fn pg_catalog() -> String {
    "pg_catalog".into()
}

impl From<&SourceColumn> for KeyColumn {
    fn from(c: &SourceColumn) -> KeyColumn {
        KeyColumn {
            name: c.name.clone(),
            type_sql: c.type_sql.clone(),
            eq_schema: c.eq_schema.clone(),
            eq_name: c.eq_name.clone(),
            eq_type: c.eq_type.clone(),
        }
    }
}
