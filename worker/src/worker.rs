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

use postgres::{Client, NoTls};
use serde_json::{json, Map, Value};

use crate::config::Pipeline;
use crate::embed::{self, vector_text};
use crate::pipeline::{Failure, Prepared};

pub struct Options {
    pub db: String,
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
    pipeline: Result<Pipeline, String>,
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

pub fn connect(db: &str) -> Result<Client, postgres::Error> {
    let mut client = Client::connect(db, NoTls)?;
    // Every statement the worker runs looks keys up through an index (the
    // queue's and source's primary keys, the store's unique key). A store
    // that is filling up has stale statistics, and the planner would then
    // scan it whole for each batch's delete: steer it to the indexes.
    client.batch_execute(
        "SET search_path = pg_catalog, pg_temp; SET application_name = 'pgai-migrate-worker'; SET enable_seqscan = off",
    )?;
    Ok(client)
}

impl Worker {
    pub fn new(opts: Arc<Options>, stop: Arc<AtomicBool>) -> Result<Self, postgres::Error> {
        let mut client = connect(&opts.db)?;
        let has_errors_table: bool = client
            .query_one(
                "SELECT to_regclass('migrate.vectorizer_errors') IS NOT NULL",
                &[],
            )?
            .get(0);
        Ok(Worker {
            client,
            embedders: embed::Cache::new(opts.policy.clone()),
            opts,
            stop,
            active: HashMap::new(),
            cursors: HashMap::new(),
            has_errors_table,
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
            Pipeline::from_json(&v.config)
                .map_err(|e| format!("its config cannot be run by this worker: {e}"))
        };
        let prepared = match &pipeline {
            Ok(p) => Prepared::new(p, v.loading_is_bytea),
            Err(_) => Prepared::new(&Pipeline::placeholder(), false),
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

    /// One transaction: claim, read, chunk, embed, store.
    pub fn batch(&mut self, id: i32) -> Result<BatchStats, BatchError> {
        let Some(a) = self.active.get(&id) else {
            return Ok(BatchStats::default());
        };
        let pipeline = a
            .pipeline
            .as_ref()
            .map_err(|e| BatchError::Config(e.clone()))?;
        let v = &a.v;
        let mut stats = BatchStats::default();
        let mut tx = self.client.transaction()?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}; SET LOCAL statement_timeout = {}",
            self.opts.lock_timeout.as_millis(),
            self.opts.statement_timeout.as_millis()
        ))?;
        let size = pipeline.batch_size.clamp(1, i32::MAX as i64) as i32;
        let claimed: Value = match self.cursors.get(&id) {
            None => tx.query_one(
                "SELECT migrate.worker_claim($1::int4, $2::int4, NULL::jsonb)",
                &[&id, &size],
            )?,
            Some(after) => tx.query_one(
                "SELECT migrate.worker_claim($1::int4, $2::int4, $3::jsonb)",
                &[&id, &size, after],
            )?,
        }
        .get(0);
        let claimed: Vec<Map<String, Value>> = objects(claimed);
        stats.claimed = claimed.len();
        // The highest key claimed (the claim's order is not key order).
        let last = claimed
            .iter()
            .map(|k| key_object(k, &v.pk))
            .max_by(|a, b| cmp_keys(a, b, &v.pk));
        match last {
            Some(k) => self.cursors.insert(id, Value::Object(k)),
            None => self.cursors.remove(&id),
        };
        if claimed.is_empty() {
            tx.commit()?;
            return Ok(stats);
        }
        // An alter_vectorizer that committed while this batch waited for
        // the queue re-queued every key for a new config: embedding them
        // with the one read earlier would store stale chunks.
        let current = tx.query_opt(
            "SELECT config = $2 FROM migrate.vectorizer WHERE id = $1",
            &[&id, &v.config],
        )?;
        if !matches!(current.map(|r| r.get::<_, bool>(0)), Some(true)) {
            tx.rollback()?;
            self.cursors.remove(&id);
            return Ok(BatchStats {
                stale: true,
                ..BatchStats::default()
            });
        }
        let keys = Value::Array(
            claimed
                .iter()
                .map(|k| Value::Object(key_object(k, &v.pk)))
                .collect(),
        );
        let rows: Value = tx
            .query_one(
                "SELECT migrate.worker_read($1::int4, $2::jsonb)",
                &[&id, &keys],
            )?
            .get(0);
        let rows: HashMap<String, Map<String, Value>> = objects(rows)
            .into_iter()
            .map(|o| (key_of(&o, &v.pk), o))
            .collect();

        // Chunk and format every claimed key; a deleted row has no chunks.
        let mut outcome: Vec<Result<Vec<String>, Failure>> = claimed
            .iter()
            .map(|k| match rows.get(&key_of(k, &v.pk)) {
                None => Ok(Vec::new()),
                Some(row) => a.prepared.chunks(row),
            })
            .collect();

        // Embed all chunks of the batch together.
        let texts: Vec<String> = outcome
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        let mut vectors = Vec::new();
        if !texts.is_empty() {
            let embedded = match &pipeline.embedding {
                None => Err("the config has no embedding".to_string()),
                Some(cfg) => self.embedders.get(cfg).and_then(|e| e.embed(&texts)),
            };
            match embedded {
                Ok(vs) => vectors = vs,
                Err(msg) => {
                    for o in outcome.iter_mut() {
                        if o.as_ref().is_ok_and(|c| !c.is_empty()) {
                            *o = Err(Failure::new("embedding", msg.clone()));
                        }
                    }
                }
            }
        }

        // Each key's rows for the store (or its column), its vectors
        // checked first: one bad vector fails its key, not the batch.
        let mut vec_iter = vectors.into_iter();
        let mut writes: Vec<(Value, Vec<Value>)> = Vec::new();
        let mut failures: Vec<(usize, Failure)> = Vec::new();
        for (i, (k, o)) in claimed.iter().zip(outcome).enumerate() {
            let key = key_object(k, &v.pk);
            let chunks = match o {
                Ok(chunks) => chunks,
                Err(f) => {
                    failures.push((i, f));
                    continue;
                }
            };
            let mut rows = Vec::new();
            let mut bad = None;
            for (seq, chunk) in chunks.iter().enumerate() {
                let Some(vector) = vec_iter.next() else { break };
                if let Some(msg) = invalid_vector(&vector) {
                    bad.get_or_insert_with(|| {
                        Failure::new("embedding", format!("chunk {seq}: {msg}"))
                    });
                    continue;
                }
                stats.chunks += 1;
                if v.store.is_some() {
                    let mut r = key.clone();
                    r.insert("chunk_seq".into(), json!(seq));
                    r.insert("chunk".into(), json!(chunk));
                    r.insert("embedding".into(), json!(vector_text(&vector)));
                    rows.push(Value::Object(r));
                } else if seq == 0 {
                    let mut r = key.clone();
                    r.insert("embedding".into(), json!(vector_text(&vector)));
                    rows.push(Value::Object(r));
                }
            }
            if let Some(f) = bad {
                failures.push((i, f));
                continue;
            }
            if chunks.is_empty() && v.store.is_none() {
                let mut r = key.clone();
                r.insert("embedding".into(), Value::Null);
                rows.push(Value::Object(r));
            }
            writes.push((Value::Object(key), rows));
        }

        // All keys in one call; should it fail on some key's data (a
        // constraint, a trigger of the owner's), key by key, so the others
        // are stored. A timeout is the vectorizer's, not a key's: the
        // batch rolls back.
        let store = |tx: &mut postgres::Transaction<'_>,
                     w: &[&(Value, Vec<Value>)]|
         -> Result<(), postgres::Error> {
            let keys = Value::Array(w.iter().map(|(k, _)| k.clone()).collect());
            let rows = Value::Array(w.iter().flat_map(|(_, r)| r.iter().cloned()).collect());
            let mut sp = tx.transaction()?;
            sp.execute(
                "SELECT migrate.worker_store($1::int4, $2::jsonb, $3::jsonb)",
                &[&id, &keys, &rows],
            )?;
            sp.commit()
        };
        if !writes.is_empty() {
            let all: Vec<&(Value, Vec<Value>)> = writes.iter().collect();
            if let Err(e) = store(&mut tx, &all) {
                if is_timeout(&e) || e.as_db_error().is_none() {
                    return Err(e.into());
                }
                for w in &writes {
                    if let Err(e) = store(&mut tx, &[w]) {
                        if is_timeout(&e) || e.as_db_error().is_none() {
                            return Err(e.into());
                        }
                        let i = claimed
                            .iter()
                            .position(|k| Value::Object(key_object(k, &v.pk)) == w.0)
                            .unwrap_or(0);
                        let n = w.1.len();
                        stats.chunks -= n.min(stats.chunks);
                        failures.push((i, Failure::new("storing", db_error_text(&e))));
                    }
                }
            }
        }

        let mut requeue = Vec::new();
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        let max_retries = pipeline.loading.as_ref().map_or(6, |l| l.retries());
        failures.sort_by_key(|(i, _)| *i);
        for (i, f) in failures {
            stats.failed += 1;
            let k = &claimed[i];
            let retries = k
                .get("loading_retries")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            let mut r = k.clone();
            let moved = retries > max_retries;
            if moved {
                r.insert("step".into(), json!(f.step));
                failed.push(Value::Object(r));
            } else {
                let delay = self.opts.retry_delay.as_secs_f64() * 2f64.powi(retries as i32 - 1);
                r.insert("retries".into(), json!(retries));
                r.insert("delay".into(), json!(delay.min(3600.0)));
                requeue.push(Value::Object(r));
            }
            errors.push(ErrorRow {
                key: Some(key_object(k, &v.pk)),
                message: f.message,
                details: json!({"step": f.step, "attempt": retries, "moved_to_failed_queue": moved}),
            });
        }
        if !requeue.is_empty() || !failed.is_empty() {
            tx.execute(
                "SELECT migrate.worker_retry($1::int4, $2::jsonb, $3::jsonb)",
                &[&id, &Value::Array(requeue), &Value::Array(failed)],
            )?;
        }
        if !errors.is_empty() {
            for e in &errors {
                eprintln!(
                    "pgai-migrate-worker: {}: key {} failed ({}): {}",
                    v.name,
                    e.key
                        .as_ref()
                        .map(|k| Value::Object(k.clone()))
                        .unwrap_or(Value::Null),
                    e.details["step"].as_str().unwrap_or(""),
                    e.message
                );
            }
            if self.has_errors_table {
                if let Err(e) = Self::record_errors_in(&mut tx, id, &errors) {
                    eprintln!(
                        "pgai-migrate-worker: could not record errors: {}",
                        db_error_text(&e)
                    );
                }
            }
        }
        tx.commit()?;
        Ok(stats)
    }
}

/// Why a batch did nothing.
pub enum BatchError {
    Db(postgres::Error),
    /// The vectorizer cannot be run by this worker (its config, its
    /// catalog row): nothing was claimed.
    Config(String),
}

impl From<postgres::Error> for BatchError {
    fn from(e: postgres::Error) -> Self {
        BatchError::Db(e)
    }
}

/// The objects of a jsonb array.
fn objects(v: Value) -> Vec<Map<String, Value>> {
    match v {
        Value::Array(a) => a
            .into_iter()
            .filter_map(|r| match r {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Why pgvector would refuse this vector, if it would.
fn invalid_vector(v: &[f32]) -> Option<String> {
    if v.is_empty() {
        return Some("the provider returned an empty vector".into());
    }
    v.iter().position(|x| !x.is_finite()).map(|i| {
        format!("the provider returned a value outside float4's range at dimension {i} (finite values are expected)")
    })
}

/// lock_timeout (55P03) or statement_timeout (57014).
fn is_timeout(e: &postgres::Error) -> bool {
    e.code().is_some_and(|c| {
        *c == postgres::error::SqlState::LOCK_NOT_AVAILABLE
            || *c == postgres::error::SqlState::QUERY_CANCELED
    })
}

pub fn db_error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
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
    let checked = Worker::new(opts.clone(), stop.clone())
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
            eprintln!("pgai-migrate-worker: {}", db_error_text(&e));
            return 1;
        }
    }
    let threads: Vec<_> = (0..opts.concurrency.max(1))
        .map(|_| {
            let (opts, stop) = (opts.clone(), stop.clone());
            std::thread::spawn(move || worker_thread(opts, stop))
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
    code
}

/// One worker; reconnects after a lost connection unless `--once`.
fn worker_thread(opts: Arc<Options>, stop: Arc<AtomicBool>) -> bool {
    loop {
        let res = Worker::new(opts.clone(), stop.clone()).and_then(|mut w| w.run());
        match res {
            Ok(clean) => return clean,
            Err(e) => {
                eprintln!("pgai-migrate-worker: {}", db_error_text(&e));
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
    fn vectors_pgvector_would_refuse_fail_their_key() {
        assert!(invalid_vector(&[0.5, f32::INFINITY])
            .unwrap()
            .contains("dimension 1"));
        assert!(invalid_vector(&[f32::NAN]).is_some());
        assert!(invalid_vector(&[]).is_some());
        assert!(invalid_vector(&[0.0, -1.0]).is_none());
    }

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
