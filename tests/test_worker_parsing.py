"""Document parsing end to end with the local model: PDF (fpdf2), DOCX
(python-docx) and HTML written by the test, read from a bytea column and
through http and s3 URIs; the stored chunks hold the written sentences in
order. Corrupt documents fail their key with step `parsing` while the
others are embedded."""

import io
import json
import re
import subprocess

import pytest

from conftest import create_vectorizer
from document_helpers import DocServer, S3, docserver, doc_store, failures, s3, uri_table  # noqa: F401
from worker_helpers import LOCAL_EMBEDDING, run_worker, wdb, worker_bin  # noqa: F401

PDF_PAGES = [
    ["The first page of the report talks about cats.", "Cats purr when they are content."],
    ["The second page moves on to databases.", "PostgreSQL keeps rows in tables."],
]
DOCX_PARAGRAPHS = [
    "Quarterly notes begin here.",
    "Revenue grew in every region.",
    "The team shipped the new search feature.",
    "Next quarter focuses on reliability.",
]
HTML = """<!DOCTYPE html><html><head><title>Page</title>
<style>p { color: red }</style><script>var leaked = "script text";</script></head>
<body><h1>Travel guide</h1><p>Lisbon has <b>steep</b> hills and yellow trams.</p>
<script>document.write("more script text")</script>
<ul><li>Visit the castle early.</li><li>Eat a custard tart.</li></ul></body></html>"""
HTML_SENTENCES = ["Travel guide", "Lisbon has steep hills and yellow trams.", "Visit the castle early.", "Eat a custard tart."]


