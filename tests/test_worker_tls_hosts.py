"""Workers on other hosts: three workers, each in a network namespace of
its own, reach the database host (another namespace: a TLS front for a
throwaway PostgreSQL 18, and the embedding server) over TCP + TLS
verify-full and share one queue while writers change the rows. Every
key's final chunk is its final content, no key is in two workers' hands
at once, and killing one worker loses nothing.

Without the privilege to create namespaces the same runs over loopback
(the check of who held a key then cannot tell the workers apart)."""

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from test_worker_tls import pki  # noqa: F401
from tls_helpers import Server, embedded_pg_bin
from worker_helpers import blog, ensure_errors_table, store, vectorizer, worker_bin

HERE = os.path.dirname(os.path.abspath(__file__))
KEYS = 60
WORKERS = 3


class Hosts:
    """`ip netns` hosts: "db" and w0…w2 on one link, 10.77.0.0/24: a
    bridge in the db host with a veth pair to each worker (addresses only
    inside the namespaces made here). `prefix(host)` runs a command
    there."""

    def __init__(self):
        self.tag = uuid.uuid4().hex[:6]
        self.names = {h: f"pgai-{self.tag}-{h}" for h in ["db"] + [f"w{i}" for i in range(WORKERS)]}
        self.made = []
        try:
            for ns in self.names.values():
                self._ip("netns", "add", ns)
                self.made.append(ns)
                self._ip("-n", ns, "link", "set", "lo", "up")
            db = self.names["db"]
            br = f"b{self.tag}"
            self._ip("-n", db, "link", "add", br, "type", "bridge")
            self._ip("-n", db, "addr", "add", f"{self.db_addr}/24", "dev", br)
            self._ip("-n", db, "link", "set", br, "up")
            for i in range(WORKERS):
                w = self.names[f"w{i}"]
                a, b = f"v{self.tag}d{i}", f"v{self.tag}w{i}"
                self._ip("-n", db, "link", "add", a, "type", "veth", "peer", "name", b, "netns", w)
                self._ip("-n", db, "link", "set", a, "master", br)
                self._ip("-n", db, "link", "set", a, "up")
                self._ip("-n", w, "addr", "add", f"{self.worker_addr(i)}/24", "dev", b)
                self._ip("-n", w, "link", "set", b, "up")
        except Exception:
            self.close()
            raise

    @staticmethod
    def _ip(*args):
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def prefix(self, host):
        return ["ip", "netns", "exec", self.names[host]]

    db_addr = "10.77.0.1"

    @staticmethod
    def worker_addr(i):
        return f"10.77.0.{i + 2}"

    def close(self):
        for ns in reversed(self.made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.made = []


class Loopback:
    """The same on this host's loopback."""

    db_addr = "127.0.0.1"

    def prefix(self, host):
        return []

    @staticmethod
    def worker_addr(i):
        return None

    def close(self):
        pass


@pytest.fixture
def hosts():
    why = None
    if os.geteuid() != 0:
        why = "not root"
    else:
        try:
            h = Hosts()
        except (subprocess.CalledProcessError, FileNotFoundError) as e:
            why = f"ip netns failed: {getattr(e, 'stderr', b'') or e}"
    if why:
        print(f"network namespaces unavailable ({why}): workers share loopback", file=sys.stderr)
        h = Loopback()
    try:
        yield h
    finally:
        h.close()


def test_three_workers_on_other_hosts_share_one_queue_over_tls(hosts, pki, tmp_path):  # noqa: F811
    pg = Server(embedded_pg_bin(), "", ssl=None, extra_conf="listen_addresses = ''\n")
    host_proc, workers, writers = None, [], []
    try:
        with pg.connect() as c:
            c.execute("CREATE DATABASE app")
        with pg.connect("app") as c:
            c.execute("CREATE EXTENSION vector")
            c.execute("CREATE EXTENSION pgai_migrate")
            ensure_errors_table(c)
            blog(c, [(i, f"T{i}", f"key {i} v0") for i in range(1, KEYS + 1)])

        requests_file = tmp_path / "requests.json"
        host_proc = subprocess.Popen(
            [*hosts.prefix("db"), sys.executable, "-W", "ignore", os.path.join(HERE, "tls_helpers.py"),
             pki.path("server.crt"), pki.path("server.key"), os.path.join(pg.dir, f".s.PGSQL.{pg.port}"),
             hosts.db_addr, "8", "0.02", str(requests_file)],
            stdout=subprocess.PIPE, text=True, cwd=HERE)
        info = json.loads(host_proc.stdout.readline())
        tls_port, url = info["tls_port"], info["http_url"] + "/v1"
        with pg.connect("app") as c:
            vectorizer(c, embedding={"implementation": "openai", "model": "m", "dimensions": 8, "base_url": url},
                       processing={"implementation": "default", "batch_size": 4})

        home = tmp_path / "home"
        home.mkdir()
        # verify-full: the certificate's name is localhost, the address the db host's.
        db = (f"host=localhost hostaddr={hosts.db_addr} port={tls_port} user=postgres dbname=app "
              f"sslmode=verify-full sslrootcert={pki.path('ca.crt')}")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"HOME": str(home), "PGAI_MIGRATE_ENDPOINTS": url})
        workers = [subprocess.Popen(
            [*hosts.prefix(f"w{i}"), worker_bin(), "run", "--db", db, "--poll-interval", "0.05",
             "--retry-delay", "0", "--concurrency", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env) for i in range(WORKERS)]

        final = {i: f"key {i} v0" for i in range(1, KEYS + 1)}
        lock = threading.Lock()

        def write(seed):
            rnd = random.Random(seed)
            with pg.connect("app") as c:
                for n in range(1, 121):  # bounded: 120 updates each
                    k = rnd.randint(1, KEYS)
                    with lock:
                        content = f"key {k} v{seed}.{n}"
                        c.execute("UPDATE blog SET content = %s WHERE id = %s", (content, k))
                        final[k] = content
                    time.sleep(0.01)

        # every worker thread connected (two per worker host, and a worker's
        # progress reporter) before the writes start
        with pg.connect("app") as c:
            for _ in range(300):
                n = c.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pgai-migrate-worker'").fetchone()[0]
                if n >= 2 * WORKERS:
                    break
                time.sleep(0.1)
            assert n >= 2 * WORKERS, [w.poll() for w in workers]
        time.sleep(0.5)
        writers = [threading.Thread(target=write, args=(s,)) for s in (1, 2)]
        for t in writers:
            t.start()
        time.sleep(1.5)
        # kill -9 one worker host's worker mid-run
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=30)
        killed_at = time.monotonic()
        killed_stderr = workers[0].stderr.read()
        for t in writers:
            t.join(timeout=120)

        want = {k: [f"T{k}: {v}"] for k, v in final.items()}
        deadline = time.monotonic() + 90
        with pg.connect("app") as c:
            while time.monotonic() < deadline:
                if store(c) == want and not c.execute("SELECT count(*) FROM migrate._vectorizer_q_1").fetchone()[0]:
                    break
                time.sleep(0.2)
            got = store(c)
            errs = c.execute("SELECT message FROM migrate.vectorizer_errors").fetchall()
        assert got == want, {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
        assert errs == []
        for w in workers[1:]:
            assert w.poll() is None, w.stderr.read()
            w.send_signal(signal.SIGTERM)
            assert w.wait(timeout=30) == 0
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.wait(timeout=30)
        if host_proc:
            host_proc.send_signal(signal.SIGTERM)
            host_proc.wait(timeout=30)
        pg.stop()

    # Who embedded each key when: the requests of two worker hosts for one
    # key never overlap (the killed worker's end at its death).
    requests = json.loads(requests_file.read_text())
    clients = {r["client"] for r in requests}
    if isinstance(hosts, Hosts):
        assert clients == {hosts.worker_addr(i) for i in range(WORKERS)}, (clients, killed_stderr)
    spans = {}
    for r in requests:
        end = r["end"] if r["end"] is not None else r["start"]
        if r["client"] == hosts.worker_addr(0):
            end = min(end, killed_at)
        for text in r["texts"]:
            key = int(text.split(":")[0][1:])
            spans.setdefault(key, []).append((r["start"], end, r["client"]))
    for key, s in spans.items():
        s.sort()
        for (a0, a1, ac), (b0, b1, bc) in zip(s, s[1:]):
            assert ac == bc or a1 <= b0, (key, s)
