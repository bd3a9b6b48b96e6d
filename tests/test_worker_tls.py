"""The worker connects like libpq: every sslmode against a real
PostgreSQL with TLS (Debian's; the embedded PostgreSQL 18 has none),
hostssl/hostnossl rules and the cert method proving what is refused,
root certificates (a file, the default ~/.postgresql/root.crt, the system
store), client certificates, the password file, service files and the PG*
environment; then a vectorizer drained over TCP + TLS verify-full.

Every failure is one line on stderr, exit code 1, without the password.
A connection that works shows as the worker's next complaint: the
PostgreSQL 15 server has no pgai_migrate extension."""

import os
import socket
import stat
import subprocess
import tempfile

import pytest

from tls_helpers import DEBIAN_PG_BIN, Pki, Server, TlsFront, embedded_pg_bin
from worker_helpers import (  # noqa: F401
    blog, embedding_server, ensure_errors_table, errors, store, vectorizer, worker_bin, worker_env,
)

pytestmark = pytest.mark.skipif(
    not os.path.exists(os.path.join(DEBIAN_PG_BIN, "postgres")),
    reason="Debian's PostgreSQL server (postgresql-15, built with OpenSSL) is not installed")

PASSWORD = "s3cret-pa55word"
# What the worker says once connected to a database without the extension.
CONNECTED = 'relation "migrate.vectorizer" does not exist'

# TCP from 127.0.0.1: these rules decide, per role, what is refused.
HBA = f"""
hostssl   all pw_ssl   127.0.0.1/32 scram-sha-256
hostssl   all pw_ssl   127.0.0.2/32 scram-sha-256
hostnossl all pw_plain 127.0.0.1/32 scram-sha-256
host      all pw_any   127.0.0.1/32 scram-sha-256
hostssl   all certuser 127.0.0.1/32 cert
"""


def make_roles(server):
    with server.connect() as c:
        c.execute("SET password_encryption = 'scram-sha-256'")
        for role in ("pw_ssl", "pw_plain", "pw_any"):
            c.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
        c.execute("CREATE ROLE certuser LOGIN")


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="pgai-migrate-pki-")
    yield Pki(d)
    subprocess.run(["rm", "-rf", d])


@pytest.fixture(scope="module")
def tls_server(pki):
    s = Server(DEBIAN_PG_BIN, HBA, ssl=(pki.path("server.crt"), pki.path("server.key"), pki.path("ca.crt")))
    try:
        make_roles(s)
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def plain_server():
    s = Server(DEBIAN_PG_BIN, "host all pw_any 127.0.0.1/32 scram-sha-256\n", ssl=None)
    try:
        make_roles(s)
        yield s
    finally:
        s.stop()


@pytest.fixture
def home(tmp_path):
    """An empty home directory: no ~/.pgpass, ~/.pg_service.conf or
    ~/.postgresql/ unless the test writes one."""
    h = tmp_path / "home"
    h.mkdir()
    return h


def worker(home, db=None, env=None):
    """`run --once` with a clean PG* environment; returns (code, stderr lines)."""
    base = {k: v for k, v in worker_env(None).items() if not k.startswith("PG") or k.startswith("PGAI_MIGRATE_")}
    base.update({"HOME": str(home), **(env or {})})
    args = [worker_bin(), "run", "--once"] + (["--db", db] if db is not None else [])
    p = subprocess.run(args, capture_output=True, text=True, timeout=60, env=base)
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert PASSWORD not in p.stderr and PASSWORD not in p.stdout
    return p.returncode, lines


def connects(home, db=None, env=None):
    code, lines = worker(home, db, env)
    if code == 1 and lines and CONNECTED in lines[-1]:
        return True
    return False


def refused(home, db=None, env=None, *, says):
    """The connection fails: exit 1, one line, no Rust debug dump."""
    code, lines = worker(home, db, env)
    assert code == 1, (code, lines)
    assert len(lines) == 1, lines
    [line] = lines
    assert line.startswith("pgai-migrate-worker: connection to server at"), line
    assert "Error {" not in line and "kind:" not in line, line
    assert says in line, line
    return line


