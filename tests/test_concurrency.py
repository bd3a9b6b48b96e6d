"""Concurrent sessions: real, separate connections to the local server, each
driven from its own thread. Creates and drops racing each other, drops under
write load, and a worker draining the queue while 4 writers hammer the source
table, checked against a model of the queueing rules kept in Python.

Run with `-s` to see the figures of the load test. Its length is
PGAI_MIGRATE_LOAD_SECONDS (default 4)."""

import json
import os
import random
import threading
import time
from collections import defaultdict

import psycopg
import pytest

from conftest import BLOG_CONFIG, connect, create_blog, create_vectorizer, queued, trigger_count, wait_until_blocked

# The server neither restarts nor logs a crash during this module.
pytestmark = pytest.mark.usefixtures("server_watch")

# Key space of the extension's advisory locks (src/catalog.rs LOCK_SPACE, "pgai").
LOCK_SPACE = 0x70676169


class Outcome:
    """What one session's call ended with: a value or a psycopg error."""

    def __init__(self):
        self.value = None
        self.error = None


def run_in_thread(dbname, fn, *, conn=None):
    """Run fn(conn) in a new thread on its own connection (opened here unless
    given). Returns (thread, outcome, conn)."""
    conn = conn or connect(dbname)
    out = Outcome()

    def target():
        try:
            out.value = fn(conn)
        except psycopg.Error as e:
            out.error = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    return t, out, conn


def finish(thread, conn, timeout=20):
    thread.join(timeout)
    assert not thread.is_alive(), "session still running: deadlock or hang"
    conn.close()


def other_config(name, destination, source="blog"):
    return {**BLOG_CONFIG, "name": name, "source": source, "destination": {"implementation": "table", "destination": destination}}


def object_counts(conn):
    return conn.execute(
        "SELECT (SELECT count(*) FROM migrate.vectorizer), (SELECT count(*) FROM migrate.revision), "
        "(SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal), "
        "(SELECT count(*) FROM pg_proc p WHERE p.pronamespace = 'migrate'::regnamespace "
        "AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')), "
        "(SELECT count(*) FROM pg_class WHERE relname LIKE '\\_vectorizer\\_q\\_%' AND relkind = 'r')"
    ).fetchone()


# --- create vs create -------------------------------------------------------------


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
def test_same_name_at_once(db, dbname, first_commits):
    """The first session holds its create open; the second blocks on the
    name. If the first commits the second gets 42710; if it rolls back the
    second succeeds. Never a deadlock, never two of anything."""
    create_blog(db)
    first = connect(dbname)
    first.execute("BEGIN")
    create_vectorizer(first, BLOG_CONFIG)
    second = connect(dbname)
    pid = second.info.backend_pid
    t, out, _ = run_in_thread(dbname, lambda c: create_vectorizer(c, BLOG_CONFIG), conn=second)
    wait_until_blocked(db, pid)
    first.execute("COMMIT" if first_commits else "ROLLBACK")
    first.close()
    finish(t, second)
    if first_commits:
        assert out.value is None
        assert isinstance(out.error, psycopg.errors.DuplicateObject), out.error
        assert out.error.diag.message_primary == 'name: vectorizer "blog_content_embedder" already exists'
    else:
        assert out.error is None, out.error
    # One vectorizer, one revision, 3 triggers, no function of its own, one queue + one failed queue.
    assert object_counts(db) == (1, 1, 4, 0, 2)
    assert queued(db) == [1, 2, 3]


