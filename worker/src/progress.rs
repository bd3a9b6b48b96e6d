//! What `run` says about its progress. Worker threads count what they did
//! per vectorizer; a reporter reads the queues' depth from
//! `migrate.vectorizer_progress` (exact counts, found by the extension, so
//! the worker reads no tenant relation) and prints:
//! - on a terminal, a line per vectorizer redrawn every two seconds: done,
//!   pending, failed, keys per second, ETA;
//! - otherwise one summary line per `--progress-interval`, and only when
//!   something is queued or was done, so logs are not flooded;
//! - with `--once`, one summary line at the end.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use postgres::Client;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Done {
    pub keys: u64,
    pub chunks: u64,
    pub failed: u64,
}

/// What the workers did, per vectorizer name.
#[derive(Default)]
pub struct Progress {
    done: Mutex<BTreeMap<String, Done>>,
}

impl Progress {
    pub fn record(&self, name: &str, keys: usize, chunks: usize, failed: usize) {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let d = done.entry(name.to_string()).or_default();
        d.keys += keys as u64;
        d.chunks += chunks as u64;
        d.failed += failed as u64;
    }

    pub fn snapshot(&self) -> BTreeMap<String, Done> {
        self.done.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `--once`'s last line.
    pub fn summary(&self, elapsed: Duration) -> String {
        let done = self.snapshot();
        let secs = elapsed.as_secs_f64();
        if done.values().all(|d| d.keys == 0) {
            return format!("done in {secs:.1}s: nothing was queued");
        }
        let parts: Vec<String> = done
            .iter()
            .filter(|(_, d)| d.keys > 0)
            .map(|(name, d)| {
                format!(
                    "{name}: {} keys ({} chunks, {} failed, {:.1} keys/s)",
                    d.keys,
                    d.chunks,
                    d.failed,
                    d.keys as f64 / secs.max(1e-3)
                )
            })
            .collect();
        format!("done in {secs:.1}s: {}", parts.join("; "))
    }
}

/// A queue's depth as the extension reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Backlog {
    pub name: String,
    pub pending: i64,
    pub failed: i64,
}

pub fn backlog(client: &mut Client, names: &[String]) -> Result<Vec<Backlog>, postgres::Error> {
    let rows = client.query(
        "SELECT name, coalesce(pending_items, 0), coalesce(failed_items, 0)
           FROM migrate.vectorizer_progress
          WHERE NOT disabled AND (cardinality($1::text[]) = 0 OR name = ANY($1) OR id::text = ANY($1))
          ORDER BY id",
        &[&names],
    )?;
    Ok(rows
        .iter()
        .map(|r| Backlog {
            name: r.get(0),
            pending: r.get(1),
            failed: r.get(2),
        })
        .collect())
}

/// Keys per second, smoothed over reports.
#[derive(Default)]
struct Rate {
    last_keys: u64,
    per_second: Option<f64>,
}

impl Rate {
    fn update(&mut self, keys: u64, elapsed: Duration) -> f64 {
        let now = (keys - self.last_keys.min(keys)) as f64 / elapsed.as_secs_f64().max(1e-3);
        self.last_keys = keys;
        let r = match self.per_second {
            None => now,
            Some(prev) => 0.7 * prev + 0.3 * now,
        };
        self.per_second = Some(r);
        r
    }
}

pub fn eta(pending: i64, per_second: f64) -> String {
    if pending <= 0 {
        return "-".into();
    }
    if per_second <= 0.0 {
        return "?".into();
    }
    let s = (pending as f64 / per_second).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// One vectorizer's line.
pub fn line(b: &Backlog, d: Done, per_second: f64) -> String {
    format!(
        "{}: {} done, {} pending, {} failed, {:.1} keys/s, ETA {}",
        b.name,
        d.keys,
        b.pending,
        b.failed,
        per_second,
        eta(b.pending, per_second)
    )
}

/// Prints progress until `stop`; `client` is the reporter's own connection.
pub fn report(
    mut client: Client,
    progress: Arc<Progress>,
    names: Vec<String>,
    interval: Duration,
    stop: Arc<AtomicBool>,
) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty {
        Duration::from_secs(2)
    } else {
        interval
    };
    let mut rates: BTreeMap<String, Rate> = BTreeMap::new();
    let mut drawn = 0usize;
    let mut last = Instant::now();
    loop {
        let until = Instant::now() + every;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let Ok(backlog) = backlog(&mut client, &names) else {
            // Progress is best effort: the workers report real errors.
            continue;
        };
        let done = progress.snapshot();
        let elapsed = last.elapsed();
        last = Instant::now();
        let mut lines = Vec::new();
        for b in &backlog {
            let d = done.get(&b.name).copied().unwrap_or_default();
            let rate = rates.entry(b.name.clone()).or_default();
            let moved = d.keys > rate.last_keys;
            let r = rate.update(d.keys, elapsed);
            if tty || moved || b.pending > 0 {
                lines.push(line(b, d, r));
            }
        }
        let mut err = std::io::stderr().lock();
        if tty {
            // Redraw the block in place.
            if drawn > 0 {
                let _ = write!(err, "\x1b[{drawn}F");
            }
            for l in &lines {
                let _ = writeln!(err, "\x1b[2K{l}");
            }
            drawn = lines.len();
        } else if !lines.is_empty() {
            let _ = writeln!(err, "pgai-migrate-worker: progress: {}", lines.join("; "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_reads_like_a_clock() {
        assert_eq!(eta(0, 5.0), "-");
        assert_eq!(eta(10, 0.0), "?");
        assert_eq!(eta(50, 10.0), "5s");
        assert_eq!(eta(1500, 10.0), "2m30s");
        assert_eq!(eta(1_000_000, 100.0), "2h46m");
    }

    #[test]
    fn summary_and_lines_count_what_was_done() {
        let p = Progress::default();
        assert_eq!(
            p.summary(Duration::from_millis(100)),
            "done in 0.1s: nothing was queued"
        );
        p.record("blog", 10, 30, 1);
        p.record("blog", 10, 30, 0);
        assert_eq!(
            p.summary(Duration::from_secs(2)),
            "done in 2.0s: blog: 20 keys (60 chunks, 1 failed, 10.0 keys/s)"
        );
        let b = Backlog {
            name: "blog".into(),
            pending: 100,
            failed: 1,
        };
        assert_eq!(
            line(&b, p.snapshot()["blog"], 10.0),
            "blog: 20 done, 100 pending, 1 failed, 10.0 keys/s, ETA 10s"
        );
    }

    #[test]
    fn the_rate_is_smoothed() {
        let mut r = Rate::default();
        assert_eq!(r.update(100, Duration::from_secs(10)), 10.0);
        assert!((r.update(100, Duration::from_secs(10)) - 7.0).abs() < 1e-9);
    }
}