def dsn(server, user, host="127.0.0.1", **kw):
    parts = [f"host={host}", f"port={server.port}", f"user={user}", "dbname=postgres"]
    if user != "certuser" and "password" not in kw:
        parts.append(f"password={PASSWORD}")
    parts += [f"{k}={v}" for k, v in kw.items()]
    return " ".join(parts)


# --- sslmode ---------------------------------------------------------------


def test_disable_never_uses_tls(tls_server, home):
    assert connects(home, dsn(tls_server, "pw_plain", sslmode="disable"))
    refused(home, dsn(tls_server, "pw_ssl", sslmode="disable"),
            says='no pg_hba.conf entry for host "127.0.0.1", user "pw_ssl", database "postgres", no encryption')


def test_allow_tries_without_tls_then_with(tls_server, home):
    assert connects(home, dsn(tls_server, "pw_plain", sslmode="allow"))
    assert connects(home, dsn(tls_server, "pw_ssl", sslmode="allow"))


def test_prefer_uses_tls_and_falls_back(tls_server, plain_server, home, pki):
    assert connects(home, dsn(tls_server, "pw_ssl", sslmode="prefer"))
    # hostnossl refuses the TLS session: libpq's prefer retries without
    assert connects(home, dsn(tls_server, "pw_plain", sslmode="prefer"))
    # the default sslmode is prefer
    assert connects(home, dsn(tls_server, "pw_plain"))
    assert connects(home, dsn(plain_server, "pw_any", sslmode="prefer"))
    # a certificate that fails verification: prefer goes on without TLS, as libpq does
    assert connects(home, dsn(tls_server, "pw_plain", sslmode="prefer", sslrootcert=pki.path("other_ca.crt")))
    refused(home, dsn(tls_server, "pw_ssl", sslmode="prefer", sslrootcert=pki.path("other_ca.crt")),
            says="no encryption")


def test_require_encrypts_without_verifying(tls_server, plain_server, home, pki):
    # no root certificate anywhere: the server's certificate is not checked
    assert connects(home, dsn(tls_server, "pw_ssl", sslmode="require"))
    assert connects(home, dsn(tls_server, "pw_ssl", host="127.0.0.2", sslmode="require"))
    refused(home, dsn(tls_server, "pw_plain", sslmode="require"),
            says='no pg_hba.conf entry for host "127.0.0.1", user "pw_plain", database "postgres", SSL encryption')
    refused(home, dsn(plain_server, "pw_any", sslmode="require"),
            says="server does not support SSL, but SSL was required")


def test_require_with_a_root_certificate_verifies_the_chain(tls_server, home, pki):
    # as libpq: sslrootcert given makes require behave like verify-ca
    assert connects(home, dsn(tls_server, "pw_ssl", host="127.0.0.2", sslmode="require",
                              sslrootcert=pki.path("ca.crt")))
    refused(home, dsn(tls_server, "pw_ssl", sslmode="require", sslrootcert=pki.path("other_ca.crt")),
            says="not signed by a trusted certificate authority")
    # so does the default ~/.postgresql/root.crt
    (home / ".postgresql").mkdir()
    (home / ".postgresql" / "root.crt").write_bytes(open(pki.path("other_ca.crt"), "rb").read())
    refused(home, dsn(tls_server, "pw_ssl", sslmode="require"), says="not signed by a trusted")


def test_verify_ca_checks_the_chain_only(tls_server, home, pki):
    ca = pki.path("ca.crt")
    assert connects(home, dsn(tls_server, "pw_ssl", sslmode="verify-ca", sslrootcert=ca))
    # 127.0.0.2 is not in the certificate: verify-ca does not care
    assert connects(home, dsn(tls_server, "pw_ssl", host="127.0.0.2", sslmode="verify-ca", sslrootcert=ca))
    refused(home, dsn(tls_server, "pw_ssl", sslmode="verify-ca", sslrootcert=pki.path("other_ca.crt")),
            says="not signed by a trusted certificate authority")
    refused(home, dsn(tls_server, "pw_ssl", sslmode="verify-ca"),
            says=f'root certificate file "{home}/.postgresql/root.crt" does not exist')