def test_same_name_many_sessions_at_once(db, dbname):
    """Six sessions released together, all creating the same name (each with
    its own destination): exactly one wins, the others get 42710."""
    create_blog(db)
    n = 6
    barrier = threading.Barrier(n)

    def create(i):
        def fn(c):
            barrier.wait()
            return create_vectorizer(c, other_config("same", f"dest_{i}"))
        return fn

    runs = [run_in_thread(dbname, create(i)) for i in range(n)]
    for t, _, c in runs:
        finish(t, c)
    outcomes = [o for _, o, _ in runs]
    winners = [o for o in outcomes if o.error is None]
    assert len(winners) == 1
    assert sorted(type(o.error).__name__ for o in outcomes if o.error) == ["DuplicateObject"] * (n - 1)
    assert object_counts(db) == (1, 1, 4, 0, 2)
    # Only the winner's store exists.
    stores = db.execute("SELECT relname FROM pg_class WHERE relname LIKE 'dest\\_%\\_store' AND relkind = 'r'").fetchall()
    assert len(stores) == 1


@pytest.mark.parametrize("first_commits", [True, False], ids=["first-commits", "first-rolls-back"])
def test_same_destination_different_names(db, dbname, first_commits):
    """Two names, one store table: the second blocks on the relation name and
    gets a clean 42P07 (not a catalog unique violation) once the first commits."""
    create_blog(db)
    first = connect(dbname)
    first.execute("BEGIN")
    create_vectorizer(first, other_config("one", "shared"))
    second = connect(dbname)
    pid = second.info.backend_pid
    t, out, _ = run_in_thread(dbname, lambda c: create_vectorizer(c, other_config("two", "shared")), conn=second)
    wait_until_blocked(db, pid)
    first.execute("COMMIT" if first_commits else "ROLLBACK")
    first.close()
    finish(t, second)
    if first_commits:
        assert isinstance(out.error, psycopg.errors.DuplicateTable), out.error
        assert out.error.diag.message_primary == 'destination.destination: relation "public.shared_store" already exists'
        assert db.execute("SELECT name FROM migrate.vectorizer").fetchall() == [("one",)]
    else:
        assert out.error is None, out.error
        assert db.execute("SELECT name FROM migrate.vectorizer").fetchall() == [("two",)]
    assert object_counts(db) == (1, 1, 4, 0, 2)


def test_same_destination_many_sessions_at_once(db, dbname):
    create_blog(db)
    n = 5
    barrier = threading.Barrier(n)

    def create(i):
        def fn(c):
            barrier.wait()
            return create_vectorizer(c, other_config(f"name_{i}", "shared"))
        return fn

    runs = [run_in_thread(dbname, create(i)) for i in range(n)]
    for t, _, c in runs:
        finish(t, c)
    errors = [o.error for _, o, _ in runs if o.error]
    assert len(errors) == n - 1
    assert all(isinstance(e, psycopg.errors.DuplicateTable) for e in errors), [(e.sqlstate, e.diag.message_primary) for e in errors]
    assert object_counts(db) == (1, 1, 4, 0, 2)


def test_crossed_destination_names_do_not_deadlock(db, dbname):
    """A wants store p and view q, B wants store q and view p. The lock on q
    is held by a third session while B and then A queue for it, which forces
    the interleaving that deadlocks when locks are taken one at a time."""
    create_blog(db)
    db.execute("CREATE TABLE blog2 (id int PRIMARY KEY, title text, content text)")
    a_config = {**BLOG_CONFIG, "name": "A", "destination": {"implementation": "table", "target_table": "p", "view_name": "q"}}
    b_config = {**BLOG_CONFIG, "name": "B", "source": "blog2", "destination": {"implementation": "table", "target_table": "q", "view_name": "p"}}
    holder = connect(dbname)
    holder.execute("SELECT pg_advisory_lock(%s, hashtext('relation public.q'))", (LOCK_SPACE,))
    b = connect(dbname)
    tb, ob, _ = run_in_thread(dbname, lambda c: create_vectorizer(c, b_config), conn=b)
    soft_wait_blocked(db, b.info.backend_pid)
    a = connect(dbname)
    ta, oa, _ = run_in_thread(dbname, lambda c: create_vectorizer(c, a_config), conn=a)
    soft_wait_blocked(db, a.info.backend_pid)
    holder.execute("SELECT pg_advisory_unlock(%s, hashtext('relation public.q'))", (LOCK_SPACE,))
    holder.close()
    finish(ta, a)
    finish(tb, b)
    errors = [o.error for o in (oa, ob) if o.error]
    assert not any(isinstance(e, psycopg.errors.DeadlockDetected) for e in errors), [str(e) for e in errors]
    assert len(errors) == 1 and isinstance(errors[0], psycopg.errors.DuplicateTable), [str(e) for e in errors]
    assert object_counts(db) == (1, 1, 4, 0, 2)


