//! `run`: drains the vectorizers' queues.
//!
//! One transaction per batch, following the queue protocol of the README
//! ("The work queue"): claim keys by deleting their queue rows with
//! `FOR UPDATE SKIP LOCKED`, read the source rows in a later statement (so
//! every change committed before the claim is seen), replace the keys'
//! chunks in the store, commit. Each of those steps is a call of the
//! extension's `migrate.worker_*` functions, which run it as the
//! vectorizer's owner, security-restricted: the worker itself never runs
//! a statement on a tenant's relations, so no tenant code runs with its
//! rights (docs/security.md, "The worker"). A worker that dies before the commit loses
//! nothing: its claims roll back. A key that fails goes back to the queue
//! with `loading_retries` + 1 and a `loading_retry_after` backoff, or after
//! the configured retries to the failed queue; every failure is a row in
//! `migrate.vectorizer_errors`.
//!
//! Every batch runs under `lock_timeout` and `statement_timeout`: a
//! tenant holding a lock on its own store, or whose code is slow, costs
//! the shared worker one timeout and a back-off for that vectorizer, not
//! everyone's embeddings. A store write that fails is retried key by key,
//! so one key's bad data fails only that key.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::Client;
use serde_json::{json, Map, Value};

use crate::connect::params::Settings;
use crate::embed;
use crate::pipeline::Prepared;
use pgai_migrate_core::config::Evaluated;

mod batch;

use crate::progress::{self, Progress};

pub use batch::{db_error_text, BatchError};

pub struct Options {
    /// Where and how to connect (`--db`, the service file, `PG*`).
    pub db: Settings,
    pub once: bool,
    pub vectorizers: Vec<String>,
    pub concurrency: usize,
    pub poll: Duration,
    pub retry_delay: Duration,
    pub verbose: bool,
    /// Which endpoints and keys the vectorizers' configs may use.
    pub policy: Arc<embed::Policy>,
    pub lock_timeout: Duration,
    pub statement_timeout: Duration,
    /// Seconds between progress lines when stderr is not a terminal.
    pub progress_interval: Duration,
    /// Worker threads at work on each vectorizer now, against its
    /// `processing.concurrency`.
    pub busy: std::sync::Mutex<HashMap<i32, usize>>,
    /// Fetches `uri` loading's documents, within the operator's limits.
    pub loader: Arc<crate::loading::Loader>,
}

/// A worker thread's turn on one vectorizer; gives it back when dropped.
struct Slot<'a> {
    busy: &'a std::sync::Mutex<HashMap<i32, usize>>,
    id: i32,
}

impl<'a> Slot<'a> {
    /// A turn, unless `limit` threads are already at work on `id`.
    fn take(
        busy: &'a std::sync::Mutex<HashMap<i32, usize>>,
        id: i32,
        limit: Option<i64>,
    ) -> Option<Slot<'a>> {
        let mut b = busy.lock().unwrap_or_else(|p| p.into_inner());
        let n = b.entry(id).or_insert(0);
        if limit.is_some_and(|l| *n as i64 >= l.max(1)) {
            return None;
        }
        *n += 1;
        Some(Slot { busy, id })
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut b = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = b.get_mut(&self.id) {
            *n = n.saturating_sub(1);
        }
    }
}

/// A vectorizer as the catalog describes it.
#[derive(Debug, Clone)]
struct Vectorizer {
    id: i32,
    name: String,
    source: String,
    queue: String,
    store: Option<String>,
    pk: Vec<String>,
    config: Value,
    loading_is_bytea: bool,
}

const DISCOVER: &str = "
SELECT v.id, v.name, v.source::text, v.queue_relid::text,
       v.store_relid::text, v.config, v.source_pk,
       coalesce((SELECT a.atttypid = 'bytea'::regtype FROM pg_attribute a
         WHERE a.attrelid = v.source AND a.attname = v.config #>> '{loading,column_name}'
           AND NOT a.attisdropped), false)
FROM migrate.vectorizer v
WHERE NOT coalesce((to_jsonb(v) ->> 'disabled')::boolean, false)
ORDER BY v.id";

