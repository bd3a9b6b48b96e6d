//! `run`: drains the vectorizers' queues.
//!
//! One transaction per batch, following the queue protocol of the README
//! ("The work queue"): claim keys by deleting their queue rows with
//! `FOR UPDATE SKIP LOCKED`, read the source rows in a later statement (so
//! every change committed before the claim is seen), replace the keys'
//! chunks in the store, commit. A worker that dies before the commit loses
//! nothing: its claims roll back. A key that fails goes back to the queue
//! with `loading_retries` + 1 and a `loading_retry_after` backoff, or after
//! the configured retries to the failed queue; every failure is a row in
//! `migrate.vectorizer_errors`.
//!
//! The session runs with `search_path = pg_catalog, pg_temp`: relation names
//! come from `regclass` output (schema-qualified and quoted), column names
//! are quoted here, values travel as jsonb parameters.

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
}

/// A vectorizer as the catalog describes it.
#[derive(Debug, Clone)]
struct Vectorizer {
    id: i32,
    name: String,
    source: String,
    queue: String,
    failed_queue: String,
    store: Option<String>,
    embedding_column: Option<String>,
    /// The column's type as SQL (`public.vector(384)`), for the cast.
    embedding_column_type: Option<String>,
    pk: Vec<String>,
    config: Value,
    loading_is_bytea: bool,
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const DISCOVER: &str = "
SELECT v.id, v.name, v.source::text, v.queue_relid::text, v.queue_failed_relid::text,
       v.store_relid::text, v.embedding_column::text, v.config, v.source_pk,
       (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
         WHERE a.attrelid = v.source AND a.attname = v.embedding_column AND NOT a.attisdropped),
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
            let source_pk: Value = r.get(8);
            Vectorizer {
                id: r.get(0),
                name: r.get(1),
                source: r.get(2),
                queue: r.get(3),
                failed_queue: r.get(4),
                store: r.get(5),
                embedding_column: r.get(6),
                config: r.get(7),
                pk: source_pk
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|c| c.get("attname")?.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default(),
                embedding_column_type: r.get(9),
                loading_is_bytea: r.get(10),
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

/// The SQL a vectorizer's batches run, built once.
struct Statements {
    /// Claims the first keys in key order.
    claim: String,
    /// Claims the keys after a cursor (`$2`, a key as jsonb).
    claim_after: String,
    read: String,
    delete_store: Option<String>,
    insert_store: Option<String>,
    update_column: Option<String>,
    requeue: String,
    fail: String,
}

impl Statements {
    fn new(v: &Vectorizer) -> Result<Self, String> {
        if v.pk.is_empty() {
            return Err("the catalog lists no primary-key columns".into());
        }
        let pk: Vec<String> = v.pk.iter().map(|c| quote_ident(c)).collect();
        let cols = pk.join(", ");
        let s_cols = pk
            .iter()
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let r_cols = pk
            .iter()
            .map(|c| format!("(x.r).{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let q = &v.queue;
        let keys = format!("SELECT {cols} FROM jsonb_populate_recordset(NULL::{q}, $1)");
        let (delete_store, insert_store, update_column) = match (&v.store, &v.embedding_column) {
            (Some(store), _) => (
                Some(format!("DELETE FROM {store} s WHERE ({s_cols}) IN ({keys})")),
                Some(format!(
                    "INSERT INTO {store} ({cols}, chunk_seq, chunk, embedding) \
                     SELECT {cols}, chunk_seq, chunk, embedding FROM jsonb_populate_recordset(NULL::{store}, $1)"
                )),
                None,
            ),
            (None, Some(col)) => {
                let ty = v.embedding_column_type.as_ref().ok_or_else(|| format!("the source has no column {col:?}"))?;
                (
                    None,
                    None,
                    Some(format!(
                        "UPDATE {src} s SET {c} = (x.e ->> 'embedding')::{ty} \
                         FROM (SELECT jsonb_populate_record(NULL::{q}, e) AS r, e FROM jsonb_array_elements($1) e) x \
                         WHERE ({s_cols}) = ({r_cols})",
                        src = v.source,
                        c = quote_ident(col),
                    )),
                )
            }
            (None, None) => return Err("the vectorizer has neither a store table nor an embedding column".into()),
        };
        // Key order along the queue's primary key, resuming after the last
        // key claimed: each claim reads about one batch of the index, however
        // long the queue (ORDER BY queued_at would sort the whole queue every
        // time). A worker sweeps the key space and wraps around, so every
        // queued key is reached within one sweep.
        let cursor =
            v.pk.iter()
                .map(|c| format!("(jsonb_populate_record(NULL::{q}, $2)).{}", quote_ident(c)))
                .collect::<Vec<_>>()
                .join(", ");
        let claim = |after: &str| {
            format!(
                "DELETE FROM {q} q WHERE ({cols}) IN (SELECT {cols} FROM {q} \
                   WHERE (loading_retry_after IS NULL OR loading_retry_after <= now()){after} \
                   ORDER BY {cols} LIMIT $1 FOR UPDATE SKIP LOCKED) \
                 RETURNING to_jsonb(q)"
            )
        };
        Ok(Statements {
            claim: claim(""),
            claim_after: claim(&format!(" AND ({cols}) > ({cursor})")),
            read: format!("SELECT to_jsonb(s) FROM {src} s WHERE ({s_cols}) IN ({keys})", src = v.source),
            delete_store,
            insert_store,
            update_column,
            requeue: format!(
                "INSERT INTO {q} ({cols}, queued_at, loading_retries, loading_retry_after) \
                 SELECT {r_cols}, coalesce((x.r).queued_at, now()), (x.e ->> 'retries')::int, \
                        now() + (x.e ->> 'delay')::float8 * interval '1 second' \
                 FROM (SELECT jsonb_populate_record(NULL::{q}, e) AS r, e FROM jsonb_array_elements($1) e) x \
                 ON CONFLICT DO NOTHING"
            ),
            fail: format!(
                "INSERT INTO {f} ({cols}, created_at, failure_step) \
                 SELECT {r_cols}, now(), x.e ->> 'step' \
                 FROM (SELECT jsonb_populate_record(NULL::{q}, e) AS r, e FROM jsonb_array_elements($1) e) x",
                f = v.failed_queue
            ),
        })
    }
}

/// A compiled vectorizer, cached per worker thread while its config holds.
struct Active {
    v: Vectorizer,
    prepared: Prepared,
    pipeline: Pipeline,
    sql: Result<Statements, String>,
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
            opts,
            stop,
            embedders: embed::Cache::default(),
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
                            if self.client.is_closed() {
                                return Err(e);
                            }
                            clean = false;
                            let msg = format!(
                                "vectorizer {}: batch rolled back: {}",
                                v.name,
                                db_error_text(&e)
                            );
                            self.log(&msg);
                            self.record_errors(
                                v.id,
                                &[ErrorRow {
                                    key: None,
                                    message: msg,
                                    details: json!({"step": "batch"}),
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
            {
                return;
            }
        }
        let pipeline = Pipeline::from_json(&v.config).unwrap_or_else(|e| Pipeline {
            loading: None,
            parsing: crate::config::Parsing::Unsupported(format!("config error: {e}")),
            chunking: crate::config::Chunking::None,
            formatting: crate::config::Formatting::ChunkValue,
            embedding: None,
            batch_size: 50,
        });
        let prepared = Prepared::new(&pipeline, v.loading_is_bytea);
        let sql = Statements::new(&v);
        self.active.insert(
            v.id,
            Active {
                v,
                prepared,
                pipeline,
                sql,
            },
        );
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
    pub fn batch(&mut self, id: i32) -> Result<BatchStats, postgres::Error> {
        let Some(a) = self.active.get(&id) else {
            return Ok(BatchStats::default());
        };
        let sql = match &a.sql {
            Ok(s) => s,
            Err(e) => {
                self.log(format!("vectorizer {}: {e}", a.v.name));
                return Ok(BatchStats::default());
            }
        };
        let v = &a.v;
        let mut stats = BatchStats::default();
        let mut tx = self.client.transaction()?;
        let rows = match self.cursors.get(&id) {
            None => tx.query(&sql.claim, &[&a.pipeline.batch_size])?,
            Some(after) => tx.query(&sql.claim_after, &[&a.pipeline.batch_size, after])?,
        };
        let claimed: Vec<Map<String, Value>> = rows
            .iter()
            .filter_map(|r| match r.get::<_, Value>(0) {
                Value::Object(o) => Some(o),
                _ => None,
            })
            .collect();
        stats.claimed = claimed.len();
        // The highest key claimed (RETURNING order is not key order).
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
        let rows: HashMap<String, Map<String, Value>> = tx
            .query(&sql.read, &[&keys])?
            .iter()
            .filter_map(|r| match r.get::<_, Value>(0) {
                Value::Object(o) => Some((key_of(&o, &v.pk), o)),
                _ => None,
            })
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
            let embedded = match &a.pipeline.embedding {
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

        let mut done = Vec::new();
        let mut store_rows = Vec::new();
        let mut column_rows = Vec::new();
        let mut requeue = Vec::new();
        let mut failed = Vec::new();
        let mut errors = Vec::new();
        let max_retries = a.pipeline.loading.as_ref().map_or(6, |l| l.retries());
        let mut vec_iter = vectors.iter();
        for (k, o) in claimed.iter().zip(&outcome) {
            let key = key_object(k, &v.pk);
            match o {
                Ok(chunks) => {
                    done.push(Value::Object(key.clone()));
                    for (seq, chunk) in chunks.iter().enumerate() {
                        let Some(vector) = vec_iter.next() else { break };
                        stats.chunks += 1;
                        if v.store.is_some() {
                            let mut r = key.clone();
                            r.insert("chunk_seq".into(), json!(seq));
                            r.insert("chunk".into(), json!(chunk));
                            r.insert("embedding".into(), json!(vector_text(vector)));
                            store_rows.push(Value::Object(r));
                        } else if seq == 0 {
                            let mut r = key.clone();
                            r.insert("embedding".into(), json!(vector_text(vector)));
                            column_rows.push(Value::Object(r));
                        }
                    }
                    if chunks.is_empty() && v.store.is_none() {
                        let mut r = key.clone();
                        r.insert("embedding".into(), Value::Null);
                        column_rows.push(Value::Object(r));
                    }
                }
                Err(f) => {
                    stats.failed += 1;
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
                        let delay =
                            self.opts.retry_delay.as_secs_f64() * 2f64.powi(retries as i32 - 1);
                        r.insert("retries".into(), json!(retries));
                        r.insert("delay".into(), json!(delay.min(3600.0)));
                        requeue.push(Value::Object(r));
                    }
                    errors.push(ErrorRow {
                        key: Some(key),
                        message: f.message.clone(),
                        details: json!({"step": f.step, "attempt": retries, "moved_to_failed_queue": moved}),
                    });
                }
            }
        }

        if !done.is_empty() {
            let done = Value::Array(done);
            if let (Some(del), Some(ins)) = (&sql.delete_store, &sql.insert_store) {
                tx.execute(del, &[&done])?;
                if !store_rows.is_empty() {
                    tx.execute(ins, &[&Value::Array(store_rows)])?;
                }
            }
            if let Some(upd) = &sql.update_column {
                tx.execute(upd, &[&Value::Array(column_rows)])?;
            }
        }
        if !requeue.is_empty() {
            tx.execute(&sql.requeue, &[&Value::Array(requeue)])?;
        }
        if !failed.is_empty() {
            tx.execute(&sql.fail, &[&Value::Array(failed)])?;
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
    match Worker::new(opts.clone(), stop.clone()).and_then(|mut w| w.unknown_vectorizers()) {
        Ok(unknown) if !unknown.is_empty() => {
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

    fn vectorizer() -> Vectorizer {
        Vectorizer {
            id: 1,
            name: "v".into(),
            source: "public.blog".into(),
            queue: "migrate._vectorizer_q_1".into(),
            failed_queue: "migrate._vectorizer_q_failed_1".into(),
            store: Some("public.blog_store".into()),
            embedding_column: None,
            embedding_column_type: None,
            pk: vec!["id".into(), "we\"ird".into()],
            config: json!({}),
            loading_is_bytea: false,
        }
    }

    #[test]
    fn statements_quote_key_columns_and_claim_with_skip_locked() {
        let s = Statements::new(&vectorizer()).unwrap();
        assert!(s.claim.contains("(\"id\", \"we\"\"ird\")"), "{}", s.claim);
        assert!(s.claim.contains("FOR UPDATE SKIP LOCKED"));
        assert!(s.read.starts_with(
            "SELECT to_jsonb(s) FROM public.blog s WHERE (s.\"id\", s.\"we\"\"ird\") IN"
        ));
        assert!(s.update_column.is_none());
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