def soft_wait_blocked(conn, pid, timeout=3.0):
    """Like wait_until_blocked, but a session that never blocks is fine (an
    implementation without the intermediate lock)."""
    try:
        wait_until_blocked(conn, pid, timeout)
    except AssertionError:
        pass


def test_different_tables_at_once(db, dbname):
    """Four sessions, four tables, released together: all succeed with
    distinct ids and complete objects; then all four drop at once."""
    n = 4
    for i in range(n):
        create_blog(db, rows=5 + i, table=f"blog_{i}")
    barrier = threading.Barrier(n)

    def create(i):
        def fn(c):
            barrier.wait()
            return create_vectorizer(c, {**BLOG_CONFIG, "source": f"blog_{i}", "name": f"v{i}", "destination": {"implementation": "table", "destination": f"e{i}"}})
        return fn

    runs = [run_in_thread(dbname, create(i)) for i in range(n)]
    for t, _, c in runs:
        finish(t, c)
    assert [o.error for _, o, _ in runs] == [None] * n
    ids = sorted(o.value for _, o, _ in runs)
    assert len(set(ids)) == n
    assert object_counts(db) == (n, n, 4 * n, 0, 2 * n)
    for i in range(n):
        assert trigger_count(db, f"blog_{i}") == 4
        assert queued(db, f"v{i}") == list(range(1, 6 + i))

    barrier = threading.Barrier(n)

    def drop(i):
        def fn(c):
            barrier.wait()
            c.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (f"v{i}",))
        return fn

    runs = [run_in_thread(dbname, drop(i)) for i in range(n)]
    for t, _, c in runs:
        finish(t, c)
    assert [o.error for _, o, _ in runs] == [None] * n
    assert object_counts(db) == (0, 2 * n, 0, 0, 0)


def test_drop_all_and_recreate_same_name_at_once(db, dbname):
    """A migration re-run: one session drops (drop_all) in an open
    transaction, another creates the same name and waits for it, then
    succeeds against the committed drop."""
    create_blog(db)
    create_vectorizer(db, BLOG_CONFIG)
    first = connect(dbname)
    first.execute("BEGIN")
    first.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => true)")
    second = connect(dbname)
    pid = second.info.backend_pid
    t, out, _ = run_in_thread(dbname, lambda c: create_vectorizer(c, BLOG_CONFIG), conn=second)
    wait_until_blocked(db, pid)
    first.execute("COMMIT")
    first.close()
    finish(t, second)
    assert out.error is None, out.error
    assert out.value == 2
    assert object_counts(db) == (1, 3, 4, 0, 2)
    assert queued(db) == [1, 2, 3]


# --- drop under load ----------------------------------------------------------------


