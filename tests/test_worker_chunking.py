"""The worker's chunking and formatting are byte-identical to what pgai's
worker computes with langchain-text-splitters and string.Template: the same
corpus goes through LangChain in this process and through
`pgai-migrate-worker chunk` (one JSON document per line)."""

import json
import random
import subprocess
from string import Template

import pytest
from langchain_text_splitters import CharacterTextSplitter, RecursiveCharacterTextSplitter

from worker_helpers import worker_bin

PGAI_SEPARATORS = ["\n\n", "\n", ".", "?", "!", " ", ""]

MARKDOWN = """# Vectorizers

A *vectorizer* keeps the embeddings of a table in sync. It names a source
table, what to load from each row, how to chunk, format and embed it.

## Install

```sh
cargo pgrx install --release
psql -c 'CREATE EXTENSION pgai_migrate CASCADE'
```

- one: the store table;
- two: the view.  Really?  Yes!
- three: the queue...

| key | meaning |
|-----|---------|
| `source` | the source table |

> Quoted text, with trailing spaces.   \n> And more.

Done.
"""

CODE = '''import os


def main(argv):
    """Entry point."""
    for arg in argv[1:]:
        if arg.startswith("--"):
            print(f"option {arg!r}")
        else:
            print(os.path.abspath(arg))
    return 0


class Config:
    def __init__(self, path):
        self.path = path

fn rust() -> Result<(), String> {
    let x = vec![1, 2, 3].iter().map(|v| v * 2).collect::<Vec<_>>();
    Ok(())
}
'''

UNICODE = (
    "Les élèves étudient l’été. Ça va? Très bien!\n\n"
    "日本語の文章です。句読点があります。改行も\nあります。\n\n"
    "Emoji 👩‍👩‍👧‍👦 family, flags 🇫🇷🇯🇵, combining e\u0301 and Zalgo z\u0336a\u0337.\n"
    "Русский текст. Ещё одно предложение! А вопрос?\n"
    "\u00a0non-breaking\u00a0spaces\u2003em space\u3000ideographic\u2028line sep\u2029para sep\x1cfile sep.\n"
    "עברית ومرحبا بالعالم."
)

LONG_LINE = "x" * 2500 + " " + "word " * 300 + "y" * 1200

CORPUS = [
    MARKDOWN,
    CODE,
    UNICODE,
    LONG_LINE,
    "",
    " ",
    "\n\n\n",
    " \t\n \r\n\u3000 ",
    "single",
    "Windows\r\nline\r\nendings.\r\n\r\nNew paragraph.\r\n",
    "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.u.v.w.x.y.z",
    "...???!!!   \n\n  ...",
    "#Title\n#Second\nbody # not a title\n\n#Third",
    MARKDOWN * 5,
]


def fuzz_corpus(n=120, seed=1234):
    """Random documents over an alphabet rich in separators, so that merges,
    overlaps and whitespace stripping meet every edge."""
    rng = random.Random(seed)
    alphabet = ["a", "b", "é", "日", "👍", " ", " ", "\n", "\n\n", ".", "?", "!", "#", "\t", "  ", "word", "x" * 30]
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400))) for _ in range(n)]


ALL_DOCS = CORPUS + fuzz_corpus()

CONFIGS = [
    {"implementation": "character_text_splitter", "chunk_size": 800, "chunk_overlap": 400, "separator": "\n\n", "is_separator_regex": False},
    {"implementation": "character_text_splitter", "chunk_size": 50, "chunk_overlap": 10, "separator": ".", "is_separator_regex": False},
    {"implementation": "character_text_splitter", "chunk_size": 20, "chunk_overlap": 5, "separator": " ", "is_separator_regex": False},
    {"implementation": "character_text_splitter", "chunk_size": 7, "chunk_overlap": 3, "separator": "", "is_separator_regex": False},
    {"implementation": "character_text_splitter", "chunk_size": 40, "chunk_overlap": 0, "separator": "\\s+", "is_separator_regex": True},
    {"implementation": "character_text_splitter", "chunk_size": 60, "chunk_overlap": 20, "separator": "[.!?]", "is_separator_regex": True},
    {"implementation": "character_text_splitter", "chunk_size": 30, "chunk_overlap": 0, "separator": "(?=#)", "is_separator_regex": True},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 800, "chunk_overlap": 400, "separators": PGAI_SEPARATORS, "is_separator_regex": False},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 100, "chunk_overlap": 20, "separators": PGAI_SEPARATORS, "is_separator_regex": False},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 30, "chunk_overlap": 10, "separators": PGAI_SEPARATORS, "is_separator_regex": False},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 10, "chunk_overlap": 9, "separators": ["\n\n", "\n", " ", ""], "is_separator_regex": False},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 25, "chunk_overlap": 0, "separators": ["\n", " "], "is_separator_regex": False},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 64, "chunk_overlap": 16, "separators": ["\n#{1,6} ", "```\n", "\n\\*\\*\\*+\n", "\n\n", "\n", "(?<=\\.) ", " ", ""], "is_separator_regex": True},
    {"implementation": "recursive_character_text_splitter", "chunk_size": 40, "chunk_overlap": 5, "separators": ["\nclass ", "\ndef ", "\n\tdef ", "\n\n", "\n", " ", ""], "is_separator_regex": True},
]


