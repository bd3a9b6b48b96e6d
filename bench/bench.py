"""What a vectorizer costs the writes and the migrations: plain PostgreSQL,
pgai's vectorizer and ours, measured in the same run on the local server.

Run through bench/run.sh, which finds pgbench and the pgai CLI. Every
measurement alternates the arms (the order rotates each repetition) and the
report gives medians. Nothing here asserts timings: it measures and reports.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

CONN = dict(
    host=os.environ.get("PGHOST", "/tmp/pgai_migrate"),
    port=int(os.environ.get("PGPORT", "54329")),
    user=os.environ.get("PGUSER", "postgres"),
)
ARMS = ("plain", "pgai", "ours")
PREFIX = "bench_"


@dataclass
class Sizes:
    seconds: int          # -T of each timed pgbench run
    reps: int             # repetitions of every write measurement
    rows: int             # rows in bench_src for the update workloads
    hot: int              # hot set for the queue-growth measurement
    deletes: int          # DELETE transactions per client (-t)
    big_rows: int         # N for create_vectorizer with enqueue_existing
    big_reps: int
    ddl_reps: int         # create/drop on an empty table
    many: int             # vectorizers in one database
    probe_reps: int       # create #1 / #many+1 samples
    managed_seconds: int
    copy_rows: int = 1_000_000   # rows of the bulk COPY
    bulk_rows: int = 100_000     # rows of the bulk INSERT … SELECT, UPDATE, DELETE
    bulk_reps: int = 3


FULL = Sizes(seconds=10, reps=5, rows=100_000, hot=1_000, deletes=20_000,
             big_rows=1_000_000, big_reps=3, ddl_reps=20, many=1_000,
             probe_reps=15, managed_seconds=5,
             copy_rows=1_000_000, bulk_rows=100_000, bulk_reps=3)
SMOKE = Sizes(seconds=2, reps=2, rows=10_000, hot=200, deletes=2_000,
              big_rows=20_000, big_reps=2, ddl_reps=5, many=50,
              probe_reps=5, managed_seconds=2,
              copy_rows=20_000, bulk_rows=5_000, bulk_reps=2)

# The two regimes every write and bulk measurement runs in. "server": the
# server's own settings (synchronous_commit = on by default: each commit
# waits for its WAL flush, as on a lone application server with a slow
# disk). "cpu": synchronous_commit = off, set on the bench databases only
# (ALTER DATABASE … SET), so the CPU is the bottleneck, as on a busy server
# with a fast disk or group commit: what the triggers themselves cost.
REGIMES = {"server": None, "cpu": "off"}
REGIME_TITLES = {
    "server": "the server's own settings",
    "cpu": "CPU-bound: synchronous_commit = off on the bench databases",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def connect(db: str, **kw) -> psycopg.Connection:
    return psycopg.connect(dbname=db, autocommit=True, **{**CONN, **kw})


def url(db: str) -> str:
    return f"postgresql://{CONN['user']}@/{db}?host={CONN['host']}&port={CONN['port']}"


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def make_content(size: int = 2000, seed: int = 20251127) -> str:
    """~2 KB of text that compresses about like prose: words drawn from a
    fixed vocabulary of made-up words."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 11)))
             for _ in range(400)]
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(vocab))
    return " ".join(words)[:size]


CONTENT = make_content()


# --------------------------------------------------------------------------
# The arms: how each one installs, creates and drops a vectorizer.

def ours_config(table: str, name: str, dest: str, enqueue: bool = True) -> str:
    return json.dumps({
        "source": table,
        "name": name,
        "destination": {"implementation": "table", "destination": dest},
        "loading": {"implementation": "column", "column_name": "content"},
        "embedding": {"implementation": "openai", "model": "text-embedding-3-small", "dimensions": 768},
        "chunking": {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400},
        "formatting": {"implementation": "python_template", "template": "$title - $chunk"},
        "scheduling": {"implementation": "none"},
        "indexing": {"implementation": "none"},
        "enqueue_existing": enqueue,
    })


PGAI_CREATE = (
    "SELECT ai.create_vectorizer(%s::regclass, name => %s,"
    " loading => ai.loading_column('content'),"
    " embedding => ai.embedding_openai('text-embedding-3-small', 768),"
    " destination => ai.destination_table(%s),"
    " chunking => ai.chunking_character_text_splitter(800, 400),"
    " formatting => ai.formatting_python_template('$title - $chunk'),"
    " scheduling => ai.scheduling_none(), indexing => ai.indexing_none(),"
    " enqueue_existing => %s)"
)


def create_vectorizer(conn, arm: str, table: str, name: str, dest: str, enqueue: bool = True) -> None:
    if arm == "ours":
        conn.execute("SELECT migrate.create_vectorizer(%s::jsonb)", (ours_config(table, name, dest, enqueue),))
    elif arm == "pgai":
        conn.execute(PGAI_CREATE, (table, name, dest, enqueue))
    else:
        conn.execute(by_hand_create(table, dest))


def drop_vectorizer(conn, arm: str, table: str, name: str, dest: str) -> None:
    if arm == "ours":
        conn.execute("SELECT migrate.drop_vectorizer(%s, true)", (name,))
    elif arm == "pgai":
        conn.execute("SELECT ai.drop_vectorizer(%s, drop_all => true)", (name,))
    else:
        conn.execute(by_hand_drop(table, dest))


def by_hand_create(table: str, dest: str) -> str:
    """The plain arm of the DDL-latency measurement: the same objects a
    vectorizer makes (store, view, queue, failed queue, trigger function,
    three triggers), written out by hand in one transaction."""
    t, st, vw = table, f"{dest}_store", dest
    q, fq, fn = f"{dest}_q", f"{dest}_q_failed", f"{dest}_trg"
    return f"""
BEGIN;
CREATE TABLE {st} (embedding_uuid uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY, id bigint NOT NULL,
  chunk_seq int NOT NULL, chunk text NOT NULL, embedding vector(768) NOT NULL, UNIQUE (id, chunk_seq));
CREATE VIEW {vw} AS SELECT e.embedding_uuid, e.chunk_seq, e.chunk, e.embedding, e.id, s.title, s.content, s.views
  FROM {st} e LEFT JOIN {t} s ON e.id = s.id;
CREATE TABLE {q} (id bigint NOT NULL PRIMARY KEY, queued_at timestamptz NOT NULL DEFAULT now(),
  loading_retries int NOT NULL DEFAULT 0, loading_retry_after timestamptz);
CREATE TABLE {fq} (id bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now(), failure_step text NOT NULL DEFAULT '');
CREATE INDEX ON {fq} (id);
CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  IF TG_OP = 'INSERT' OR TG_OP = 'UPDATE' THEN
    INSERT INTO {q} (id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'DELETE' THEN
    DELETE FROM {st} WHERE id = OLD.id; DELETE FROM {q} WHERE id = OLD.id;
  ELSE
    TRUNCATE {st}, {q};
  END IF;
  RETURN NULL;
END $f$;
CREATE TRIGGER {fn} AFTER INSERT OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}();
CREATE TRIGGER {fn}_upd AFTER UPDATE ON {t} FOR EACH ROW
  WHEN (OLD.id IS DISTINCT FROM NEW.id OR OLD.title IS DISTINCT FROM NEW.title OR OLD.content IS DISTINCT FROM NEW.content)
  EXECUTE FUNCTION {fn}();
CREATE TRIGGER {fn}_truncate AFTER TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {fn}();
COMMIT;"""