@pytest.mark.parametrize("drop_all", [False, True], ids=["keep-store", "drop-all"])
def test_drop_while_other_sessions_write(db, dbname, drop_all):
    """Three sessions insert, update and delete as fast as they can while a
    fourth drops the vectorizer. Nobody sees an error; afterwards no trigger,
    trigger function or queue remains, and every write landed."""
    create_blog(db, rows=30)
    create_vectorizer(db, BLOG_CONFIG)
    stop = threading.Event()
    n = 3
    stats = [{"inserted": set(), "deleted": set(), "statements": 0, "errors": []} for _ in range(n)]

    def writer(i):
        def fn(c):
            rng = random.Random(i)
            key = 1_000_000 * (i + 1)  # disjoint key ranges per writer
            while not stop.is_set():
                try:
                    c.execute("INSERT INTO blog (id, title, content) VALUES (%s, 't', 'c')", (key,))
                    stats[i]["inserted"].add(key)
                    c.execute("UPDATE blog SET content = content || '.' WHERE id = %s", (rng.randint(1, 30),))
                    if rng.random() < 0.3:
                        c.execute("DELETE FROM blog WHERE id = %s", (key,))
                        stats[i]["deleted"].add(key)
                    stats[i]["statements"] += 3
                except psycopg.Error as e:  # pragma: no cover - reported below
                    stats[i]["errors"].append(f"{e.sqlstate}: {e}")
                key += 1
        return fn

    runs = [run_in_thread(dbname, writer(i)) for i in range(n)]
    time.sleep(0.7)
    started = time.monotonic()
    db.execute("SELECT migrate.drop_vectorizer('blog_content_embedder', drop_all => %s)", (drop_all,))
    drop_seconds = time.monotonic() - started
    time.sleep(0.5)
    stop.set()
    for t, o, c in runs:
        finish(t, c)
        assert o.error is None, o.error
    errors = [e for s in stats for e in s["errors"]]
    assert errors == []
    assert trigger_count(db) == 0
    assert object_counts(db) == (0, 2, 0, 0, 0)
    for rel in ("migrate._vectorizer_q_1", "migrate._vectorizer_q_failed_1"):
        assert db.execute("SELECT to_regclass(%s)", (rel,)).fetchone()[0] is None
    assert (db.execute("SELECT to_regclass('blog_embeddings_store')").fetchone()[0] is None) == drop_all
    expected = set(range(1, 31)) | set().union(*(s["inserted"] - s["deleted"] for s in stats))
    assert {r[0] for r in db.execute("SELECT id FROM blog").fetchall()} == expected
    statements = sum(s["statements"] for s in stats)
    assert statements > 100
    print(f"\ndrop under load: {n} writers, {statements} statements, drop took {drop_seconds:.3f}s, 0 errors")


# --- the queue under load, checked against the rules ----------------------------------------------

DRAIN = (
    "DELETE FROM migrate._vectorizer_q_1 WHERE id IN "
    "(SELECT id FROM migrate._vectorizer_q_1 ORDER BY queued_at LIMIT 50 FOR UPDATE SKIP LOCKED) RETURNING id"
)


# The same, reading the drained rows' source in the same statement (one
# snapshot). Used by the single-race probe below; a worker must not read this
# way under load: a writer that commits after the statement's snapshot but
# before the claim reaches its queue row is invisible to that read.
DRAIN_AND_READ = f"WITH d AS ({DRAIN}) SELECT d.id, b.title, b.content FROM d LEFT JOIN blog b ON b.id = d.id"

# The documented worker protocol: claim, then read the claimed rows in a
# later statement of the same transaction (READ COMMITTED: a new snapshot,
# which sees every change committed before the claim).
READ_CLAIMED = "SELECT id, title, content FROM blog WHERE id = ANY(%s)"


class Event:
    """One change of one key, between `start` (before the statement was sent)
    and `end` (after its transaction committed). kind: 'queue' (the rules say
    the key must be queued), 'quiet' (must not queue: unrelated column, same
    value), 'gone' (the key no longer exists: delete, or old key of a key
    change)."""

    __slots__ = ("start", "end", "kind")

    def __init__(self, start, end, kind):
        self.start, self.end, self.kind = start, end, kind


