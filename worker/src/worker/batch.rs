//! One batch of one vectorizer, in one transaction: claim, read, chunk,
//! embed, store, and put back or fail what could not be done.

use serde_json::{json, Map, Value};

use super::*;
use crate::embed::vector_text;
use crate::pipeline::Failure;

impl Worker {
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
        let size = pipeline.processing.batch_size().clamp(1, 2048) as i32;
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
        let in_order: Vec<Option<&Map<String, Value>>> = claimed
            .iter()
            .map(|k| rows.get(&key_of(k, &v.pk)))
            .collect();
        let mut outcome: Vec<Result<Vec<String>, Failure>> =
            a.prepared.chunks_all(&in_order, &*self.opts.loader);

        // Embed all chunks of the batch together.
        let texts: Vec<String> = outcome
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        let mut vectors = Vec::new();
        if !texts.is_empty() {
            let embedded = self
                .embedders
                .get(&pipeline.embedding)
                .and_then(|e| e.embed(&texts));
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
        let max_retries = pipeline.loading.retries();
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
}