def test_verify_full_checks_the_host_name_too(tls_server, home, pki):
    ca = pki.path("ca.crt")
    assert connects(home, dsn(tls_server, "pw_ssl", host="localhost", sslmode="verify-full", sslrootcert=ca))
    assert connects(home, dsn(tls_server, "pw_ssl", sslmode="verify-full", sslrootcert=ca))
    refused(home, dsn(tls_server, "pw_ssl", host="127.0.0.2", sslmode="verify-full", sslrootcert=ca),
            says='does not match host name "127.0.0.2"')
    refused(home, dsn(tls_server, "pw_ssl", sslmode="verify-full", sslrootcert=pki.path("other_ca.crt")),
            says="not signed by a trusted")


def test_a_certificate_for_another_host_fails_verify_full_only(pki, home):
    s = Server(DEBIAN_PG_BIN, HBA, ssl=(pki.path("wronghost.crt"), pki.path("wronghost.key"), pki.path("ca.crt")))
    try:
        make_roles(s)
        ca = pki.path("ca.crt")
        assert connects(home, dsn(s, "pw_ssl", sslmode="verify-ca", sslrootcert=ca))
        line = refused(home, dsn(s, "pw_ssl", host="localhost", sslmode="verify-full", sslrootcert=ca),
                       says='server certificate for "db.invalid" does not match host name "localhost"')
        assert f"port {s.port}" in line
    finally:
        s.stop()


def test_sslrootcert_system_is_the_os_trust_store(tls_server, home, pki):
    # The OS store is found as OpenSSL finds it: SSL_CERT_FILE points it at the test CA.
    env = {"SSL_CERT_FILE": pki.path("ca.crt"), "SSL_CERT_DIR": str(home)}
    # sslrootcert=system makes verify-full the default
    assert connects(home, dsn(tls_server, "pw_ssl", host="localhost", sslrootcert="system"), env)
    refused(home, dsn(tls_server, "pw_ssl", host="127.0.0.2", sslrootcert="system"), env,
            says="does not match host name")
    code, lines = worker(home, dsn(tls_server, "pw_ssl", sslmode="require", sslrootcert="system"), env)
    assert code == 2 and lines == [
        'pgai-migrate-worker: weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")']


def test_client_certificates_authenticate_with_the_cert_method(tls_server, home, pki, tmp_path):
    ca = pki.path("ca.crt")
    assert connects(home, dsn(tls_server, "certuser", sslmode="verify-full", sslrootcert=ca,
                              sslcert=pki.path("client.crt"), sslkey=pki.path("client.key")))
    refused(home, dsn(tls_server, "certuser", sslmode="verify-full", sslrootcert=ca),
            says="connection requires a valid client certificate")
    refused(home, dsn(tls_server, "certuser", sslmode="verify-full", sslrootcert=ca,
                      sslcert=pki.path("stranger.crt"), sslkey=pki.path("stranger.key")),
            says="the server refused the client certificate")
    # the default ~/.postgresql/postgresql.crt and .key, found as libpq finds them
    (home / ".postgresql").mkdir()
    for src, dst in (("client.crt", "postgresql.crt"), ("client.key", "postgresql.key")):
        (home / ".postgresql" / dst).write_bytes(open(pki.path(src), "rb").read())
    os.chmod(home / ".postgresql" / "postgresql.key", 0o600)
    assert connects(home, dsn(tls_server, "certuser", sslmode="verify-full", sslrootcert=ca))
    # a key others can read is refused, as libpq does
    loose = tmp_path / "loose.key"
    loose.write_bytes(open(pki.path("client.key"), "rb").read())
    os.chmod(loose, 0o644)
    refused(home, dsn(tls_server, "certuser", sslmode="verify-full", sslrootcert=ca,
                      sslcert=pki.path("client.crt"), sslkey=str(loose)),
            says="has group or world access")