def test_queue_under_concurrent_writes_and_a_draining_worker(db, dbname):
    seconds = float(os.environ.get("PGAI_MIGRATE_LOAD_SECONDS", "4"))
    writers, span, initial = 4, 400, 150
    db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text, views int NOT NULL DEFAULT 0)")
    # Each writer owns keys [w*span+1, (w+1)*span]; `initial` of them exist.
    models = []
    for w in range(writers):
        rows = {w * span + k: (f"title {k}", f"content {k}") for k in range(1, initial + 1)}
        models.append(rows)
        with db.cursor() as cur:
            cur.executemany("INSERT INTO blog (id, title, content) VALUES (%s, %s, %s)", [(k, t, c) for k, (t, c) in rows.items()])
    create_vectorizer(db, BLOG_CONFIG)
    events = defaultdict(list)  # key -> [Event]; each key is only ever touched by its own writer
    for m in models:
        for k in m:
            events[k].append(Event(float("-inf"), float("-inf"), "queue"))  # enqueue_existing
    drains = defaultdict(list)  # key -> [(start, end)] of drain batches that returned it
    stop = threading.Event()
    figures = defaultdict(int)
    lock = threading.Lock()

    def writer(w):
        rng = random.Random(1000 + w)
        model = models[w]
        keys = range(w * span + 1, (w + 1) * span + 1)

        def one_op(c, pending):
            present = list(model)
            absent = [k for k in keys if k not in model] if len(model) < span else []
            r = rng.random()
            if (r < 0.15 or not present) and absent:
                k = rng.choice(absent)
                t, body = f"t{rng.random()}", f"c{rng.random()}"
                n = c.execute("INSERT INTO blog (id, title, content) VALUES (%s, %s, %s)", (k, t, body)).rowcount
                model[k] = (t, body)
                pending.append((k, "queue"))
            elif r < 0.35:
                k = rng.choice(present)
                body = f"c{rng.random()}"
                n = c.execute("UPDATE blog SET content = %s WHERE id = %s", (body, k)).rowcount
                model[k] = (model[k][0], body)
                pending.append((k, "queue"))
            elif r < 0.45:
                k = rng.choice(present)
                t = f"t{rng.random()}"
                n = c.execute("UPDATE blog SET title = %s WHERE id = %s", (t, k)).rowcount
                model[k] = (t, model[k][1])
                pending.append((k, "queue"))
            elif r < 0.70:
                k = rng.choice(present)
                n = c.execute("UPDATE blog SET views = views + 1 WHERE id = %s", (k,)).rowcount
                pending.append((k, "quiet"))
            elif r < 0.78:
                k = rng.choice(present)
                n = c.execute("UPDATE blog SET content = content, title = title, views = views + 1 WHERE id = %s", (k,)).rowcount
                pending.append((k, "quiet"))
            elif r < 0.88 and absent:
                k, k2 = rng.choice(present), rng.choice(absent)
                n = c.execute("UPDATE blog SET id = %s WHERE id = %s", (k2, k)).rowcount
                model[k2] = model.pop(k)
                pending.append((k, "gone"))
                pending.append((k2, "queue"))
                figures["key changes"] += 1
            else:
                k = rng.choice(present)
                n = c.execute("DELETE FROM blog WHERE id = %s", (k,)).rowcount
                del model[k]
                pending.append((k, "gone"))
            assert n == 1
            return n

        def fn(c):
            while not stop.is_set():
                pending = []
                start = time.monotonic()
                if rng.random() < 0.8:
                    statements, changed = 1, one_op(c, pending)
                else:
                    statements = rng.randint(2, 4)
                    with c.transaction():
                        changed = sum(one_op(c, pending) for _ in range(statements))
                    figures["multi-statement transactions"] += 1
                end = time.monotonic()
                with lock:
                    figures["statements"] += statements
                    figures["rows changed"] += changed
                    for k, kind in pending:
                        events[k].append(Event(start, end, kind))
                        figures[f"events: {kind}"] += 1
        return fn

    seen = {}  # key -> (title, content) the worker read when it last drained the key

    def drainer(c):
        while not stop.is_set():
            start = time.monotonic()
            with c.transaction():
                ids = [r[0] for r in c.execute(DRAIN).fetchall()]
                found = {r[0]: r for r in c.execute(READ_CLAIMED, (ids,)).fetchall()}
            rows = [found.get(k, (k, None, None)) for k in ids]
            end = time.monotonic()
            with lock:
                figures["drain batches"] += 1
                figures["rows drained"] += len(rows)
                for k, title, content in rows:
                    drains[k].append((start, end))
                    seen[k] = (title, content)
            time.sleep(0.01)
        return None

    runs = [run_in_thread(dbname, writer(w)) for w in range(writers)]
    runs.append(run_in_thread(dbname, drainer))
    time.sleep(seconds)
    stop.set()
    for t, o, c in runs:
        finish(t, c)
        assert o.error is None, f"{o.error.sqlstate}: {o.error}" if o.error else None

    # A last few changes after the worker stopped, so the "still queued"
    # side of the check is always exercised.
    for w, model in enumerate(models):
        k = sorted(model)[0]
        start = time.monotonic()
        db.execute("UPDATE blog SET content = content || '!' WHERE id = %s", (k,))
        model[k] = (model[k][0], model[k][1] + "!")
        events[k].append(Event(start, time.monotonic(), "queue"))
        figures["rows changed"] += 1
        figures["statements"] += 1

    # The source table is exactly what the writers' models say.
    expected_rows = {k: v for m in models for k, v in m.items()}
    actual_rows = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, title, content FROM blog").fetchall()}
    assert actual_rows == expected_rows

    queue_rows = [r[0] for r in db.execute("SELECT id FROM migrate._vectorizer_q_1").fetchall()]
    assert len(queue_rows) == len(set(queue_rows)), "duplicate keys in the queue"
    in_queue = set(queue_rows)

    lost, spurious, unjustified, ambiguous, stale, checked = [], [], [], [], [], 0
    for k in sorted(set(events) | in_queue | set(drains)):
        evs = events.get(k, [])
        ds = drains.get(k, [])
        checked += 1
        # Every drain of k must be explained by a queueing change that had
        # started before the drain ended and was not already consumed by an
        # earlier drain that certainly came after it.
        previous_start = None
        for d_start, d_end in ds:
            if not any(e.kind == "queue" and e.start < d_end and (previous_start is None or e.end > previous_start) for e in evs):
                unjustified.append(k)
            previous_start = d_start
        last_queue = max((i for i, e in enumerate(evs) if e.kind == "queue"), default=None)
        last_gone = max((i for i, e in enumerate(evs) if e.kind == "gone"), default=None)
        exists = k in expected_rows
        if not exists:
            if k in in_queue:
                spurious.append((k, "deleted but queued"))
            continue
        assert last_queue is not None and (last_gone is None or last_gone < last_queue)
        change = evs[last_queue]
        drained_after = [d for d in ds if d[1] > change.start]
        certainly_after = [d for d in ds if d[0] > change.end]
        if k in in_queue:
            if certainly_after:
                spurious.append((k, "queued again without a change after being drained"))
        elif seen.get(k) != expected_rows[k]:
            # Not queued, and what the worker last read is not the row's
            # final state: the change will never be embedded.
            stale.append(k)
        if k in in_queue:
            pass
        elif not drained_after:
            lost.append(k)
        elif not certainly_after:
            # The only drain that returned k overlapped the change: correct if
            # it deleted the queue row after the change committed. That cannot
            # be told from outside; see test_change_folded_into_a_queued_key_*.
            ambiguous.append(k)

    figures["keys checked"] = checked
    figures["still queued at the end"] = len(in_queue)
    figures["lost"] = len(lost)
    figures["queued but should not be"] = len(spurious)
    figures["drained without a change"] = len(unjustified)
    figures["drain overlapped last change (ambiguous)"] = len(ambiguous)
    figures["stale: not queued, worker read an older version"] = len(stale)
    figures["sessions"] = writers + 1
    figures["seconds"] = seconds
    print("\nqueue under load: " + json.dumps(dict(sorted(figures.items())), indent=1))
    assert lost == [], f"changes lost (neither queued nor drained after the change): {lost[:20]}"
    if stale:
        # Known bug (see test_change_folded_into_a_queued_key_is_not_lost):
        # tolerated only while that race is still there.
        assert folded_change_is_lost(dbname), f"changes never embedded: {stale[:20]}"
        print(f"{len(stale)} stale keys: the known ON CONFLICT DO NOTHING race")
    assert spurious == [], spurious[:20]
    assert unjustified == [], f"keys drained without a queueing change: {unjustified[:20]}"
    assert figures["rows changed"] > 500, "the load was too light to mean anything"
    assert figures["rows drained"] > 100, "the worker must have drained"
    assert len(in_queue) >= writers


