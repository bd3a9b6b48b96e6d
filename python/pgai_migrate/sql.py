"""The SQL text of the extension's calls, with every value written as a
quoted literal (so the same text runs online and in a `--sql` script).

    >>> create_vectorizer_sql({"source": "blog"}, label="0001")
    'SELECT migrate.create_vectorizer(\\'{"source": "blog"}\\'::jsonb, label => \\'0001\\')'
"""

from __future__ import annotations

import json
from typing import Any


def literal(value: str) -> str:
    """A PostgreSQL string literal for `value`, correct whatever
    standard_conforming_strings is: quotes are doubled, and a value with a
    backslash is written as an escape string (E'…') with backslashes doubled."""
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot contain NUL characters")
    quoted = value.replace("'", "''")
    if "\\" in quoted:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def jsonb(value: Any) -> str:
    return literal(json.dumps(value, ensure_ascii=False, sort_keys=False)) + "::jsonb"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _label(label: str | None) -> str:
    return "" if label is None else f", label => {literal(label)}"


def create_vectorizer_sql(config: dict[str, Any], label: str | None = None) -> str:
    return f"SELECT migrate.create_vectorizer({jsonb(config)}{_label(label)})"


def drop_vectorizer_sql(
    name: str, drop_all: bool = False, if_exists: bool = False, label: str | None = None
) -> str:
    args = [literal(name), f"drop_all => {_bool(drop_all)}"]
    if if_exists:
        args.append("if_exists => true")
    return f"SELECT migrate.drop_vectorizer({', '.join(args)}{_label(label)})"


def alter_vectorizer_sql(
    name: str, changes: dict[str, Any], reembed: bool = False, label: str | None = None
) -> str:
    args = [literal(name), jsonb(changes)]
    if reembed:
        args.append("reembed => true")
    return f"SELECT migrate.alter_vectorizer({', '.join(args)}{_label(label)})"


def restore_vectorizer_sql(name: str, revision_id: int | None = None, label: str | None = None) -> str:
    args = [literal(name)]
    if revision_id is not None:
        args.append(f"revision_id => {int(revision_id)}")
    return f"SELECT migrate.restore_vectorizer({', '.join(args)}{_label(label)})"
