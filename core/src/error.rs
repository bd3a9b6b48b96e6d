use std::fmt;

/// What went wrong, mapped one-to-one onto a PostgreSQL SQLSTATE by the
/// extension layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 22023 invalid_parameter_value: the config itself is malformed.
    InvalidConfig,
    /// 42P01 undefined_table
    UndefinedTable,
    /// 42703 undefined_column
    UndefinedColumn,
    /// 42804 datatype_mismatch
    DatatypeMismatch,
    /// 42701 duplicate_column
    DuplicateColumn,
    /// 55000 object_not_in_prerequisite_state
    ObjectState,
    /// 42704 undefined_object
    UndefinedObject,
    /// 3F000 invalid_schema_name
    UndefinedSchema,
    /// 42P07 duplicate_table
    DuplicateTable,
    /// 42710 duplicate_object
    DuplicateObject,
    /// 42501 insufficient_privilege
    InsufficientPrivilege,
    /// 0A000 feature_not_supported
    FeatureNotSupported,
    /// 42809 wrong_object_type
    WrongObjectType,
    /// 22004 null_value_not_allowed
    NullValue,
}

impl ErrorKind {
    pub fn sqlstate(self) -> &'static str {
        match self {
            ErrorKind::InvalidConfig => "22023",
            ErrorKind::UndefinedTable => "42P01",
            ErrorKind::UndefinedColumn => "42703",
            ErrorKind::DatatypeMismatch => "42804",
            ErrorKind::DuplicateColumn => "42701",
            ErrorKind::ObjectState => "55000",
            ErrorKind::UndefinedObject => "42704",
            ErrorKind::UndefinedSchema => "3F000",
            ErrorKind::DuplicateTable => "42P07",
            ErrorKind::DuplicateObject => "42710",
            ErrorKind::InsufficientPrivilege => "42501",
            ErrorKind::FeatureNotSupported => "0A000",
            ErrorKind::WrongObjectType => "42809",
            ErrorKind::NullValue => "22004",
        }
    }
}

/// An error that names the JSON path it is about, e.g.
/// `embedding.dimensions: expected an integer between 1 and 16000, got "abc"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub kind: ErrorKind,
    pub path: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl ConfigError {
    pub fn new(kind: ErrorKind, path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            kind,
            path: path.into(),
            message: message.into(),
            detail: None,
            hint: None,
        }
    }

    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidConfig, path, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_detail_opt(mut self, detail: Option<String>) -> Self {
        if detail.is_some() {
            self.detail = detail;
        }
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

pub type Result<T> = std::result::Result<T, ConfigError>;