def folded_change_is_lost(dbname):
    """The race of test_change_folded_into_a_queued_key_is_not_lost, played
    out deterministically on a table of its own: row 1 is queued; a writer
    changes it in a transaction that has not committed yet; meanwhile a
    worker drains row 1 and reads the old content. Returns True when, after
    the writer commits, row 1 is not queued again (the change is lost)."""
    with connect(dbname) as admin:
        admin.execute("CREATE TABLE race_probe (id int PRIMARY KEY, title text, content text)")
        admin.execute("INSERT INTO race_probe VALUES (1, 't', 'old content')")
        vid = create_vectorizer(admin, {**BLOG_CONFIG, "source": "race_probe", "name": "race_probe", "destination": {"implementation": "table", "destination": "race_probe_e"}})
        queue = f"migrate._vectorizer_q_{vid}"
        drain = DRAIN_AND_READ.replace("migrate._vectorizer_q_1", queue).replace("blog", "race_probe")
        writer, worker = connect(dbname), connect(dbname)
        try:
            writer.execute("BEGIN")
            writer.execute("UPDATE race_probe SET content = 'new content' WHERE id = 1")
            worker.execute("BEGIN")
            drained = worker.execute(drain).fetchall()
            worker.execute("COMMIT")
            writer.execute("COMMIT")
        finally:
            writer.close()
            worker.close()
        requeued = admin.execute(f"SELECT count(*) FROM {queue} WHERE id = 1").fetchone()[0] == 1
        admin.execute("SELECT migrate.drop_vectorizer('race_probe', drop_all => true)")
        admin.execute("DROP TABLE race_probe")
    worker_saw_old = drained == [(1, "t", "old content")]
    return worker_saw_old and not requeued