def by_hand_drop(table: str, dest: str) -> str:
    fn = f"{dest}_trg"
    return f"""
BEGIN;
DROP TRIGGER {fn} ON {table}; DROP TRIGGER {fn}_upd ON {table}; DROP TRIGGER {fn}_truncate ON {table};
DROP FUNCTION {fn}();
DROP TABLE {dest}_q, {dest}_q_failed;
DROP VIEW {dest};
DROP TABLE {dest}_store;
COMMIT;"""


def queue_of(conn, arm: str, name: str) -> str | None:
    if arm == "plain":
        return None
    catalog = "migrate.vectorizer" if arm == "ours" else "ai.vectorizer"
    return conn.execute(
        f"SELECT format('%%I.%%I', queue_schema, queue_table) FROM {catalog} WHERE name = %s", (name,)
    ).fetchone()[0]


# --------------------------------------------------------------------------
# Running pgbench.

@dataclass
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    failed: int


def pgbench(env: "Env", db: str, script: str, *, seconds: int | None = None, per_client: int | None = None,
            clients: int = 2, defs: dict[str, object] | None = None) -> PgbenchResult:
    cmd = [env.pgbench, "-n", "-M", "prepared", "-c", str(clients), "-j", str(clients),
           "-h", CONN["host"], "-p", str(CONN["port"]), "-U", CONN["user"], "-f", str(HERE / script)]
    cmd += ["-T", str(seconds)] if seconds is not None else ["-t", str(per_client)]
    for k, v in (defs or {}).items():
        cmd += ["-D", f"{k}={v}"]
    cmd.append(db)
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"pgbench {script} on {db} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    out = p.stdout

    def grab(pattern: str, cast=float):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else None

    return PgbenchResult(
        tps=grab(r"tps = ([\d.]+) \(without initial connection time\)"),
        latency_ms=grab(r"latency average = ([\d.]+) ms"),
        transactions=grab(r"number of transactions actually processed: (\d+)", int),
        failed=grab(r"number of failed transactions: (\d+)", int) or 0,
    )


# --------------------------------------------------------------------------
# Environment and set-up.

@dataclass
class Env:
    pgbench: str
    pgai_cli: str | None
    pgai_missing: str | None = None      # why the pgai arm cannot run
    pgai_version: str | None = None
    info: dict = field(default_factory=dict)

    @property
    def arms(self) -> list[str]:
        return [a for a in ARMS if a != "pgai" or self.pgai_missing is None]


def recreate_db(db: str) -> None:
    assert db.startswith(PREFIX)
    with connect("postgres") as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))


def drop_db(db: str) -> None:
    assert db.startswith(PREFIX)
    with connect("postgres") as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(db)))


def install(env: Env, db: str, arm: str) -> None:
    """Put the arm's software into the database: pgvector for all (so the
    catalogs are alike), pgai_migrate for ours, the pgai library for pgai."""
    with connect(db) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS vector")
        if arm == "ours":
            c.execute("CREATE EXTENSION pgai_migrate CASCADE")
    if arm == "pgai":
        p = subprocess.run([env.pgai_cli, "install", "-d", url(db)], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"pgai install into {db} failed:\n{p.stdout}\n{p.stderr}")


def create_source(conn, table: str = "bench_src", rows: int = 0) -> None:
    conn.execute(f"CREATE TABLE {table} (id bigserial PRIMARY KEY, title text, content text, views int)")
    # Autovacuum would start at random moments; the driver vacuums between runs instead.
    conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = off)")
    if rows:
        load_rows(conn, table, rows)


def load_rows(conn, table: str, rows: int) -> None:
    step = 50_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        conn.execute(
            f"INSERT INTO {table} (title, content, views) "
            "SELECT 'title ' || g, g || ' ' || %s, 0 FROM generate_series(1, %s) g",
            (CONTENT, n),
        )


def probe_pgai(env: Env) -> None:
    """Decide whether the pgai arm can run, and why not if it cannot."""
    if not env.pgai_cli or not os.access(env.pgai_cli, os.X_OK):
        env.pgai_missing = f"the pgai CLI was not found at {env.pgai_cli!r} (installing the PyPI package pgai failed; see run.sh output)"
        return
    p = subprocess.run([env.pgai_cli, "--version"], capture_output=True, text=True)
    m = re.search(r"(\d+\.\d+\.\d+\S*)", p.stdout + p.stderr)
    env.pgai_version = m.group(1) if m else (p.stdout + p.stderr).strip()
    db = PREFIX + "pgai_probe"
    try:
        recreate_db(db)
        install(env, db, "pgai")
        with connect(db) as c:
            create_source(c, "bench_src", 3)
            create_vectorizer(c, "pgai", "bench_src", "bench", "bench_emb")
            drop_vectorizer(c, "pgai", "bench_src", "bench", "bench_emb")
    except Exception as e:  # noqa: BLE001 - the reason is the report
        env.pgai_missing = f"pgai {env.pgai_version} could not be installed or run here: {str(e).strip()[:500]}"
    finally:
        drop_db(db)


