//! Raising errors with the right SQLSTATE.

use pgai_migrate_core::{ConfigError, ErrorKind};
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgLogLevel;

fn sqlstate(kind: ErrorKind) -> PgSqlErrorCode {
    use PgSqlErrorCode::*;
    match kind {
        ErrorKind::InvalidConfig => ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::UndefinedTable => ERRCODE_UNDEFINED_TABLE,
        ErrorKind::UndefinedColumn => ERRCODE_UNDEFINED_COLUMN,
        ErrorKind::DatatypeMismatch => ERRCODE_DATATYPE_MISMATCH,
        ErrorKind::DuplicateColumn => ERRCODE_DUPLICATE_COLUMN,
        ErrorKind::ObjectState => ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::UndefinedObject => ERRCODE_UNDEFINED_OBJECT,
        ErrorKind::UndefinedSchema => ERRCODE_INVALID_SCHEMA_NAME,
        ErrorKind::DuplicateTable => ERRCODE_DUPLICATE_TABLE,
        ErrorKind::DuplicateObject => ERRCODE_DUPLICATE_OBJECT,
        ErrorKind::InsufficientPrivilege => ERRCODE_INSUFFICIENT_PRIVILEGE,
        ErrorKind::FeatureNotSupported => ERRCODE_FEATURE_NOT_SUPPORTED,
        ErrorKind::WrongObjectType => ERRCODE_WRONG_OBJECT_TYPE,
        ErrorKind::NullValue => ERRCODE_NULL_VALUE_NOT_ALLOWED,
    }
}

/// Raise `e` as a PostgreSQL ERROR; the transaction rolls back, so nothing
/// created so far survives.
pub fn raise(e: ConfigError) -> ! {
    let mut report = ErrorReport::new(sqlstate(e.kind), e.to_string(), "pgai_migrate");
    if let Some(d) = e.detail {
        report = report.set_detail(d);
    }
    if let Some(h) = e.hint {
        report = report.set_hint(h);
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for Result<T, ConfigError> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

/// 22004 for a NULL argument.
pub fn not_null(what: &str) -> ! {
    raise(ConfigError::new(
        ErrorKind::NullValue,
        "",
        format!("{what} must not be NULL"),
    ))
}

/// 42704 for a vectorizer name the catalog does not have.
pub fn unknown_vectorizer(name: &str) -> ! {
    raise(
        ConfigError::new(
            ErrorKind::UndefinedObject,
            "",
            format!("vectorizer \"{name}\" does not exist"),
        )
        .with_hint("SELECT name FROM migrate.vectorizer lists the vectorizers"),
    )
}