def test_change_folded_into_a_queued_key_is_not_lost(db, dbname):
    """Row 1 is already queued. A writer changes its content in a transaction
    that has not committed yet; meanwhile a worker drains row 1 and reads the
    old content. When the writer commits, row 1 must be queued again."""
    assert not folded_change_is_lost(dbname), "the change to row 1 was lost: drained with the old content and not queued again"


@pytest.mark.parametrize("drop_all", [True, False], ids=["drop-all", "keep-store"])
def test_drops_of_two_vectorizers_on_one_source_do_not_deadlock(db, dbname, roles, drop_all):
    """Two sessions drop the two vectorizers of one table at the same time,
    each in a transaction that then writes to the table, repeatedly: one
    waits for the other, neither fails."""
    worker = roles("worker")
    create_blog(db)
    for round_ in range(8):
        create_vectorizer(db, {**other_config(f"v{round_}a", f"e{round_}a"), "grant_to": [worker]})
        create_vectorizer(db, {**other_config(f"v{round_}b", f"e{round_}b"), "grant_to": [worker]})
        barrier = threading.Barrier(2)

        def drop(name):
            def fn(c):
                with c.transaction():
                    barrier.wait(5)
                    c.execute("SELECT migrate.drop_vectorizer(%s, drop_all => %s)", (name, drop_all))
                    c.execute("INSERT INTO blog (id, content) VALUES (1000 + %s, 'x') ON CONFLICT DO NOTHING", (round_,))
            return fn

        runs = [run_in_thread(dbname, drop(f"v{round_}{s}")) for s in "ab"]
        for t, _, c in runs:
            finish(t, c)
        errors = [str(o.error) for _, o, _ in runs if o.error]
        assert not errors, errors
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
    assert trigger_count(db) == 0
    # Every privilege the creates gave is taken back, even with the drops
    # racing: the role can be dropped (by the roles fixture).
    assert db.execute(
        "SELECT count(*) FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = %s::regrole "
        "UNION ALL SELECT count(*) FROM pg_namespace n, aclexplode(n.nspacl) a WHERE a.grantee = %s::regrole",
        (worker, worker),
    ).fetchall() == [(0,), (0,)]