def machine_info(env: Env) -> dict:
    with connect("postgres") as c:
        version = c.execute("SHOW server_version").fetchone()[0]
        settings = dict(c.execute(
            "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN "
            "('shared_buffers','synchronous_commit','fsync','max_wal_size','wal_level','work_mem','maintenance_work_mem')"
        ).fetchall())
        ext = dict(c.execute(
            "SELECT name, default_version FROM pg_available_extensions WHERE name IN ('vector','pgai_migrate')"
        ).fetchall())
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    # The run measures the installed build, which may differ from HEAD.
    build = ""
    try:
        libdir = subprocess.run([str(Path(env.pgbench).with_name("pg_config")), "--pkglibdir"],
                                capture_output=True, text=True).stdout.strip()
        so = Path(libdir) / "pgai_migrate.so"
        build = (hashlib.sha256(so.read_bytes()).hexdigest()[:12] + ", installed "
                 + datetime.datetime.fromtimestamp(so.stat().st_mtime, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "postgresql": version,
        "pgvector": ext.get("vector"),
        "pgai_migrate": ext.get("pgai_migrate"),
        "pgai": env.pgai_version or "n/a",
        "settings": settings,
        "commit": commit,
        "build": build,
    }


# --------------------------------------------------------------------------
# Other work on the machine (a build, another test suite) skews a
# measurement: wait for a quiet moment first, within a budget, and record
# how busy the machine was.

def cpu_busy(interval: float = 0.5) -> float:
    """Fraction of all CPUs busy over `interval` seconds (0 when /proc/stat is unreadable)."""
    def snap():
        try:
            f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        return sum(f), f[3] + f[4]
    a = snap()
    time.sleep(interval)
    b = snap()
    if not a or not b or b[0] == a[0]:
        return 0.0
    return 1 - (b[1] - a[1]) / (b[0] - a[0])


class QuietGate:
    """Waits, within a budget for the whole run, until the machine is quiet."""

    def __init__(self, budget_s: float, threshold: float = 0.25):
        self.budget, self.threshold = budget_s, threshold
        self.waited = 0.0
        self.busy_starts = 0
        self.retries = 0
        self.disturbed_kept = 0

    def wait(self) -> float:
        busy = cpu_busy()
        while busy > self.threshold and self.waited < self.budget:
            self.waited += 1.5
            time.sleep(1)
            busy = cpu_busy()
        if busy > self.threshold:
            self.busy_starts += 1
        return busy

    @property
    def exhausted(self) -> bool:
        return self.waited >= self.budget


def _ticks(stat: str) -> tuple[str, int, int, int]:
    """comm, ppid, own CPU ticks, reaped children's ticks from /proc/PID/stat."""
    comm = stat[stat.index("(") + 1:stat.rindex(")")]
    f = stat[stat.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])


def postgres_ticks() -> int:
    """CPU ticks of the PostgreSQL server: its live processes plus the
    backends that have exited (accounted to the postmaster)."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = _ticks(Path(f"/proc/{d}/stat").read_text())
            except (OSError, ValueError, IndexError):
                pass
    total = 0
    for pid, (comm, ppid, own, children) in procs.items():
        if comm == "postgres":
            total += own
            if procs.get(ppid, ("",))[0] != "postgres":   # the postmaster
                total += children
    return total


def system_ticks() -> tuple[int, int]:
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(f) - f[3] - f[4], sum(f)          # busy, all


class Disturbance:
    """Measures, around one measurement, the CPU used by anything but the
    server, pgbench and this driver, and whether other databases on the
    server were active: a build or a test suite running at the same time."""

    def __enter__(self):
        self.stop = threading.Event()
        self.polls = self.foreign_polls = 0
        self.thread = threading.Thread(target=self._poll, daemon=True)
        try:
            self.t0 = (system_ticks(), postgres_ticks(), os.times())
        except (OSError, ValueError):
            self.t0 = None
        self.thread.start()
        return self

    def _poll(self):
        try:
            with connect("postgres") as c:
                while not self.stop.wait(0.25):
                    n = c.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend'"
                        " AND pid <> pg_backend_pid() AND datname NOT LIKE 'bench\\_%'"
                    ).fetchone()[0]
                    self.polls += 1
                    self.foreign_polls += n > 0
        except psycopg.Error:
            pass

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.foreign_cpu = 0.0
        if self.t0:
            (b0, a0), pg0, os0 = self.t0
            (b1, a1), pg1, os1 = system_ticks(), postgres_ticks(), os.times()
            hz = os.sysconf("SC_CLK_TCK")
            mine = (os1.user + os1.system + os1.children_user + os1.children_system
                    - os0.user - os0.system - os0.children_user - os0.children_system) * hz
            foreign = (b1 - b0) - (pg1 - pg0) - mine
            self.foreign_cpu = max(0.0, foreign / max(1, a1 - a0))
        self.foreign_active = self.foreign_polls / self.polls if self.polls else 0.0
        return False

    @property
    def disturbed(self) -> bool:
        return self.foreign_cpu > 0.10 or self.foreign_active > 0.10


TRIES = 3


def measure(fn, what: str, prepare=None, attempts: int | None = None):
    """prepare(attempt), then fn(attempt) (one measurement), until it runs
    undisturbed, at most `attempts` (--tries) times while the waiting
    budget lasts; returns fn's result and what disturbed it."""
    attempts = attempts or TRIES
    for attempt in range(attempts):
        if prepare:
            prepare(attempt)
        GATE.wait()
        with Disturbance() as d:
            out = fn(attempt)
        info = {"foreign_cpu": round(d.foreign_cpu, 3), "foreign_active": round(d.foreign_active, 2)}
        if not d.disturbed:
            return out, info
        if attempt + 1 < attempts and not GATE.exhausted:
            GATE.retries += 1
            log(f"  {what}: disturbed (other CPU {d.foreign_cpu:.0%}, other databases active "
                f"{d.foreign_active:.0%} of the time), again")
            time.sleep(2)
            GATE.waited += 2
    GATE.disturbed_kept += 1
    info["disturbed"] = True
    return out, info


GATE = QuietGate(0)


# --------------------------------------------------------------------------
# Measurements 1-4: write throughput and queue growth.

WORKLOADS = ("insert", "delete", "update_views", "update_content", "update_hot")


def rotation(arms: list[str], rep: int) -> list[str]:
    k = rep % len(arms)
    return arms[k:] + arms[:k]


def prepare_run(c, queue: str | None) -> None:
    if queue:
        c.execute(f"TRUNCATE {queue}")
    c.execute("VACUUM bench_src")
    c.execute("CHECKPOINT")