fn discover(client: &mut Client) -> Result<Vec<Vectorizer>, postgres::Error> {
    let rows = client.query(DISCOVER, &[])?;
    Ok(rows
        .iter()
        .map(|r| {
            let source_pk: Value = r.get(6);
            Vectorizer {
                id: r.get(0),
                name: r.get(1),
                source: r.get(2),
                queue: r.get(3),
                store: r.get(4),
                config: r.get(5),
                pk: source_pk
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.get("attname")?.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                loading_is_bytea: r.get(7),
            }
        })
        .collect())
}

fn selected(v: &Vectorizer, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted
            .iter()
            .any(|w| *w == v.name || *w == v.id.to_string())
}

/// The key of a row (queue or source) as a comparable string.
fn key_of(row: &Map<String, Value>, pk: &[String]) -> String {
    let vals: Vec<&Value> = pk
        .iter()
        .map(|c| row.get(c).unwrap_or(&Value::Null))
        .collect();
    serde_json::to_string(&vals).unwrap_or_default()
}

fn key_object(row: &Map<String, Value>, pk: &[String]) -> Map<String, Value> {
    pk.iter()
        .map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null)))
        .collect()
}

/// Orders keys as their JSON values compare: numbers numerically, strings
/// by code point. Only used to pick the cursor, so a type whose SQL order
/// differs (collations, uuids as text) merely moves where the next claim
/// starts: every key is still reached when the sweep wraps around.
fn cmp_keys(a: &Map<String, Value>, b: &Map<String, Value>, pk: &[String]) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    for c in pk {
        let o = match (a.get(c), b.get(c)) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => x
                .as_f64()
                .partial_cmp(&y.as_f64())
                .unwrap_or(Ordering::Equal),
            (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
            (x, y) => x.map(Value::to_string).cmp(&y.map(Value::to_string)),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// A compiled vectorizer, cached per worker thread while its config holds.
struct Active {
    v: Vectorizer,
    prepared: Prepared,
    /// Err: why this worker cannot run the config (the real parse error).
    pipeline: Result<Evaluated, String>,
}

struct ErrorRow {
    key: Option<Map<String, Value>>,
    message: String,
    details: Value,
}

pub struct Worker {
    client: Client,
    opts: Arc<Options>,
    stop: Arc<AtomicBool>,
    embedders: embed::Cache,
    active: HashMap<i32, Active>,
    /// Per vectorizer, the last key claimed (see `Statements::claim_after`).
    cursors: HashMap<i32, Value>,
    has_errors_table: bool,
    /// Whether the extension has `worker_index` (0.5.0).
    has_index_fn: bool,
    /// Vectorizers whose index this run has looked at.
    index_checked: HashSet<i32>,
    progress: Arc<Progress>,
}

#[derive(Default, Debug)]
pub struct BatchStats {
    pub claimed: usize,
    pub failed: usize,
    pub chunks: usize,
    /// The vectorizer was altered (or dropped) since it was read: nothing
    /// was done; read it again before the next batch.
    pub stale: bool,
}

/// Why a worker could not start or went on no longer.
pub enum Failed {
    /// Connecting failed: one line, the reason for each host tried.
    Connect(String),
    Db(postgres::Error),
}

impl From<postgres::Error> for Failed {
    fn from(e: postgres::Error) -> Self {
        Failed::Db(e)
    }
}

impl Failed {
    pub fn text(&self) -> String {
        match self {
            Failed::Connect(t) => t.clone(),
            Failed::Db(e) => db_error_text(e),
        }
    }
}

pub fn connect(db: &Settings) -> Result<Client, Failed> {
    let mut client = crate::connect::connect(db).map_err(Failed::Connect)?;
    // Every statement the worker runs looks keys up through an index (the
    // queue's and source's primary keys, the store's unique key). A store
    // that is filling up has stale statistics, and the planner would then
    // scan it whole for each batch's delete: steer it to the indexes.
    // (application_name is sent at connection: `pgai-migrate-worker`
    // unless the conninfo or PGAPPNAME names another.)
    client.batch_execute("SET search_path = pg_catalog, pg_temp; SET enable_seqscan = off")?;
    Ok(client)
}

impl Worker {
    pub fn new(
        opts: Arc<Options>,
        stop: Arc<AtomicBool>,
        progress: Arc<Progress>,
    ) -> Result<Self, Failed> {
        let mut client = connect(&opts.db)?;
        let has_errors_table: bool = client
            .query_one(
                "SELECT to_regclass('migrate.vectorizer_errors') IS NOT NULL",
                &[],
            )?
            .get(0);
        let has_index_fn: bool = client
            .query_one(
                "SELECT to_regprocedure('migrate.worker_index(int4)') IS NOT NULL",
                &[],
            )?
            .get(0);
        Ok(Worker {
            client,
            has_index_fn,
            index_checked: HashSet::new(),
            embedders: embed::Cache::new(opts.policy.clone()),
            opts,
            stop,
            active: HashMap::new(),
            cursors: HashMap::new(),
            has_errors_table,
            progress,
        })
    }

    fn log(&self, msg: impl AsRef<str>) {
        eprintln!("pgai-migrate-worker: {}", msg.as_ref());
    }

    /// Names given with --vectorizer that match nothing in the catalog.
    pub fn unknown_vectorizers(&mut self) -> Result<Vec<String>, postgres::Error> {
        let all = discover(&mut self.client)?;
        Ok(self
            .opts
            .vectorizers
            .iter()
            .filter(|w| !all.iter().any(|v| **w == v.name || **w == v.id.to_string()))
            .cloned()
            .collect())
    }

    /// Runs until the queues are drained (`--once`) or SIGTERM. Returns
    /// whether every batch committed (database errors make `--once` exit 1).
    pub fn run(&mut self) -> Result<bool, postgres::Error> {
        let mut clean = true;
        let mut skip: HashSet<i32> = HashSet::new();
        let mut backoff_until: HashMap<i32, Instant> = HashMap::new();
        while !self.stop.load(Ordering::Relaxed) {
            let vectorizers: Vec<Vectorizer> = discover(&mut self.client)?
                .into_iter()
                .filter(|v| selected(v, &self.opts.vectorizers))
                .collect();
            let mut worked = 0;
            let mut stale = false;
            for v in vectorizers {
                if skip.contains(&v.id)
                    || backoff_until
                        .get(&v.id)
                        .is_some_and(|t| Instant::now() < *t)
                {
                    continue;
                }
                self.activate(v.clone());
                // processing.concurrency: at most that many of this
                // process's threads on the vectorizer at once.
                let limit = self
                    .active
                    .get(&v.id)
                    .and_then(|a| a.pipeline.as_ref().ok())
                    .and_then(|p| p.processing.concurrency());
                let opts = self.opts.clone();
                let Some(_slot) = Slot::take(&opts.busy, v.id, limit) else {
                    continue;
                };
                let mut claimed_here = 0;
                let mut failed_here = false;
                while !self.stop.load(Ordering::Relaxed) {
                    let from_start = !self.cursors.contains_key(&v.id);
                    match self.batch(v.id) {
                        Ok(s) if s.stale => {
                            stale = true;
                            break;
                        }
                        // Past the last key: wrap around once before calling it empty.
                        Ok(s) if s.claimed == 0 && !from_start => continue,
                        Ok(s) if s.claimed == 0 => break,
                        Ok(s) => {
                            worked += s.claimed;
                            claimed_here += s.claimed;
                            self.progress.record(&v.name, s.claimed, s.chunks, s.failed);
                            if self.opts.verbose {
                                self.log(format!(
                                    "{}: {} keys, {} chunks, {} failed",
                                    v.name, s.claimed, s.chunks, s.failed
                                ));
                            }
                        }
                        Err(e) => {
                            let (msg, step) = match e {
                                BatchError::Db(e) if self.client.is_closed() => return Err(e),
                                BatchError::Db(e) => (
                                    format!(
                                        "vectorizer {}: batch rolled back: {}",
                                        v.name,
                                        db_error_text(&e)
                                    ),
                                    "batch",
                                ),
                                BatchError::Config(m) => {
                                    (format!("vectorizer {}: {m}", v.name), "config")
                                }
                            };
                            clean = false;
                            failed_here = true;
                            self.log(&msg);
                            self.record_errors(
                                v.id,
                                &[ErrorRow {
                                    key: None,
                                    message: msg,
                                    details: json!({"step": step}),
                                }],
                            );
                            if self.opts.once {
                                skip.insert(v.id);
                            } else {
                                backoff_until.insert(
                                    v.id,
                                    Instant::now() + self.opts.poll.max(Duration::from_secs(1)) * 6,
                                );
                            }
                            break;
                        }
                    }
                }
                // The vector index, once per run and after each pass that
                // embedded something (the queue may just have emptied);
                // not while the vectorizer's batches fail or its config
                // cannot be run.
                let runnable = self.active.get(&v.id).is_some_and(|a| a.pipeline.is_ok());
                if runnable && !failed_here && (self.index_checked.insert(v.id) || claimed_here > 0)
                {
                    self.index(&v);
                }
            }
            if worked == 0 && !stale {
                if self.opts.once {
                    break;
                }
                self.sleep(self.opts.poll);
            }
        }
        Ok(clean)
    }

    /// Builds (or rebuilds, or drops) the vector index `indexing` asks for,
    /// through the extension's `worker_index`; a failure is an error row
    /// (step `indexing`) and does not stop the worker.
    fn index(&mut self, v: &Vectorizer) {
        if !self.has_index_fn || self.client.is_closed() {
            return;
        }
        // An index build may take longer than a batch's statement_timeout;
        // lock_timeout still applies, so a busy store is retried later.
        let result = self.client.transaction().and_then(|mut tx| {
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = 0",
                self.opts.lock_timeout.as_millis()
            ))?;
            let done: Option<String> = tx
                .query_one("SELECT migrate.worker_index($1)", &[&v.id])?
                .get(0);
            tx.commit()?;
            Ok(done)
        });
        match result {
            Ok(Some(done)) => self.log(format!("{}: {done}", v.name)),
            Ok(None) => {}
            Err(e) => {
                let msg = format!(
                    "vectorizer {}: vector index not built: {}",
                    v.name,
                    db_error_text(&e)
                );
                self.log(&msg);
                self.record_errors(
                    v.id,
                    &[ErrorRow {
                        key: None,
                        message: msg,
                        details: json!({"step": "indexing"}),
                    }],
                );
            }
        }
    }

    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
    }

    fn activate(&mut self, v: Vectorizer) {
        if let Some(a) = self.active.get(&v.id) {
            if a.v.config == v.config
                && a.v.source == v.source
                && a.v.queue == v.queue
                && a.v.store == v.store
                && a.v.pk == v.pk
            {
                return;
            }
        }
        let pipeline = if v.pk.is_empty() {
            Err("the catalog lists no primary-key columns for this vectorizer (migrate.vectorizer.source_pk)".to_string())
        } else {
            Evaluated::from_value(&v.config)
                .map_err(|e| format!("its config cannot be run by this worker: {e}"))
        };
        let prepared = match &pipeline {
            Ok(p) => Prepared::new(
                Some(&p.loading),
                p.parsing,
                &p.chunking,
                &p.formatting,
                v.loading_is_bytea,
            ),
            Err(_) => Prepared::placeholder(),
        };
        self.active.insert(
            v.id,
            Active {
                v,
                prepared,
                pipeline,
            },
        );
    }

    /// Whether the extension has the entry points this worker calls (0.4.0).
    pub fn extension_current(&mut self) -> Result<bool, postgres::Error> {
        Ok(self
            .client
            .query_one(
                "SELECT to_regprocedure('migrate.worker_claim(integer, integer, jsonb)') IS NOT NULL",
                &[],
            )?
            .get(0))
    }

    /// Records failures in their own savepoint: a missing privilege on the
    /// errors table must not lose the batch.
    fn record_errors_in(
        tx: &mut postgres::Transaction<'_>,
        id: i32,
        rows: &[ErrorRow],
    ) -> Result<(), postgres::Error> {
        let payload: Value = rows
            .iter()
            .map(|r| json!({"key": r.key, "message": r.message, "details": r.details}))
            .collect();
        let mut sp = tx.transaction()?;
        sp.execute(
            "INSERT INTO migrate.vectorizer_errors (vectorizer_id, key, message, details) \
             SELECT $1, e -> 'key', e ->> 'message', e -> 'details' FROM jsonb_array_elements($2) e",
            &[&id, &payload],
        )?;
        sp.commit()
    }

    fn record_errors(&mut self, id: i32, rows: &[ErrorRow]) {
        if !self.has_errors_table || rows.is_empty() {
            return;
        }
        let res = self.client.transaction().and_then(|mut tx| {
            Self::record_errors_in(&mut tx, id, rows)?;
            tx.commit()
        });
        if let Err(e) = res {
            self.log(format!("could not record errors: {}", db_error_text(&e)));
        }
    }
}

