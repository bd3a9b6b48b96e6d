//! `pgai-migrate-worker`: computes the embeddings of pgai_migrate
//! vectorizers (`run`), and exposes the same chunking (`chunk`) and
//! embedding (`embed`) on the command line.

mod chunking;
mod connect;
use pgai_migrate_embed as embed;
mod loading;
mod parsing;
mod pipeline;
mod progress;
mod worker;

use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use pgai_migrate_core::config::{Chunking, Component, Embedding, Parsing};
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(
    name = "pgai-migrate-worker",
    version,
    about = "The embedding worker for pgai_migrate vectorizers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Drain the queues of every enabled vectorizer (or only those named).
    Run {
        /// libpq connection string or postgresql:// URI; what it leaves
        /// out comes from the service file, PGHOST, PGPORT, PGUSER,
        /// PGDATABASE, PGSSLMODE, … and ~/.pgpass, as with libpq.
        #[arg(long, env = "PGAI_MIGRATE_DB")]
        db: Option<String>,
        /// Drain what is claimable now and exit.
        #[arg(long)]
        once: bool,
        /// A vectorizer name or id; repeatable. Default: all enabled.
        #[arg(long = "vectorizer")]
        vectorizers: Vec<String>,
        /// Worker threads, each with its own connection.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// Seconds between polls of empty queues (without --once).
        #[arg(long, default_value_t = 5.0)]
        poll_interval: f64,
        /// Seconds before a failed key's first retry; doubles per attempt (max 1 hour).
        #[arg(long, default_value_t = 10.0)]
        retry_delay: f64,
        /// Print one line per batch.
        #[arg(long, short)]
        verbose: bool,
        /// An embedding endpoint vectorizers may use besides the providers'
        /// official ones, optionally with the environment variable whose
        /// value is sent to it as the API key: URL or URL=VARIABLE.
        /// Repeatable; PGAI_MIGRATE_ENDPOINTS holds a comma-separated list.
        #[arg(
            long = "endpoint",
            env = "PGAI_MIGRATE_ENDPOINTS",
            value_delimiter = ','
        )]
        endpoints: Vec<String>,
        /// Seconds a batch's statement waits for a lock before the
        /// vectorizer is skipped and retried later (lock_timeout).
        #[arg(long, default_value_t = 5.0)]
        lock_timeout: f64,
        /// Seconds one statement of a batch may run, the vectorizer
        /// owner's code included (statement_timeout).
        #[arg(long, default_value_t = 60.0)]
        statement_timeout: f64,
        /// Seconds between progress lines when stderr is not a terminal
        /// (on a terminal the progress is redrawn every two seconds).
        #[arg(long, default_value_t = 60.0)]
        progress_interval: f64,
        /// A directory whose files `uri` loading may read (file:// URIs and
        /// absolute paths); repeatable. Without one, file URIs are refused.
        /// PGAI_MIGRATE_FILE_ROOTS holds a colon-separated list.
        #[arg(
            long = "file-root",
            env = "PGAI_MIGRATE_FILE_ROOTS",
            value_delimiter = ':'
        )]
        file_roots: Vec<String>,
        /// A host `uri` loading may reach even where it resolves to a
        /// loopback, private, link-local or other internal address:
        /// HOST or HOST:PORT; repeatable. PGAI_MIGRATE_URI_ALLOW_HOSTS holds
        /// a comma-separated list.
        #[arg(
            long = "uri-allow-host",
            env = "PGAI_MIGRATE_URI_ALLOW_HOSTS",
            value_delimiter = ','
        )]
        uri_allow_hosts: Vec<String>,
        /// The largest document `uri` loading fetches, in bytes.
        #[arg(long, default_value_t = 64 << 20)]
        uri_max_bytes: u64,
        /// Seconds one URI's fetch may take, redirects included.
        #[arg(long, default_value_t = 30.0)]
        uri_timeout: f64,
    },
    /// Show each vectorizer's pending and failed keys, recorded errors and
    /// the age of its oldest queued key (migrate.vectorizer_progress).
    Status {
        /// As for `run`: a libpq connection string or URI, else the
        /// service file and the PG* environment.
        #[arg(long, env = "PGAI_MIGRATE_DB")]
        db: Option<String>,
    },
    /// Read one document on stdin, print its chunks as a JSON array.
    Chunk {
        /// A vectorizer config, or just {"chunking": …, "formatting": …};
        /// with "parsing", stdin is a document (PDF, DOCX, HTML, text)
        /// parsed as the worker parses bytea columns and fetched URIs.
        #[arg(long)]
        config: String,
        /// The source row's columns (JSON object) for python_template.
        #[arg(long)]
        row: Option<String>,
        /// Read one JSON string per line; print one JSON array per line.
        #[arg(long)]
        jsonl: bool,
        /// Print the time spent chunking and formatting (not reading,
        /// parsing or printing JSON) on stderr.
        #[arg(long)]
        timing: bool,
    },
    /// Print one vector per text, in pgvector's text form.
    Embed {
        /// A vectorizer config, or just {"embedding": …}.
        #[arg(long)]
        config: String,
        /// Also read texts from stdin, one JSON string per line.
        #[arg(long)]
        jsonl: bool,
        /// Print the seconds spent loading the model and embedding (not
        /// reading or printing) on stderr, as one JSON object.
        #[arg(long)]
        timing: bool,
        /// As for `run`: endpoints allowed besides the official ones.
        #[arg(
            long = "endpoint",
            env = "PGAI_MIGRATE_ENDPOINTS",
            value_delimiter = ','
        )]
        endpoints: Vec<String>,
        texts: Vec<String>,
    },
}

