"""`loading_uri` end to end with the local model: documents fetched over
HTTP, from the operator's file roots and from S3 (moto) fill the store; what
the rule refuses (files outside the roots, internal addresses, too large,
too many redirects) and what fails (404, 500) are error rows with step
`loading`, retried per `loading.retries`."""

import os

from document_helpers import DocServer, S3, docserver, doc_store, failures, s3, uri_table  # noqa: F401
from worker_helpers import errors, queue_rows, run_worker, wdb  # noqa: F401

CATS = "Cats are small furry pets. They purr and chase mice at night."
SQL = "# PostgreSQL\n\nPostgreSQL answers SQL queries with indexes."


def test_http_documents_land_and_what_cannot_be_fetched_fails_after_its_retries(wdb, docserver):
    d = docserver
    d.routes.update({
        "/cats.txt": (200, {"Content-Type": "text/plain"}, CATS.encode()),
        "/sql.md": (200, {}, SQL.encode()),
        "/big.txt": (200, {}, b"x" * 5000),
        "/unsized.txt": (200, {}, ("unsized", b"y" * 5000)),
        "/error": (500, {}, b"internal-secret-page"),
        "/to-internal": (302, {"Location": "http://10.0.0.1/latest/meta-data/"}, b""),
        "/to-ftp": (302, {"Location": "ftp://example.com/x"}, b""),
    })
    # /hop/N redirects to /hop/N-1 (relative), /hop/0 to the document.
    for n in range(1, 8):
        d.routes[f"/hop/{n}"] = (301 if n % 2 else 307, {"Location": f"/hop/{n - 1}"}, b"")
    d.routes["/hop/0"] = (302, {"Location": f"{d.url}/cats.txt"}, b"")
    uri_table(wdb, [
        (1, f"{d.url}/cats.txt"),
        (2, f"{d.url}/sql.md"),
        (3, f"{d.url}/hop/4"),   # five redirects: followed
        (4, f"{d.url}/hop/5"),   # six: refused
        (5, f"{d.url}/big.txt"),
        (6, f"{d.url}/unsized.txt"),
        (7, f"{d.url}/missing"),
        (8, f"{d.url}/error"),
        (9, f"{d.url}/to-internal"),
        (10, f"{d.url}/to-ftp"),
        (11, None),
        (12, ""),
    ], retries=2)
    p = run_worker(wdb.info.dbname, "--uri-allow-host", d.host, "--uri-max-bytes", "1000")
    assert doc_store(wdb) == {1: [CATS], 2: [SQL], 3: [CATS]}
    assert queue_rows(wdb) == []
    f = failures(wdb)
    assert set(f) == {4, 5, 6, 7, 8, 9, 10}
    assert all(step == "loading" and len(msgs) == 3 for step, msgs in f.values()), f
    expect = {
        4: "more than 5 redirects",
        5: "larger than the worker's limit of 1000 bytes (--uri-max-bytes)",
        6: "larger than the worker's limit of 1000 bytes (--uri-max-bytes)",
        7: f"{d.url}/missing: HTTP 404",
        8: f"{d.url}/error: HTTP 500",
        9: "refused: 10.0.0.1 is a private (RFC 1918) address",
        10: "refused: redirect to a ftp URI",
    }
    for i, text in expect.items():
        assert all(text in m for m in f[i][1]), (i, f[i])
    # A failed key was tried 1 + retries times; no response body is quoted.
    assert d.requests.count("/missing") == 3 and d.requests.count("/error") == 3
    assert "internal-secret-page" not in p.stderr
    # The embeddings are the local model's, searchable through the view.
    assert wdb.execute("SELECT count(*), min(vector_dims(embedding)) FROM docs_embeddings").fetchone() == (3, 384)