def ensure_deletable(c, queue: str | None, need: int) -> None:
    """The DELETE run walks ids upwards from bench_del_seq: make sure that at
    least `need` rows lie ahead of it (inserted rows normally suffice)."""
    last, called = c.execute("SELECT last_value, is_called FROM bench_del_seq").fetchone()
    nxt = last + 1 if called else last
    have = c.execute("SELECT count(*) FROM bench_src WHERE id >= %s", (nxt,)).fetchone()[0]
    if have < need:
        load_rows(c, "bench_src", need - have)
        if queue:
            c.execute(f"TRUNCATE {queue}")


def setup_write_dbs(env: Env, sz: Sizes) -> tuple[dict[str, str], dict[str, str | None], dict[str, str | None]]:
    """One database per arm with bench_src (sz.rows rows) and bench_copy
    (empty), each with a vectorizer for the non-plain arms."""
    arms = env.arms
    dbs = {a: PREFIX + a for a in arms}
    queues: dict[str, str | None] = {}
    copy_queues: dict[str, str | None] = {}
    for arm in arms:
        log(f"setting up {dbs[arm]}: bench_src with {sz.rows:,} rows of ~2 KB")
        recreate_db(dbs[arm])
        install(env, dbs[arm], arm)
        with connect(dbs[arm]) as c:
            create_source(c, rows=sz.rows)
            create_source(c, "bench_copy")
            c.execute(f"CREATE SEQUENCE bench_del_seq START {sz.rows + 1}")
            if arm != "plain":
                create_vectorizer(c, arm, "bench_src", "bench", "bench_emb")
                create_vectorizer(c, arm, "bench_copy", "bench_copy", "bench_copy_emb")
            queues[arm] = queue_of(c, arm, "bench")
            copy_queues[arm] = queue_of(c, arm, "bench_copy")
            for q in (queues[arm], copy_queues[arm]):
                if q:
                    c.execute(f"ALTER TABLE {q} SET (autovacuum_enabled = off)")
            c.execute("VACUUM ANALYZE bench_src")
    return dbs, queues, copy_queues


def set_regime(dbs: dict[str, str], regime: str) -> None:
    """synchronous_commit for every new session of the bench databases."""
    value = REGIMES[regime]
    with connect("postgres") as c:
        for db in dbs.values():
            if value is None:
                c.execute(sql.SQL("ALTER DATABASE {} RESET synchronous_commit").format(sql.Identifier(db)))
            else:
                c.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = {}").format(
                    sql.Identifier(db), sql.Literal(value)))
    for db in dbs.values():
        with connect(db) as c:
            got = c.execute("SHOW synchronous_commit").fetchone()[0]
            want = value or got
            if got != want:
                raise RuntimeError(f"{db}: synchronous_commit is {got}, expected {want}")


def write_benchmarks(env: Env, sz: Sizes, out: dict, dbs: dict[str, str], queues: dict[str, str | None]) -> None:
    arms = env.arms
    samples = {w: {a: [] for a in arms} for w in WORKLOADS}
    for rep in range(sz.reps):
        for w in WORKLOADS:
            for arm in rotation(arms, rep):
                db, queue = dbs[arm], queues[arm]

                def prepare(attempt, db=db, queue=queue, w=w):
                    with connect(db) as c:
                        if w == "delete":
                            ensure_deletable(c, queue, 2 * sz.deletes)
                        prepare_run(c, queue)

                def one(attempt, db=db, w=w, arm=arm, rep=rep):
                    # A token per measurement, to count the keys it changed.
                    defs = {"run": f"r{rep}a{attempt}{arm}{w}", "content": CONTENT, "nrows": sz.rows, "hot": sz.hot}
                    if w == "delete":
                        r = pgbench(env, db, "delete.sql", per_client=sz.deletes, defs=defs)
                    else:
                        r = pgbench(env, db, f"{w}.sql", seconds=sz.seconds, defs=defs)
                    return r, defs["run"]

                (r, run), info = measure(one, f"{w} {arm}", prepare)
                s = {"tps": r.tps, "latency_ms": r.latency_ms, "transactions": r.transactions, "failed": r.failed,
                     **info}
                with connect(db) as c:
                    if queue:
                        s["queue_rows"] = c.execute(f"SELECT count(*) FROM {queue}").fetchone()[0]
                    if w in ("update_content", "update_hot"):
                        s["distinct_keys"] = c.execute(
                            "SELECT count(*) FROM bench_src WHERE id <= %s AND starts_with(content, %s)",
                            (sz.rows, run + " "),
                        ).fetchone()[0]
                samples[w][arm].append(s)
                log(f"rep {rep + 1}/{sz.reps} {w:<15} {arm:<5} tps {r.tps:9.1f}"
                    + (f"  queue {s['queue_rows']}" if "queue_rows" in s else "")
                    + (f"  keys {s['distinct_keys']}" if "distinct_keys" in s else ""))
    out["writes"] = samples


# --------------------------------------------------------------------------
# Bulk statements: one statement writing many rows, timed from the client.

BULK = ("copy", "insert_select", "update_bulk", "delete_bulk")


def copy_file(db: str) -> str:
    """Where the server keeps the COPY input: beside its data directory
    (the server writes and reads it itself, so the client's speed and the
    socket play no part)."""
    with connect(db) as c:
        data = c.execute("SHOW data_directory").fetchone()[0]
    return str(Path(data).parent / "bench_copy.data")