/// `--config`: a config document, read with the extension's own types;
/// the commands use only the components they need.
fn parse_config(s: &str) -> Result<Value, String> {
    let v: Value = serde_json::from_str(s).map_err(|e| format!("--config: not JSON: {e}"))?;
    if !v.is_object() {
        return Err("config: expected a JSON object".into());
    }
    Ok(v)
}

fn chunk(cfg: &str, row: Option<&str>, jsonl: bool, timing: bool) -> Result<(), String> {
    let v = parse_config(cfg)?;
    let chunking = Chunking::from_document(&v).map_err(|e| e.to_string())?;
    let splitter = chunking::Splitter::new(&chunking)?;
    let formatted = v.get("formatting").is_some();
    let prepared = pipeline::Prepared::from_document(&v, false)?;
    let row: Map<String, Value> = match row {
        None => Map::new(),
        Some(r) => match serde_json::from_str(r).map_err(|e| format!("--row: not JSON: {e}"))? {
            Value::Object(o) => o,
            _ => return Err("--row: expected a JSON object".into()),
        },
    };
    let spent = std::cell::Cell::new(Duration::ZERO);
    let one = |text: &str| -> Result<String, String> {
        let start = std::time::Instant::now();
        let chunks = splitter.split(text)?;
        let chunks = if formatted {
            prepared.format(chunks, &row).map_err(|f| f.message)?
        } else {
            chunks
        };
        spent.set(spent.get() + start.elapsed());
        serde_json::to_string(&chunks).map_err(|e| e.to_string())
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if jsonl {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| e.to_string())?;
            let text: String = serde_json::from_str(&line)
                .map_err(|e| format!("stdin: not a JSON string: {e}"))?;
            writeln!(out, "{}", one(&text)?).map_err(|e| e.to_string())?;
        }
    } else if v.get("parsing").is_some_and(|p| !p.is_null()) {
        // A document (PDF, DOCX, HTML, text) parsed as the worker parses
        // a bytea column or a fetched URI.
        let parsing = Parsing::from_document(&v).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| format!("stdin: {e}"))?;
        let doc = loading::Document {
            bytes,
            ..Default::default()
        };
        let text = parsing::parse(&doc, parsing)?;
        writeln!(out, "{}", one(&text)?).map_err(|e| e.to_string())?;
    } else {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("stdin: {e}"))?;
        writeln!(out, "{}", one(&text)?).map_err(|e| e.to_string())?;
    }
    if timing {
        eprintln!("chunking_seconds={:.6}", spent.get().as_secs_f64());
    }
    out.flush().map_err(|e| e.to_string())
}

fn policy(endpoints: &[String]) -> Result<embed::Policy, String> {
    embed::Policy::new(endpoints, |k| {
        std::env::var(k).ok().filter(|v| !v.is_empty())
    })
}