@pytest.mark.parametrize("partitioned", [False, True], ids=["table", "partitioned"])
def test_vectorizer_ddl_and_application_writes_on_one_source_never_deadlock(dbname, db, partitioned):
    """Creates, alters and drops of different vectorizers on one source,
    while the application inserts, updates and deletes its rows: one lock
    order (names, then the source in the strongest mode the call needs),
    so every transaction waits its turn and none is chosen as a deadlock
    victim."""
    if partitioned:
        db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text) PARTITION BY RANGE (id)")
        db.execute("CREATE TABLE blog_a PARTITION OF blog FOR VALUES FROM (0) TO (100)")
        db.execute("CREATE TABLE blog_b PARTITION OF blog FOR VALUES FROM (100) TO (1000)")
    else:
        db.execute("CREATE TABLE blog (id int PRIMARY KEY, title text, content text)")
    db.execute("INSERT INTO blog SELECT g, 't', 'c' FROM generate_series(1, 200) g")
    seconds = float(os.environ.get("PGAI_MIGRATE_LOAD_SECONDS", "4"))
    counts = defaultdict(int)
    problems = []
    lock = threading.Lock()

    def config(i):
        return {**BLOG_CONFIG, "name": f"v{i}", "destination": {"implementation": "table", "destination": f"blog_e{i}"},
                "formatting": {"implementation": "chunk_value"}}

    def ddl(i):
        with connect(dbname) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                try:
                    with c.transaction():
                        create_vectorizer(c, config(i))
                    with c.transaction():
                        c.execute("SELECT migrate.alter_vectorizer(%s, %s::jsonb, reembed => true)",
                                  (f"v{i}", json.dumps({"chunking": {"chunk_size": random.randint(500, 900)}})))
                    with c.transaction():
                        c.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true)", (f"v{i}",))
                    with lock:
                        counts["ddl"] += 3
                except psycopg.Error as e:
                    with lock:
                        problems.append(f"ddl: {e.sqlstate} {e}")
                    c.execute("SELECT migrate.drop_vectorizer(%s, drop_all => true, if_exists => true)", (f"v{i}",))

    def writes(i):
        rng = random.Random(i)
        with connect(dbname) as c:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                k = rng.randint(1, 300)
                try:
                    with c.transaction():
                        r = rng.random()
                        if r < 0.4:
                            c.execute("INSERT INTO blog VALUES (%s, 't', 'c') ON CONFLICT (id) DO UPDATE SET content = 'u'", (k,))
                        elif r < 0.8:
                            c.execute("UPDATE blog SET content = 'x' || %s WHERE id IN (%s, %s)", (k, k, rng.randint(1, 300)))
                        else:
                            c.execute("DELETE FROM blog WHERE id = %s", (k,))
                    with lock:
                        counts["writes"] += 1
                except psycopg.Error as e:
                    with lock:
                        problems.append(f"write: {e.sqlstate} {e}")

    threads = [threading.Thread(target=ddl, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=writes, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"\n{counts['ddl']} DDL transactions, {counts['writes']} writes in {seconds} s")
    assert problems == [], problems[:5]
    assert counts["ddl"] >= 3 and counts["writes"] >= 10
    assert db.execute("SELECT count(*) FROM migrate.vectorizer").fetchone()[0] == 0