def bulk_benchmarks(env: Env, sz: Sizes, out: dict, dbs: dict[str, str], queues: dict[str, str | None],
                    copy_queues: dict[str, str | None]) -> None:
    arms = env.arms
    path = copy_file(dbs[arms[0]])
    with connect(dbs[arms[0]]) as c:
        c.execute(
            sql.SQL("COPY (SELECT 'title ' || g, g || ' ' || {}, 0 FROM generate_series(1, {}) g) TO {}").format(
                sql.Literal(CONTENT), sql.Literal(sz.copy_rows), sql.Literal(path)))
    # Each repetition inserts bulk_rows rows above the highest id, updates
    # their loaded column, and deletes them, one statement each.
    base = {}
    for arm in arms:
        with connect(dbs[arm]) as c:
            base[arm] = c.execute("SELECT coalesce(max(id), 0) FROM bench_src").fetchone()[0]
    insert_sql = ("INSERT INTO bench_src (title, content, views) "
                  "SELECT 'bulk ' || g, g || ' ' || %s, 0 FROM generate_series(1, %s) g")
    statements = {
        "copy": lambda arm: ("COPY bench_copy (title, content, views) FROM '" + path.replace("'", "''") + "'", None),
        "insert_select": lambda arm: (insert_sql, (CONTENT, sz.bulk_rows)),
        "update_bulk": lambda arm: ("UPDATE bench_src SET content = 'u ' || content WHERE id > %s", (base[arm],)),
        "delete_bulk": lambda arm: ("DELETE FROM bench_src WHERE id > %s", (base[arm],)),
    }
    samples = {w: {a: [] for a in arms} for w in BULK}
    try:
        for rep in range(sz.bulk_reps):
            for w in BULK:
                for arm in rotation(arms, rep):
                    db, queue = dbs[arm], queues[arm]

                    def prepare(attempt, db=db, queue=queue, w=w, arm=arm):
                        with connect(db) as c:
                            if w == "copy":
                                c.execute("TRUNCATE bench_copy")
                                if copy_queues[arm]:
                                    c.execute(f"TRUNCATE {copy_queues[arm]}")
                                c.execute("VACUUM bench_copy")
                            else:
                                have = c.execute("SELECT count(*) FROM bench_src WHERE id > %s",
                                                 (base[arm],)).fetchone()[0]
                                if w == "insert_select" and have:
                                    c.execute("DELETE FROM bench_src WHERE id > %s", (base[arm],))
                                elif w != "insert_select" and have < sz.bulk_rows:
                                    c.execute("DELETE FROM bench_src WHERE id > %s", (base[arm],))
                                    c.execute(insert_sql, (CONTENT, sz.bulk_rows))
                            prepare_run(c, queue)

                    def one(attempt, db=db, w=w, arm=arm):
                        stmt, params = statements[w](arm)
                        with connect(db) as c:
                            t0 = time.perf_counter()
                            cur = c.execute(stmt, params)
                            elapsed = time.perf_counter() - t0
                            return elapsed, cur.rowcount

                    (elapsed, n), info = measure(one, f"{w} {arm}", prepare)
                    s = {"seconds": elapsed, "rows": n, "rows_per_s": n / elapsed if elapsed else None, **info}
                    q = copy_queues[arm] if w == "copy" else queue
                    if q:
                        with connect(db) as c:
                            s["queue_rows"] = c.execute(f"SELECT count(*) FROM {q}").fetchone()[0]
                    samples[w][arm].append(s)
                    log(f"rep {rep + 1}/{sz.bulk_reps} {w:<15} {arm:<5} {n:,} rows in {elapsed:6.2f} s"
                        + (f"  queue {s['queue_rows']}" if "queue_rows" in s else ""))
        for arm in arms:
            with connect(dbs[arm]) as c:
                c.execute("TRUNCATE bench_copy")
    finally:
        try:
            os.remove(path)
        except OSError:
            with connect(dbs[arms[0]]) as c:   # not ours to remove: at least empty it
                c.execute(sql.SQL("COPY (SELECT) TO {}").format(sql.Literal(path)))
    out["bulk"] = samples


# --------------------------------------------------------------------------
# Measurement 5: create_vectorizer with enqueue_existing on N rows, and a
# writer that arrives while it runs.

def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1000


def big_benchmark(env: Env, sz: Sizes, results: dict) -> None:
    arms = env.arms
    db = PREFIX + "big"
    log(f"setting up {db}: bench_src with {sz.big_rows:,} rows of ~2 KB")
    recreate_db(db)
    for arm in arms:
        if arm != "plain":
            install(env, db, arm)
    with connect(db) as c:
        create_source(c, rows=sz.big_rows)
        c.execute("VACUUM ANALYZE bench_src")

    insert = ("INSERT INTO bench_src (title, content, views) VALUES ('concurrent writer', %s, 0)", (CONTENT,))
    with connect(db) as c:
        lat = []
        for _ in range(20):
            t0 = time.perf_counter()
            c.execute(*insert)
            lat.append(time.perf_counter() - t0)
    results["big_insert_alone_ms"] = median(lat) * 1000

    def create(c, arm):
        if arm == "plain":
            c.execute("CREATE TABLE bench_q AS SELECT id FROM bench_src")
        else:
            create_vectorizer(c, arm, "bench_src", "bench", "bench_emb", enqueue=True)

    def drop(c, arm):
        if arm == "plain":
            c.execute("DROP TABLE bench_q")
        else:
            drop_vectorizer(c, arm, "bench_src", "bench", "bench_emb")

    def checkpoint(attempt=None):
        with connect(db) as c:
            c.execute("CHECKPOINT")

    def create_with_writer(arm: str, delay: float) -> dict:
        """Times the call; a fifth of the way in, one INSERT into the
        source table starts on another connection, and is timed too."""
        with connect(db) as main, connect(db) as writer:
            box: dict = {}

            def call():
                t = time.perf_counter()
                try:
                    create(main, arm)
                except Exception as e:  # noqa: BLE001 - re-raised below
                    box["error"] = e
                box["start"], box["end"] = t, time.perf_counter()

            th = threading.Thread(target=call)
            th.start()
            time.sleep(delay)
            w0 = time.perf_counter()
            writer.execute(*insert)
            w1 = time.perf_counter()
            th.join()
            if "error" in box:
                raise box["error"]
            t0 = time.perf_counter()
            drop(main, arm)
            return {
                "create_ms": (box["end"] - box["start"]) * 1000,
                "writer_ms": (w1 - w0) * 1000,
                "writer_started_during_call": w0 < box["end"],
                "drop_ms": (time.perf_counter() - t0) * 1000,
            }

    # A warm-up per arm reads the table into cache and times the call alone,
    # which sets when the writer starts.
    warm = {}
    for arm in arms:
        checkpoint()
        GATE.wait()
        with connect(db) as c:
            warm[arm] = timed(lambda: create(c, arm)) / 1000
            drop(c, arm)
        log(f"warm-up create {arm:<5} {warm[arm] * 1000:9.1f} ms")

    samples = {a: [] for a in arms}
    for rep in range(sz.big_reps):
        for arm in rotation(arms, rep):
            delay = max(0.005, warm[arm] * 0.2)
            s, info = measure(lambda attempt, arm=arm, delay=delay: create_with_writer(arm, delay),
                              f"create {arm}", prepare=checkpoint)
            s.update(info)
            samples[arm].append(s)
            log(f"rep {rep + 1}/{sz.big_reps} create {arm:<5} {s['create_ms']:9.1f} ms,"
                f" writer waited {s['writer_ms']:8.1f} ms, drop {s['drop_ms']:7.1f} ms")
    results["big"] = samples
    drop_db(db)