def make_pdf():
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for page in PDF_PAGES:
        pdf.add_page()
        for sentence in page:
            pdf.cell(0, 10, sentence, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def make_docx():
    import docx

    d = docx.Document()
    d.add_heading(DOCX_PARAGRAPHS[0], level=1)
    for p in DOCX_PARAGRAPHS[1:]:
        d.add_paragraph(p)
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def squash(s):
    return re.sub(r"\s+", " ", s).strip()


def in_order(chunks, sentences):
    """Every sentence appears in the chunks' text, in the written order
    (chunks overlap, so each is looked for after the previous one)."""
    text = squash(" ".join(chunks))
    at = 0
    for s in sentences:
        i = text.find(squash(s), at)
        assert i >= 0, f"{s!r} not found in order in {text!r}"
        at = i + len(s)
    return True


def good_documents():
    return {
        "report.pdf": make_pdf(),
        "notes.docx": make_docx(),
        "guide.html": HTML.encode(),
    }


def corrupt_documents():
    docx = make_docx()
    return {
        "broken.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\nendobj\n" + bytes(range(256)) * 4,
        "truncated.docx": docx[: len(docx) // 2],
    }


def assert_parsed(chunks_by_id, ids):
    pdf, docx, html = ids
    assert in_order(chunks_by_id[pdf], [s for page in PDF_PAGES for s in page])
    assert in_order(chunks_by_id[docx], DOCX_PARAGRAPHS)
    assert in_order(chunks_by_id[html], HTML_SENTENCES)
    assert "script text" not in " ".join(chunks_by_id[html]) and "color" not in " ".join(chunks_by_id[html])


@pytest.mark.parametrize("parsing", ["auto", "pymupdf", "docling"])
def test_bytea_documents_are_parsed(wdb, parsing):
    docs = {**good_documents(), **corrupt_documents()}
    wdb.execute("CREATE TABLE files (id int PRIMARY KEY, name text, body bytea)")
    names = list(docs)
    for i, name in enumerate(names, 1):
        wdb.execute("INSERT INTO files VALUES (%s, %s, %s)", (i, name, docs[name]))
    wdb.execute("INSERT INTO files VALUES (99, 'empty', NULL)")
    create_vectorizer(wdb, {"source": "files", "name": "docs_vec",
                            "destination": {"implementation": "table", "destination": "docs_embeddings"},
                            "loading": {"implementation": "column", "column_name": "body", "retries": 0},
                            "parsing": {"implementation": parsing}, "embedding": LOCAL_EMBEDDING})
    run_worker(wdb.info.dbname)
    stored = doc_store(wdb)
    assert set(stored) == {1, 2, 3}
    assert_parsed(stored, (1, 2, 3))
    f = failures(wdb)
    assert set(f) == {4, 5} and all(step == "parsing" for step, _ in f.values()), f
    assert f[4][1][0].startswith("PDF document:") and f[5][1][0].startswith("DOCX document:")


def test_documents_over_http_are_parsed_by_their_type(wdb, docserver):
    d = docserver
    docs = {**good_documents(), **corrupt_documents()}
    types = {"pdf": "application/pdf", "docx": "application/octet-stream", "html": "text/html; charset=utf-8"}
    for name, body in docs.items():
        d.routes[f"/{name}"] = (200, {"Content-Type": types[name.rsplit(".", 1)[1]]}, body)
    # HTML served without a type or extension is sniffed; labelled as text it stays text.
    d.routes["/page"] = (200, {}, HTML.encode())
    d.routes["/source.txt"] = (200, {"Content-Type": "text/plain"}, b"<p>kept as <b>text</b></p>")
    names = list(docs) + ["page", "source.txt"]
    uri_table(wdb, [(i, f"{d.url}/{n}") for i, n in enumerate(names, 1)])
    run_worker(wdb.info.dbname, "--uri-allow-host", d.host)
    stored = doc_store(wdb)
    assert set(stored) == {1, 2, 3, 6, 7}
    assert_parsed(stored, (1, 2, 3))
    assert in_order(stored[6], HTML_SENTENCES)
    assert stored[7] == ["<p>kept as <b>text</b></p>"]
    f = failures(wdb)
    assert {i: step for i, (step, _) in f.items()} == {4: "parsing", 5: "parsing"}


def test_documents_from_s3_are_parsed(wdb, s3):
    docs = {**good_documents(), **corrupt_documents()}
    s3.bucket("parsed-docs", {f"in/{n}": b for n, b in docs.items()})
    uri_table(wdb, [(i, f"s3://parsed-docs/in/{n}") for i, n in enumerate(docs, 1)])
    run_worker(wdb.info.dbname, env=s3.env)
    stored = doc_store(wdb)
    assert set(stored) == {1, 2, 3}
    assert_parsed(stored, (1, 2, 3))
    assert {i: step for i, (step, _) in failures(wdb).items()} == {4: "parsing", 5: "parsing"}


def encrypted_pdf(user_password):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.cell(0, 10, "An encrypted sentence.")
    pdf.set_encryption(owner_password="owner", user_password=user_password)
    return bytes(pdf.output())


def test_an_encrypted_pdf_is_read_only_without_a_user_password(wdb):
    wdb.execute("CREATE TABLE files (id int PRIMARY KEY, body bytea)")
    wdb.execute("INSERT INTO files VALUES (1, %s), (2, %s)", (encrypted_pdf(""), encrypted_pdf("secret")))
    create_vectorizer(wdb, {"source": "files", "name": "docs_vec",
                            "destination": {"implementation": "table", "destination": "docs_embeddings"},
                            "loading": {"implementation": "column", "column_name": "body", "retries": 0},
                            "embedding": LOCAL_EMBEDDING})
    run_worker(wdb.info.dbname)
    stored = doc_store(wdb)
    assert set(stored) == {1} and in_order(stored[1], ["An encrypted sentence."])
    step, [msg] = failures(wdb)[2]
    assert step == "parsing" and msg.startswith("PDF document: encrypted"), msg


@pytest.mark.parametrize("name", ["report.pdf", "notes.docx", "guide.html"])
def test_the_chunk_command_parses_a_document_on_stdin(name):
    body = good_documents()[name]
    config = {"parsing": "auto", "chunking": {"implementation": "recursive_character_text_splitter",
                                              "chunk_size": 60, "chunk_overlap": 0}}
    p = subprocess.run([worker_bin(), "chunk", "--config", json.dumps(config)], input=body,
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    chunks = json.loads(p.stdout)
    expected = {"report.pdf": [s for page in PDF_PAGES for s in page], "notes.docx": DOCX_PARAGRAPHS,
                "guide.html": HTML_SENTENCES}[name]
    assert len(chunks) > 1 and in_order(chunks, expected)
    bad = subprocess.run([worker_bin(), "chunk", "--config", json.dumps(config)], input=corrupt_documents()["broken.pdf"],
                         capture_output=True, timeout=60)
    assert bad.returncode == 1 and b"PDF document:" in bad.stderr