def test_a_batch_fetches_its_uris_several_at_once(wdb, docserver):
    d = docserver
    d.delay = 0.3
    for i in range(16):
        d.routes[f"/doc{i}.txt"] = (200, {}, f"Document number {i}.".encode())
    uri_table(wdb, [(i, f"{d.url}/doc{i}.txt") for i in range(16)])
    run_worker(wdb.info.dbname, "--uri-allow-host", d.host)
    assert doc_store(wdb) == {i: [f"Document number {i}."] for i in range(16)}
    assert 2 <= d.max_in_flight <= 8


def test_one_timeout_bounds_a_whole_fetch_redirects_included(wdb, docserver):
    d = docserver
    d.routes["/slow.txt"] = (200, {}, b"late", 3)
    # Three hops of 0.4 s each: every hop is within the second, their sum is not.
    d.routes["/hop/3"] = (302, {"Location": "/hop/2"}, b"", 0.4)
    d.routes["/hop/2"] = (302, {"Location": "/hop/1"}, b"", 0.4)
    d.routes["/hop/1"] = (302, {"Location": "/quick.txt"}, b"", 0.4)
    d.routes["/quick.txt"] = (200, {}, b"Quick enough.")
    uri_table(wdb, [(1, f"{d.url}/slow.txt"), (2, f"{d.url}/hop/3"), (3, f"{d.url}/quick.txt")])
    run_worker(wdb.info.dbname, "--uri-allow-host", d.host, "--uri-timeout", "1")
    assert doc_store(wdb) == {3: ["Quick enough."]}
    f = failures(wdb)
    assert set(f) == {1, 2} and all("timed out" in msgs[0] and "--uri-timeout" in msgs[0] for _, msgs in f.values()), f