# --------------------------------------------------------------------------
# Measurement 6: DDL latency on an empty table, and with many vectorizers.

def ddl_benchmark(env: Env, sz: Sizes, results: dict) -> None:
    arms = env.arms
    db = PREFIX + "ddl"
    recreate_db(db)
    for arm in arms:
        if arm != "plain":
            install(env, db, arm)
    with connect(db) as c:
        create_source(c, "bench_empty")

    def ddl_round(attempt):
        samples = {a: {"create_ms": [], "drop_ms": []} for a in arms}
        with connect(db) as c:
            for rep in range(-1, sz.ddl_reps):          # rep -1 is a warm-up
                for arm in rotation(arms, rep + 1):
                    cr = timed(lambda: create_vectorizer(c, arm, "bench_empty", "probe", "probe_emb"))
                    dr = timed(lambda: drop_vectorizer(c, arm, "bench_empty", "probe", "probe_emb"))
                    if rep >= 0:
                        samples[arm]["create_ms"].append(cr)
                        samples[arm]["drop_ms"].append(dr)
        return samples

    samples, info = measure(ddl_round, "empty-table create/drop")
    results["ddl"] = samples
    results["ddl_disturbance"] = info
    log("empty-table create/drop: " + ", ".join(
        f"{a} {median(samples[a]['create_ms']):.2f}/{median(samples[a]['drop_ms']):.2f} ms" for a in arms))
    drop_db(db)

    # Many vectorizers: one database per arm, `many` tables with one vectorizer
    # each, and a probe table whose create/drop is timed before and after.
    many_arms = [a for a in arms if a != "plain"]
    dbs = {a: PREFIX + "many_" + a for a in many_arms}
    for arm in many_arms:
        recreate_db(dbs[arm])
        install(env, dbs[arm], arm)
        with connect(dbs[arm]) as c:
            create_source(c, "probe")
            c.execute(
                "DO $$ BEGIN FOR i IN 1..%s LOOP EXECUTE format("
                "'CREATE TABLE %%I (id bigserial PRIMARY KEY, title text, content text, views int)', 't' || lpad(i::text, 5, '0'));"
                " END LOOP; END $$" % int(sz.many)
            )
    out = {a: {"first_ms": [], "after_ms": [], "bulk_ms": []} for a in many_arms}

    def probe(key: str) -> None:
        def run(attempt):
            res = {a: [] for a in many_arms}
            conns = {a: connect(dbs[a]) for a in many_arms}
            try:
                for rep in range(-1, sz.probe_reps):    # rep -1 is a warm-up
                    for arm in rotation(many_arms, rep + 1):
                        c = conns[arm]
                        cr = timed(lambda: create_vectorizer(c, arm, "probe", "probe", "probe_emb"))
                        drop_vectorizer(c, arm, "probe", "probe", "probe_emb")
                        if rep >= 0:
                            res[arm].append(cr)
            finally:
                for c in conns.values():
                    c.close()
            return res

        res, info = measure(run, f"create/drop probe ({key})")
        for a in many_arms:
            out[a][key] = res[a]
            out[a][key + "_disturbance"] = info

    probe("first_ms")
    for arm in many_arms:
        log(f"creating {sz.many} vectorizers ({arm})")
        with connect(dbs[arm]) as c:
            for i in range(1, sz.many + 1):
                t = f"t{i:05d}"
                out[arm]["bulk_ms"].append(timed(lambda: create_vectorizer(c, arm, t, f"v_{t}", f"{t}_emb")))
    probe("after_ms")
    if "ours" in many_arms:
        r, info = measure(lambda attempt: pgbench(env, dbs["ours"], "managed_tables.sql",
                                                  seconds=sz.managed_seconds, clients=1), "managed_tables()")
        out["ours"]["managed_tables_ms"] = r.latency_ms
        out["ours"]["managed_tables_disturbance"] = info
        with connect(dbs["ours"]) as c:
            out["ours"]["managed_tables_rows"] = c.execute("SELECT count(*) FROM migrate.managed_tables()").fetchone()[0]
    for arm in many_arms:
        log(f"{arm}: create #1 {median(out[arm]['first_ms']):.2f} ms, "
            f"#{sz.many + 1} {median(out[arm]['after_ms']):.2f} ms")
        drop_db(dbs[arm])
    results["many"] = out


# --------------------------------------------------------------------------
# The report.

def fmt(v, unit: str = "") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if unit == "tps":
        return f"{v:,.0f}"
    if unit == "rows":
        return f"{v:,.0f}"
    if unit == "ms":
        return f"{v:,.2f} ms" if v < 100 else f"{v:,.0f} ms"
    if unit == "x":
        return f"{v:.2f}×"
    return f"{v}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def clean(samples: list[dict]) -> list[dict]:
    """The samples no other work disturbed, when at least two are left;
    otherwise all of them."""
    ok = [s for s in samples if not s.get("disturbed")]
    return ok if len(ok) >= 2 else samples