def langchain(cfg):
    if cfg["implementation"] == "character_text_splitter":
        s = CharacterTextSplitter(
            separator=cfg["separator"], chunk_size=cfg["chunk_size"],
            chunk_overlap=cfg["chunk_overlap"], is_separator_regex=cfg["is_separator_regex"],
        )
    else:
        s = RecursiveCharacterTextSplitter(
            separators=cfg["separators"], chunk_size=cfg["chunk_size"],
            chunk_overlap=cfg["chunk_overlap"], is_separator_regex=cfg["is_separator_regex"],
        )
    return s.split_text


def worker_chunks(config, docs, row=None):
    args = [worker_bin(), "chunk", "--jsonl", "--config", json.dumps(config)]
    if row is not None:
        args += ["--row", json.dumps(row)]
    p = subprocess.run(args, input="".join(json.dumps(d) + "\n" for d in docs),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    # Not splitlines(): U+2028 and friends may appear raw inside the JSON.
    return [json.loads(line) for line in p.stdout.split("\n")[:-1]]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c['implementation']}-{c['chunk_size']}-{c.get('separator', 'rec')!r}")
def test_chunks_are_identical_to_langchain(cfg):
    split = langchain(cfg)
    expected = [split(d) for d in ALL_DOCS]
    got = worker_chunks({"chunking": cfg}, ALL_DOCS)
    assert len(got) == len(ALL_DOCS)
    for doc, e, g in zip(ALL_DOCS, expected, got):
        assert g == e, f"document {doc[:80]!r}"
    # The corpus does exercise splitting: not everything is one chunk.
    assert sum(len(e) for e in expected) > len(ALL_DOCS)


def test_chunk_reads_one_document_from_stdin():
    cfg = CONFIGS[8]
    p = subprocess.run([worker_bin(), "chunk", "--config", json.dumps({"chunking": cfg})],
                       input=MARKDOWN, capture_output=True, text=True, check=True)
    assert json.loads(p.stdout) == langchain(cfg)(MARKDOWN)


def test_chunking_none_keeps_the_document_and_drops_empty_ones():
    assert worker_chunks({"chunking": "none"}, ["  a b  ", ""]) == [["  a b  "], []]


ROW = {"title": "Über $5", "id": 7, "flag": True, "missing": None, "ratio": 0.5, "t_2": "x"}
TEMPLATES = ["$chunk", "$title - $chunk", "${title}s: ${chunk}!", "$$chunk $$ $id $flag $missing $ratio", "$t_2$chunk$t_2", "no placeholder at all $chunk\n$title"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_python_template_matches_string_template(template):
    chunks = langchain(CONFIGS[9])(MARKDOWN)
    cfg = {"chunking": CONFIGS[9], "formatting": {"implementation": "python_template", "template": template}}
    [got] = worker_chunks(cfg, [MARKDOWN], row=ROW)
    assert got == [Template(template).substitute(chunk=c, **ROW) for c in chunks]


@pytest.mark.parametrize("template", ["$chunk $", "$chunk ${title", "$chunk $1", "$chunk $nope"])
def test_bad_templates_fail_like_string_template(template):
    with pytest.raises((ValueError, KeyError)) as python_error:
        Template(template).substitute(chunk="c", **ROW)
    cfg = {"chunking": "none", "formatting": {"implementation": "python_template", "template": template}}
    p = subprocess.run([worker_bin(), "chunk", "--config", json.dumps(cfg), "--row", json.dumps(ROW)],
                       input="c", capture_output=True, text=True)
    assert p.returncode == 1
    if python_error.type is ValueError:
        assert str(python_error.value) in p.stderr
    else:
        assert "KeyError: 'nope'" in p.stderr


def test_chunk_value_formatting_is_the_chunk():
    cfg = {"chunking": CONFIGS[2], "formatting": {"implementation": "chunk_value"}}
    assert worker_chunks(cfg, [MARKDOWN]) == [langchain(CONFIGS[2])(MARKDOWN)]