/// Runs `opts.concurrency` workers, each with its own connection.
pub fn run(opts: Options) -> i32 {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        if let Err(e) = signal_hook::flag::register(sig, stop.clone()) {
            eprintln!("pgai-migrate-worker: cannot handle signal {sig}: {e}");
            return 2;
        }
    }
    let opts = Arc::new(opts);
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let checked = Worker::new(opts.clone(), stop.clone(), progress.clone())
        .and_then(|mut w| Ok((w.extension_current()?, w.unknown_vectorizers()?)));
    match checked {
        Ok((false, _)) => {
            eprintln!(
                "pgai-migrate-worker: the pgai_migrate extension in this database is older than this worker (it has no migrate.worker_claim): run ALTER EXTENSION pgai_migrate UPDATE"
            );
            return 2;
        }
        Ok((_, unknown)) if !unknown.is_empty() => {
            eprintln!(
                "pgai-migrate-worker: no such vectorizer (or it is disabled): {}",
                unknown.join(", ")
            );
            return 2;
        }
        Ok(_) => {}
        Err(e) => {
            eprintln!("pgai-migrate-worker: {}", e.text());
            return 1;
        }
    }
    // The reporter has its own connection and stops with the workers.
    let reporting = Arc::new(AtomicBool::new(false));
    let reporter = connect(&opts.db).ok().map(|client| {
        let (p, names, every, done) = (
            progress.clone(),
            opts.vectorizers.clone(),
            opts.progress_interval,
            reporting.clone(),
        );
        std::thread::spawn(move || progress::report(client, p, names, every, done))
    });
    let threads: Vec<_> = (0..opts.concurrency.max(1))
        .map(|_| {
            let (opts, stop, progress) = (opts.clone(), stop.clone(), progress.clone());
            std::thread::spawn(move || worker_thread(opts, stop, progress))
        })
        .collect();
    let mut code = 0;
    for t in threads {
        match t.join() {
            Ok(true) => {}
            Ok(false) => code = 1,
            Err(_) => code = 1,
        }
    }
    reporting.store(true, Ordering::Relaxed);
    if let Some(r) = reporter {
        let _ = r.join();
    }
    if opts.once {
        eprintln!(
            "pgai-migrate-worker: {}",
            progress.summary(started.elapsed())
        );
    }
    code
}

/// One worker; reconnects after a lost connection unless `--once`.
fn worker_thread(opts: Arc<Options>, stop: Arc<AtomicBool>, progress: Arc<Progress>) -> bool {
    loop {
        let res = Worker::new(opts.clone(), stop.clone(), progress.clone())
            .and_then(|mut w| Ok(w.run()?));
        match res {
            Ok(clean) => return clean,
            Err(e) => {
                eprintln!("pgai-migrate-worker: {}", e.text());
                if opts.once || stop.load(Ordering::Relaxed) {
                    return false;
                }
                let until = Instant::now() + opts.poll.max(Duration::from_secs(1));
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(50));
                }
                if stop.load(Ordering::Relaxed) {
                    return true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_by_their_json_values() {
        let pk = vec!["a".to_string(), "b".to_string()];
        let q = json!({"a": 1, "b": "x", "queued_at": "t"});
        let s = json!({"b": "x", "a": 1, "title": "y"});
        assert_eq!(
            key_of(q.as_object().unwrap(), &pk),
            key_of(s.as_object().unwrap(), &pk)
        );
    }
}