def build_report(env: Env, sz: Sizes, res: dict, mode: str, elapsed: float) -> str:
    misses: list[str] = []
    has = {a: a in env.arms for a in ARMS}

    def judged(ok: bool | None, what: str) -> str:
        if ok is None:
            return "—"
        if not ok:
            misses.append(what)
        return "yes" if ok else "**no**"

    def add(label, vals: dict, unit: str, target: str = "", ok: bool | None = None, ratios: str = "plain"):
        rows = sections[-1][1]
        p, g, o = (vals.get(a) for a in ARMS)
        num = lambda v: v if isinstance(v, (int, float)) else None  # noqa: E731
        if ratios == "plain":
            cols = [fmt(ratio(num(g), num(p)), "x"), fmt(ratio(num(o), num(p)), "x")]
        else:
            cols = ["—", "—"]
        rog = fmt(ratio(num(o), num(g)), "x") if ratios in ("plain", "pgai") and has["pgai"] else "—"
        what = label + (" [cpu]" if sections[-1][0].startswith("Writes") and "CPU" in sections[-1][0] else "")
        rows.append([label, fmt(p, unit) if "plain" in vals else "—", fmt(g, unit) if has["pgai"] else "n/a",
                     fmt(o, unit), *cols, rog, target, judged(ok, what)])

    sections: list[tuple[str, list[list[str]]]] = []
    regimes = res.get("regimes") or ({"server": {"writes": res["writes"]}} if res.get("writes") else {})
    for regime, out in regimes.items():
        rows = []
        sections.append((f"Writes and bulk statements, {REGIME_TITLES.get(regime, regime)}", rows))
        # The CPU-bound regime is judged against the tighter targets: there
        # the triggers' own cost is not hidden behind the WAL flush.
        cpu = regime == "cpu"
        suffix = " [cpu]" if cpu else ""
        w = out.get("writes", {})

        def med(wl, arm, key="tps", w=w):
            xs = w.get(wl, {}).get(arm)
            return median([s.get(key) for s in clean(xs)]) if xs else None

        def tps_row(num, wl, label, target=None, med=med):
            vals = {a: med(wl, a) for a in env.arms}
            r = ratio(vals.get("ours"), vals.get("plain"))
            ok = None if target is None or r is None else r >= target
            add(f"{num}. {label} (TPS)", vals, "tps", f"≥ {target:.2f}×" if target else "report", ok)

        if w:
            tps_row(1, "insert", "INSERT, ~2 KB content", 0.92)
            tps_row(2, "update_views", "UPDATE of an unrelated column (views)", 0.98 if cpu else 0.95)
            qv = {a: med("update_views", a, "queue_rows") for a in env.arms if a != "plain"}
            add("2. queue rows created by those updates", qv, "rows", "0",
                None if qv.get("ours") is None else qv["ours"] == 0, ratios="none")
            tps_row(3, "update_content", "UPDATE of the loaded column (content)", 0.90 if cpu else 0.80)
            tps_row(3, "delete", "DELETE", 0.90 if cpu else None)
            for wl, label in (("update_content", "random keys"), ("update_hot", f"hot set of {sz.hot:,} keys")):
                vals = {}
                for a in env.arms:
                    if a == "plain":
                        continue
                    q, k = med(wl, a, "queue_rows"), med(wl, a, "distinct_keys")
                    n = med(wl, a, "transactions")
                    vals[a] = f"{q:,.0f} / {k:,.0f} keys ({n:,.0f} updates)" if q is not None else None
                ours = w.get(wl, {}).get("ours")
                ok = None if not ours else all(s["queue_rows"] <= s["distinct_keys"] for s in ours)
                rows.append([f"4. queue rows / distinct keys changed, {label}", "—",
                             vals.get("pgai", "n/a") or "n/a", vals.get("ours") or "n/a", "—", "—", "—",
                             "queue ≤ keys", judged(ok, f"4. queue growth, {label}{suffix}")])
        bulk = out.get("bulk", {})
        labels = {
            "copy": f"COPY of {sz.copy_rows:,} rows into the source",
            "insert_select": f"INSERT … SELECT of {sz.bulk_rows:,} rows",
            "update_bulk": f"UPDATE of the loaded column on {sz.bulk_rows:,} rows, one statement",
            "delete_bulk": f"DELETE of {sz.bulk_rows:,} rows, one statement",
        }
        for wl, label in labels.items():
            if wl not in bulk:
                continue
            vals = {a: median([s.get("rows_per_s") for s in clean(bulk[wl][a])]) for a in env.arms if bulk[wl].get(a)}
            r = ratio(vals.get("ours"), vals.get("plain"))
            ok = None
            if cpu and r is not None:
                ok = r >= 0.85 and (vals.get("pgai") is None or vals["ours"] > vals["pgai"])
            add(f"7. {label} (rows/s)", vals, "rows", "≥ 0.85×, > pgai" if cpu else "report", ok)
            qs = [s.get("queue_rows") for s in bulk[wl].get("ours", []) if s.get("queue_rows") is not None]
            if wl != "delete_bulk" and qs:
                n = median([s.get("rows") for s in bulk[wl]["ours"]])
                if max(qs) > n:
                    judged(False, f"7. queue rows after {label}{suffix}")

    rows = []
    sections.append(("Migrations (the server's own settings)", rows))
    big = res.get("big")
    if big:
        cm = {a: median([s["create_ms"] for s in clean(big[a])]) for a in env.arms}
        r = ratio(cm.get("ours"), cm.get("plain"))
        add(f"5. create with enqueue_existing, N={sz.big_rows:,} (plain: CREATE TABLE AS SELECT id)", cm, "ms",
            "≤ 1.50×", None if r is None else r <= 1.5)
        wm = {a: median([s["writer_ms"] for s in clean(big[a])]) for a in env.arms}
        add(f"5. a single INSERT started 20% into the call waits (alone: {res['big_insert_alone_ms']:.2f} ms)",
            wm, "ms", "report", ratios="pgai")
        dm = {a: median([s["drop_ms"] for s in clean(big[a])]) for a in env.arms}
        add(f"5. drop (drop_all) after that, N={sz.big_rows:,} (plain: DROP TABLE)", dm, "ms", "report")

    ddl = res.get("ddl")
    if ddl:
        add("6. create_vectorizer, empty table (plain: the same DDL by hand)",
            {a: median(ddl[a]["create_ms"]) for a in env.arms}, "ms", "report")
        add("6. drop_vectorizer drop_all, empty table (plain: by hand)",
            {a: median(ddl[a]["drop_ms"]) for a in env.arms}, "ms", "report")
    many = res.get("many")
    if many:
        mt = many.get("ours", {}).get("managed_tables_ms")
        add(f"6. managed_tables() with {sz.many:,} vectorizers ({many.get('ours', {}).get('managed_tables_rows', 0):,} rows)",
            {"ours": mt, "pgai": "no such function"}, "ms", "< 5 ms", None if mt is None else mt < 5, ratios="none")
        first = {a: median(many[a]["first_ms"]) for a in many}
        after = {a: median(many[a]["after_ms"]) for a in many}
        add("6. create_vectorizer #1 (empty catalog)", first, "ms", "report", ratios="pgai")
        add(f"6. create_vectorizer #{sz.many + 1:,}", after, "ms", "report", ratios="pgai")
        growth = {a: ratio(after[a], first[a]) for a in many}
        r = growth.get("ours")
        add(f"6. #{sz.many + 1:,} ÷ #1", growth, "x", "≤ 1.20×", None if r is None else r <= 1.2, ratios="none")
        bulk = {a: median(many[a]["bulk_ms"]) for a in many}
        add(f"6. median create while making the {sz.many:,}", bulk, "ms", "report", ratios="pgai")

    i = env.info
    head = ["measurement", "plain", "pgai", "ours", "pgai ÷ plain", "ours ÷ plain", "ours ÷ pgai", "target (ours)", "met"]
    lines = [
        f"# pgai_migrate benchmark ({mode})",
        "",
        f"{i['date']}, commit {i['commit']} (installed pgai_migrate.so {i.get('build') or '?'}): {i['nproc']} CPUs ({i['cpu']}), {i['memory_gib']} GiB, "
        f"PostgreSQL {i['postgresql']}, pgvector {i['pgvector']}, pgai_migrate {i['pgai_migrate']}, pgai {i['pgai']}.",
        f"Server settings: " + ", ".join(f"{k}={v}" for k, v in sorted(i["settings"].items())) + ".",
        f"pgbench -M prepared -c 2 -j 2, -T {sz.seconds} s per write measurement (DELETE: -t {sz.deletes:,} per client), "
        f"{sz.reps} repetitions with the arms alternating; {sz.rows:,}-row source table; medians. "
        f"Create with enqueue_existing: {sz.big_reps} repetitions after a warm-up; DDL latency: {sz.ddl_reps} repetitions; "
        f"{sz.probe_reps} probes before and after {sz.many:,} vectorizers. "
        f"Bulk statements (7): {sz.bulk_reps} repetitions, timed at the client, one statement per sample "
        f"(COPY reads a file the server wrote); rows/s. Total time {elapsed / 60:.1f} min.",
        f"Other work on the machine: each measurement waited for it to be under 25% busy, and was repeated (up to {res.get('tries', 3)} tries) "
        f"when anything else used over 10% of the CPUs or another database was active during it: waited "
        f"{res['quiet_gate']['waited_s']:.0f} s in all, {res['quiet_gate']['retries']} measurement(s) repeated, "
        f"{res['quiet_gate']['disturbed_kept']} kept although disturbed (budget spent or third try; left out of the "
        f"medians when at least two clean samples remain).",
        "",
    ]
    if env.pgai_missing:
        lines += [f"pgai arm: n/a — {env.pgai_missing}", ""]
    for title, rows in sections:
        if not rows:
            continue
        lines += [f"## {title}", ""]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            lines.append("| " + " | ".join(r) + " |")
        lines.append("")
    lines.append("Targets missed: " + ("; ".join(misses) if misses else "none") + ".")
    lines.append("")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--smoke", action="store_true", help="small sizes, a few seconds per measurement")
    ap.add_argument("--pgbench", required=True)
    ap.add_argument("--pgai", help="path of the pgai CLI")
    ap.add_argument("--only", help="comma-separated subset: writes,bulk,big,ddl")
    ap.add_argument("--regimes", default=",".join(REGIMES),
                    help="comma-separated regimes for writes and bulk: server (the server's settings), "
                         "cpu (synchronous_commit = off on the bench databases)")
    ap.add_argument("--reps", type=int, help="repetitions of every write measurement (overrides the mode's)")
    ap.add_argument("--bulk-reps", type=int, help="repetitions of every bulk statement (overrides the mode's)")
    ap.add_argument("--tries", type=int, default=3,
                    help="runs of a measurement while other work disturbs it (1: never repeat, only flag)")
    ap.add_argument("--keep", action="store_true", help="keep the write-benchmark databases afterwards")
    ap.add_argument("--report", metavar="JSON", help="only print the table again from a results JSON")
    args = ap.parse_args()
    if args.report:
        res = json.loads(Path(args.report).read_text())
        env = Env(pgbench=args.pgbench, pgai_cli=None, pgai_missing=res.get("pgai_missing"), info=res["info"])
        print(build_report(env, Sizes(**res["sizes"]), res, res["mode"], res["elapsed_s"]))
        return 0
    sz = SMOKE if args.smoke else FULL
    mode = "smoke" if args.smoke else "full"
    if args.reps or args.bulk_reps:
        sz = Sizes(**{**sz.__dict__, **({"reps": args.reps} if args.reps else {}),
                      **({"bulk_reps": args.bulk_reps} if args.bulk_reps else {})})
        mode += f" ({sz.reps} write / {sz.bulk_reps} bulk repetitions)"
    only = set(args.only.split(",")) if args.only else {"writes", "bulk", "big", "ddl"}
    regimes = [r for r in args.regimes.split(",") if r]
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        ap.error(f"unknown regime(s) {', '.join(unknown)}; known: {', '.join(REGIMES)}")

    started = time.time()
    global GATE, TRIES
    GATE = QuietGate(budget_s=60 if args.smoke else 600)
    TRIES = max(1, args.tries)
    env = Env(pgbench=args.pgbench, pgai_cli=args.pgai)
    probe_pgai(env)
    if env.pgai_missing:
        log(f"pgai arm disabled: {env.pgai_missing}")
    env.info = machine_info(env)
    log(f"{mode} run: arms {', '.join(env.arms)}")

    results: dict = {"mode": mode, "sizes": sz.__dict__, "info": env.info, "pgai_missing": env.pgai_missing,
                     "regimes": {}}
    try:
        if only & {"writes", "bulk"}:
            dbs, queues, copy_queues = setup_write_dbs(env, sz)
            for regime in regimes:
                log(f"regime {regime}: {REGIME_TITLES[regime]}")
                set_regime(dbs, regime)
                out = results["regimes"].setdefault(regime, {})
                if "writes" in only:
                    write_benchmarks(env, sz, out, dbs, queues)
                if "bulk" in only:
                    bulk_benchmarks(env, sz, out, dbs, queues, copy_queues)
        if "big" in only:
            big_benchmark(env, sz, results)
        if "ddl" in only:
            ddl_benchmark(env, sz, results)
    finally:
        if not args.keep:
            for arm in ARMS:
                drop_db(PREFIX + arm)
    elapsed = time.time() - started
    build_after = machine_info(env).get("build")
    if build_after != env.info.get("build"):
        env.info["build"] = f"{env.info.get('build')}; CHANGED during the run to {build_after}"
        log(f"warning: the installed pgai_migrate.so changed during the run ({env.info['build']})")
    results["elapsed_s"] = elapsed
    results["tries"] = TRIES
    results["quiet_gate"] = {"waited_s": GATE.waited, "busy_starts": GATE.busy_starts,
                             "retries": GATE.retries, "disturbed_kept": GATE.disturbed_kept}
    report = build_report(env, sz, results, mode, elapsed)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.md").write_text(report)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=1, default=str))
    print(report)
    log(f"written {RESULTS / 'latest.md'} and latest.json ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