def test_internal_addresses_are_refused_unless_the_operator_allows_the_host(wdb, docserver):
    d = docserver
    d.routes["/cats.txt"] = (200, {}, CATS.encode())
    uri_table(wdb, [
        (1, f"{d.url}/cats.txt"),
        (2, f"http://localhost:{d.port}/cats.txt"),
        (3, f"http://[::1]:{d.port}/cats.txt"),
        (4, "http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        (5, "http://[::ffff:127.0.0.1]:1/"),
        (6, "http://0.0.0.0:1/"),
    ])
    # Another port of the same host is not the allowed one.
    run_worker(wdb.info.dbname, "--uri-allow-host", f"127.0.0.1:{d.port + 1}")
    assert doc_store(wdb) == {}
    f = failures(wdb)
    assert set(f) == {1, 2, 3, 4, 5, 6}
    for i, kind in [(1, "loopback"), (2, "loopback"), (3, "loopback"), (4, "cloud metadata"), (5, "loopback"), (6, "unspecified")]:
        step, [msg] = f[i]
        assert step == "loading" and "refused" in msg and kind in msg and "--uri-allow-host" in msg, msg
    assert d.requests == []  # refused before connecting

    # Allowed by the operator (any port of that host): fetched.
    wdb.execute("INSERT INTO docs VALUES (7, %s)", (f"{d.url}/cats.txt",))
    run_worker(wdb.info.dbname, "--uri-allow-host", "127.0.0.1")
    assert doc_store(wdb) == {7: [CATS]}
    assert d.requests == ["/cats.txt"]


def test_files_are_read_only_inside_the_file_roots(wdb, tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "cats.md").write_text(CATS)
    (root / "sub").mkdir()
    (root / "sub" / "sql.md").write_text(SQL)
    (tmp_path / "secret.txt").write_text("the worker's secret")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink("/etc/passwd", root / "passwd")
    uri_table(wdb, [
        (1, f"file://{root}/cats.md"),
        (2, f"{root}/sub/sql.md"),
        (3, f"{root}/sub/../cats.md"),
        (4, f"{root}/escape.txt"),
        (5, f"{root}/passwd"),
        (6, "/etc/passwd"),
        (7, "file:///etc/passwd"),
        (8, f"{root}/../secret.txt"),
        (9, f"{root}/missing.md"),
        (10, "cats.md"),
    ])
    run_worker(wdb.info.dbname, "--file-root", str(root))
    assert doc_store(wdb) == {1: [CATS], 2: [SQL], 3: [CATS]}
    f = failures(wdb)
    assert set(f) == {4, 5, 6, 7, 8, 9, 10}
    for i in (4, 5):
        assert "resolves (through a symlink) outside the worker's --file-root" in f[i][1][0]
    for i in (6, 7, 8):
        assert "refused: outside the worker's --file-root directories" in f[i][1][0]
    assert "no such file" in f[9][1][0] and "relative path" in f[10][1][0]
    assert all(step == "loading" for step, _ in f.values())
    assert not any("the worker's secret" in m or "root:x" in m for _, msgs in f.values() for m in msgs)


def test_without_a_file_root_file_uris_are_refused(wdb, tmp_path):
    (tmp_path / "cats.md").write_text(CATS)
    uri_table(wdb, [(1, f"file://{tmp_path}/cats.md"), (2, "/etc/passwd")])
    run_worker(wdb.info.dbname, env={"PGAI_MIGRATE_FILE_ROOTS": ""})
    f = failures(wdb)
    assert doc_store(wdb) == {} and set(f) == {1, 2}
    assert all("no --file-root" in msgs[0] for _, msgs in f.values())


def test_a_file_root_may_come_from_the_environment_and_must_exist(wdb, tmp_path):
    (tmp_path / "cats.md").write_text(CATS)
    uri_table(wdb, [(1, f"{tmp_path}/cats.md")])
    p = run_worker(wdb.info.dbname, env={"PGAI_MIGRATE_FILE_ROOTS": "/nonexistent"}, check=False)
    assert p.returncode == 2 and "--file-root /nonexistent" in p.stderr
    assert doc_store(wdb) == {}
    run_worker(wdb.info.dbname, env={"PGAI_MIGRATE_FILE_ROOTS": str(tmp_path)})
    assert doc_store(wdb) == {1: [CATS]}


def test_s3_documents_fill_the_store(wdb, s3):
    s3.bucket("docs-bucket", {"cats.txt": CATS.encode(), "dir/sql notes.md": SQL.encode()})
    uri_table(wdb, [
        (1, "s3://docs-bucket/cats.txt"),
        (2, "s3://docs-bucket/dir/sql%20notes.md"),
        (3, "s3://docs-bucket/missing.txt"),
        (4, "s3://no-such-bucket-here/x.txt"),
        (5, "s3://Not_A_Bucket/x.txt"),
    ], retries=1)
    run_worker(wdb.info.dbname, env=s3.env)
    assert doc_store(wdb) == {1: [CATS], 2: [SQL]}
    assert wdb.execute("SELECT count(*), min(vector_dims(embedding)) FROM docs_embeddings").fetchone() == (2, 384)
    f = failures(wdb)
    assert set(f) == {3, 4, 5} and all(step == "loading" and len(m) == 2 for step, m in f.values()), f
    assert "s3://docs-bucket/missing.txt: no such object" in f[3][1][0]
    assert "not an S3 bucket name" in f[5][1][0]


def test_an_aws_role_arn_is_refused_with_a_clear_error(wdb, s3):
    s3.bucket("role-bucket", {"cats.txt": CATS.encode()})
    wdb.execute("CREATE TABLE docs (id int PRIMARY KEY, uri text)")
    wdb.execute("INSERT INTO docs VALUES (1, 's3://role-bucket/cats.txt')")
    from conftest import create_vectorizer
    from worker_helpers import LOCAL_EMBEDDING
    create_vectorizer(wdb, {"source": "docs", "name": "docs_vec",
                            "destination": {"implementation": "table", "destination": "docs_embeddings"},
                            "loading": {"implementation": "uri", "column_name": "uri", "retries": 0,
                                        "aws_role_arn": "arn:aws:iam::123456789012:role/reader"},
                            "embedding": LOCAL_EMBEDDING})
    run_worker(wdb.info.dbname, env=s3.env)
    [(key, message, details)] = errors(wdb)
    assert key == {"id": 1} and details["step"] == "loading"
    assert "aws_role_arn" in message and "not supported" in message