def test_direct_tls_negotiation_needs_a_server_that_speaks_it(tls_server, home, pki):
    # PostgreSQL 15 predates sslnegotiation=direct (17): one clear line
    code, lines = worker(home, dsn(tls_server, "pw_ssl", sslmode="verify-full", sslnegotiation="direct",
                                   sslrootcert=pki.path("ca.crt")))
    assert code == 1 and len(lines) == 1 and "connection to server at" in lines[0], lines
    code, lines = worker(home, dsn(tls_server, "pw_ssl", sslnegotiation="direct"))
    assert code == 2 and "weak sslmode \"prefer\" may not be used with sslnegotiation=direct" in lines[0]


# --- failures --------------------------------------------------------------


def test_a_bad_password_is_one_line_without_the_password(tls_server, home, pki):
    refused(home, dsn(tls_server, "pw_ssl", sslmode="require", password="wrong-" + PASSWORD),
            says='FATAL:  password authentication failed for user "pw_ssl"')


def test_an_unreachable_host_is_one_line(home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here once closed
    refused(home, f"host=127.0.0.1 port={port} user=u dbname=d sslmode=require password={PASSWORD}",
            says="Connection refused")
    refused(home, f"host=127.0.0.1,localhost port={port} user=u", says=f'server at "localhost", port {port}')


def test_bad_parameters_exit_2_before_connecting(home):
    for db, says in (("sslmode=verify", 'invalid sslmode value: "verify"'),
                     ("hots=x", 'invalid connection option "hots"'),
                     ("service=nowhere", 'definition of service "nowhere" not found')):
        code, lines = worker(home, db)
        assert code == 2 and lines == [f"pgai-migrate-worker: {says}"], lines
    code, lines = worker(home, None)
    assert code == 2 and "no database given" in lines[0], lines


# --- parameters from files and the environment ----------------------------


def write_private(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)


def test_the_password_file_is_honoured(tls_server, home, pki):
    base = f"host=127.0.0.1 port={tls_server.port} dbname=postgres sslmode=verify-full sslrootcert={pki.path('ca.crt')}"
    write_private(home / ".pgpass",
                  "# a comment\n"
                  f"127.0.0.1:{tls_server.port}:postgres:pw_plain:not-this-one\n"
                  f"127.0.0.1:*:*:pw_ssl:{PASSWORD}\n"
                  f"*:*:*:pw\\:odd:x\\:y\n")
    assert connects(home, base + " user=pw_ssl")
    # PGPASSFILE moves it; a readable one is ignored with libpq's warning
    other = home / "other.pgpass"
    write_private(other, f"*:*:*:*:{PASSWORD}\n", mode=0o644)
    code, lines = worker(home, base + " user=pw_ssl", {"PGPASSFILE": str(other)})
    assert code == 1, lines
    assert lines[0] == f'WARNING: password file "{other}" has group or world access; permissions should be u=rw (0600) or less'
    os.chmod(other, 0o600)
    assert connects(home, base + " user=pw_ssl", {"PGPASSFILE": str(other)})
    # a wrong password from the file says where it came from
    write_private(other, f"*:*:*:*:wrong\n")
    refused(home, base + " user=pw_ssl", {"PGPASSFILE": str(other)},
            says=f'password retrieved from file "{other}"')


def test_a_service_file_and_the_environment_name_the_database(tls_server, home, pki):
    ca = pki.path("ca.crt")
    write_private(home / ".pg_service.conf",
                  "[elsewhere]\nhost=db.invalid\n\n"
                  f"[tls]\nhost=localhost\nport={tls_server.port}\ndbname=postgres\nuser=pw_ssl\n"
                  f"sslmode=verify-full\nsslrootcert={ca}\n")
    env = {"PGPASSWORD": PASSWORD}
    # --db is not needed when PGSERVICE says where
    assert connects(home, None, {**env, "PGSERVICE": "tls"})
    assert connects(home, "service=tls", env)
    # the conninfo wins over the service: this role is refused over TLS
    refused(home, "service=tls user=pw_plain", env, says="pw_plain")
    # PGSERVICEFILE and PGSYSCONFDIR/pg_service.conf
    moved = home / "moved.conf"
    moved.write_text((home / ".pg_service.conf").read_text())
    (home / ".pg_service.conf").unlink()
    assert connects(home, None, {**env, "PGSERVICE": "tls", "PGSERVICEFILE": str(moved)})
    sysconf = home / "etc"
    sysconf.mkdir()
    moved.rename(sysconf / "pg_service.conf")
    assert connects(home, None, {**env, "PGSERVICE": "tls", "PGSYSCONFDIR": str(sysconf)})
    # the plain PG* variables, no --db
    assert connects(home, None, {**env, "PGHOST": "localhost", "PGPORT": str(tls_server.port),
                                 "PGUSER": "pw_ssl", "PGDATABASE": "postgres",
                                 "PGSSLMODE": "verify-full", "PGSSLROOTCERT": ca,
                                 "PGCONNECT_TIMEOUT": "5"})
    refused(home, None, {**env, "PGHOST": "127.0.0.2", "PGPORT": str(tls_server.port),
                         "PGUSER": "pw_ssl", "PGDATABASE": "postgres",
                         "PGSSLMODE": "verify-full", "PGSSLROOTCERT": ca},
            says="does not match host name")


def test_a_uri_works_too(tls_server, home, pki):
    from urllib.parse import quote
    uri = (f"postgresql://pw_ssl:{quote(PASSWORD)}@localhost:{tls_server.port}/postgres"
           f"?sslmode=verify-full&sslrootcert={quote(pki.path('ca.crt'))}")
    assert connects(home, uri)


# --- the worker's job over TLS ---------------------------------------------


@pytest.fixture
def pg18_behind_tls(pki):
    """A throwaway PostgreSQL 18 with the extension, reached only through
    a TLS front on 127.0.0.1 (the embedded build has no TLS of its own)."""
    s = Server(embedded_pg_bin(), "", ssl=None, extra_conf="listen_addresses = ''\n")
    front = None
    try:
        with s.connect() as c:
            c.execute("CREATE DATABASE app")
        with s.connect("app") as c:
            c.execute("CREATE EXTENSION vector")
            c.execute("CREATE EXTENSION pgai_migrate")
            ensure_errors_table(c)
        front = TlsFront(pki.path("server.crt"), pki.path("server.key"),
                         os.path.join(s.dir, f".s.PGSQL.{s.port}"))
        yield s, front
    finally:
        if front:
            front.close()
        s.stop()


def test_the_worker_drains_a_vectorizer_over_tls_verify_full(pg18_behind_tls, embedding_server, home, pki):
    s, front = pg18_behind_tls
    e = embedding_server(dims=8)
    with s.connect("app") as c:
        blog(c, [(i, f"T{i}", f"post number {i}") for i in range(1, 31)])
        vectorizer(c, embedding={"implementation": "openai", "model": "text-embedding-3-small",
                                 "dimensions": 8, "base_url": e.url + "/v1"})
    for negotiation in ("postgres", "direct"):
        db = (f"host=localhost port={front.port} user=postgres dbname=app sslmode=verify-full "
              f"sslrootcert={pki.path('ca.crt')} sslnegotiation={negotiation}")
        before = front.tls_sessions
        code, lines = worker(home, db)
        assert code == 0, lines
        assert front.tls_sessions > before
        with s.connect("app") as c:
            assert len(store(c)) == 30, (lines, errors(c))
            c.execute("UPDATE blog SET content = content || ' again' WHERE id <= 5")
    with s.connect("app") as c:
        assert sorted(k for k, v in store(c).items() if v[0].endswith("again")) == [1, 2, 3, 4, 5]
    # a plaintext client is turned away by the front: one line
    code, lines = worker(home, f"host=localhost port={front.port} user=postgres dbname=app sslmode=disable")
    assert code == 1 and len(lines) == 1 and "connection to server at" in lines[0], lines
