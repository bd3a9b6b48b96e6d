"""The Python package's config classes mirror the extension's config model.

`python/pgai_migrate/model.json` is generated from the Rust model (a unit
test in core/ keeps it current); these tests fail when
`pgai_migrate.configuration` or the Alembic operation disagree with it:
a kind missing on one side, a field missing or extra, a field required on
one side only, or a field whose Python type cannot hold the JSON type.
"""

import dataclasses
import inspect
import json
import os
import sys
import typing

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from pgai_migrate import configuration as cfg  # noqa: E402
from pgai_migrate.alembic import autogenerate  # noqa: E402
from pgai_migrate.alembic.operations import CreateVectorizerOp  # noqa: E402

with open(os.path.join(ROOT, "python", "pgai_migrate", "model.json")) as f:
    MODEL = json.load(f)

KINDS = [
    (key, imp, spec)
    for key, component in MODEL["components"].items()
    for imp, spec in component["implementations"].items()
]

# JSON type in the model -> Python types an annotation must admit.
PYTHON_TYPES = {
    "string": str,
    "integer": int,
    "number": float,
    "boolean": bool,
    "object": dict,
    "array of strings": list,
}


def admits(annotation, python_type):
    hints = typing.get_args(annotation) or (annotation,)
    origins = {typing.get_origin(h) or h for h in hints}
    return python_type in origins


def test_every_kind_has_exactly_one_class():
    model = {(key, imp) for key, imp, _ in KINDS}
    python = {(c.config_type, c.implementation) for c in cfg.CONFIG_CLASSES}
    assert python == model
    assert set(cfg.CONFIG_KEYS) == set(MODEL["components"])


@pytest.mark.parametrize("key, imp, spec", KINDS, ids=[f"{k}.{i}" for k, i, _ in KINDS])
def test_class_fields_match_the_model(key, imp, spec):
    cls = cfg.config_class(key, imp)
    hints = typing.get_type_hints(cls)
    fields = {cls.json_names.get(f.name, f.name): f for f in dataclasses.fields(cls)}
    assert set(fields) == set(spec["fields"]), cls.__name__
    for name, field in fields.items():
        want = spec["fields"][name]
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        assert has_default != want["required"], f"{cls.__name__}.{field.name}: required in the model is {want['required']}"
        if has_default:
            # The extension fills in defaults; the class leaves them out.
            assert field.default is None, f"{cls.__name__}.{field.name} should default to None"
        assert admits(hints[field.name], PYTHON_TYPES[want["type"]]), (
            f"{cls.__name__}.{field.name}: {hints[field.name]} cannot hold a JSON {want['type']}"
        )


def test_the_alembic_operation_takes_every_config_key():
    params = set(inspect.signature(CreateVectorizerOp.create_vectorizer).parameters)
    assert set(MODEL["config_keys"]) <= params
    assert set(autogenerate.ARGUMENT_ORDER) == set(MODEL["config_keys"])


def test_a_class_renders_what_the_model_names():
    # Every field set renders under its JSON name, and reads back.
    for key, imp, spec in KINDS:
        cls = cfg.config_class(key, imp)
        sample = {"string": "x", "integer": 1, "number": 1.5, "boolean": True, "object": {}, "array of strings": ["x"]}
        kwargs = {f.name: sample[spec["fields"][cls.json_names.get(f.name, f.name)]["type"]] for f in dataclasses.fields(cls)}
        obj = cls(**kwargs)
        rendered = obj.to_config()
        assert set(rendered) == {"implementation"} | set(spec["fields"])
        assert cls.from_config(rendered) == obj