fn embed_cmd(
    cfg: &str,
    jsonl: bool,
    timing: bool,
    endpoints: &[String],
    mut texts: Vec<String>,
) -> Result<(), String> {
    let policy = policy(endpoints)?;
    let v = parse_config(cfg)?;
    if v.get("embedding").is_none_or(Value::is_null) {
        return Err("--config has no embedding".into());
    }
    let embedding = Embedding::from_document(&v).map_err(|e| e.to_string())?;
    if jsonl {
        for line in std::io::stdin().lock().lines() {
            let line = line.map_err(|e| e.to_string())?;
            texts.push(
                serde_json::from_str(&line)
                    .map_err(|e| format!("stdin: not a JSON string: {e}"))?,
            );
        }
    }
    let t0 = std::time::Instant::now();
    let embedder = embed::build(&embedding, &policy)?;
    let t1 = std::time::Instant::now();
    let vectors = embedder.embed(&texts)?;
    if timing {
        eprintln!(
            "{{\"texts\": {}, \"load_s\": {:.6}, \"embed_s\": {:.6}}}",
            texts.len(),
            (t1 - t0).as_secs_f64(),
            t1.elapsed().as_secs_f64()
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for v in vectors {
        writeln!(out, "{}", embed::vector_text(&v)).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}

/// `status`: one line per vectorizer, as the extension counts them.
fn status(db: &connect::params::Settings) -> Result<(), String> {
    let mut client = worker::connect(db).map_err(|e| e.text())?;
    let rows = client
        .query(
            "SELECT name, pending_items, failed_items, error_count,
                    coalesce(justify_interval(date_trunc('second', oldest_queued_age))::text, '-'), disabled
               FROM migrate.vectorizer_progress ORDER BY id",
            &[],
        )
        .map_err(|e| match e.code() {
            Some(c) if *c == postgres::error::SqlState::UNDEFINED_TABLE => {
                "the pgai_migrate extension in this database has no migrate.vectorizer_progress: run ALTER EXTENSION pgai_migrate UPDATE".to_string()
            }
            _ => worker::db_error_text(&e),
        })?;
    let mut out = vec![[
        "vectorizer".to_string(),
        "pending".into(),
        "failed".into(),
        "errors".into(),
        "oldest queued".into(),
        "".into(),
    ]];
    for r in &rows {
        let n = |i: usize| {
            r.get::<_, Option<i64>>(i)
                .map_or("-".into(), |n| n.to_string())
        };
        out.push([
            r.get(0),
            n(1),
            n(2),
            n(3),
            r.get(4),
            if r.get::<_, bool>(5) {
                "disabled".into()
            } else {
                String::new()
            },
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| out.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &out {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i == 0 || i >= 4 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
    }
    Ok(())
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() && s >= 0.0 { s } else { 0.0 })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Command::Run {
            db,
            once,
            vectorizers,
            concurrency,
            poll_interval,
            retry_delay,
            verbose,
            endpoints,
            lock_timeout,
            statement_timeout,
            progress_interval,
            file_roots,
            uri_allow_hosts,
            uri_max_bytes,
            uri_timeout,
        } => {
            let db = match connect::settings(db.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("pgai-migrate-worker: {e}");
                    return ExitCode::from(2);
                }
            };
            let policy = match policy(&endpoints) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("pgai-migrate-worker: {e}");
                    return ExitCode::from(2);
                }
            };
            let loader = uri_allow_hosts
                .iter()
                .filter(|h| !h.trim().is_empty())
                .map(|h| loading::addresses::AllowedHost::parse(h))
                .collect::<Result<Vec<_>, _>>()
                .and_then(|allow_hosts| {
                    loading::Loader::new(&loading::Options {
                        file_roots: file_roots
                            .iter()
                            .filter(|p| !p.is_empty())
                            .map(std::path::PathBuf::from)
                            .collect(),
                        allow_hosts,
                        max_bytes: uri_max_bytes,
                        timeout: seconds(uri_timeout).max(Duration::from_millis(1)),
                    })
                });
            let loader = match loader {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("pgai-migrate-worker: {e}");
                    return ExitCode::from(2);
                }
            };
            let code = worker::run(worker::Options {
                db,
                once,
                vectorizers,
                concurrency,
                poll: seconds(poll_interval),
                retry_delay: seconds(retry_delay),
                verbose,
                policy: std::sync::Arc::new(policy),
                lock_timeout: seconds(lock_timeout),
                statement_timeout: seconds(statement_timeout),
                progress_interval: seconds(progress_interval).max(Duration::from_secs(1)),
                busy: Default::default(),
                loader: std::sync::Arc::new(loader),
            });
            return ExitCode::from(code as u8);
        }
        Command::Status { db } => match connect::settings(db.as_deref()) {
            Ok(s) => status(&s),
            Err(e) => {
                eprintln!("pgai-migrate-worker: {e}");
                return ExitCode::from(2);
            }
        },
        Command::Chunk {
            config,
            row,
            jsonl,
            timing,
        } => chunk(&config, row.as_deref(), jsonl, timing),
        Command::Embed {
            config,
            jsonl,
            timing,
            endpoints,
            texts,
        } => embed_cmd(&config, jsonl, timing, &endpoints, texts),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgai-migrate-worker: {e}");
            ExitCode::from(1)
        }
    }
}
