"""Vectorizer configuration classes, one per config kind.

The names and fields are pgai's (`pgai.vectorizer.configuration`), so code
written for pgai's Alembic operations works after changing the import. Each
object renders to the JSON the extension's `migrate.create_vectorizer(config
jsonb)` takes: `{"implementation": …, <options>}`. Fields left as None are
left out, and the extension fills in its (pgai's) defaults.

    >>> ChunkingCharacterTextSplitterConfig(chunk_size=800, separator=".").to_config()
    {'implementation': 'character_text_splitter', 'chunk_size': 800, 'separator': '.'}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar


class Config:
    """Base class: `config_type` is the vectorizer key the object belongs to
    (`embedding`, `chunking`, …) and `implementation` its kind."""

    config_type: ClassVar[str]
    implementation: ClassVar[str]
    # field name -> JSON key, where they differ (pgai's openai `chat_user`).
    json_names: ClassVar[dict[str, str]] = {}

    def to_config(self) -> dict[str, Any]:
        """The JSON object for the extension: implementation and the options set."""
        out: dict[str, Any] = {"implementation": self.implementation}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None:
                continue
            out[self.json_names.get(f.name, f.name)] = _json_value(value)
        return out

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Config":
        """The object for a JSON config (as stored in migrate.vectorizer)."""
        reverse = {v: k for k, v in cls.json_names.items()}
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for key, value in config.items():
            if key in ("implementation", "config_type"):
                continue
            field = reverse.get(key, key)
            if field not in names:
                raise ValueError(f"{cls.__name__} has no field {key!r}")
            kwargs[field] = value
        return cls(**kwargs)

    def render(self) -> str:
        """Python source that builds this object (for generated migrations)."""
        args = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if getattr(self, f.name) is not None
        )
        return f"{type(self).__name__}({args})"


def _json_value(value: Any) -> Any:
    if isinstance(value, timedelta):
        return f"{int(value.total_seconds())} seconds"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


# --- loading ----------------------------------------------------------------


@dataclass
class LoadingColumnConfig(Config):
    config_type: ClassVar[str] = "loading"
    implementation: ClassVar[str] = "column"

    column_name: str
    retries: int | None = None


@dataclass
class LoadingUriConfig(Config):
    config_type: ClassVar[str] = "loading"
    implementation: ClassVar[str] = "uri"

    column_name: str
    retries: int | None = None
    aws_role_arn: str | None = None


# --- parsing ----------------------------------------------------------------


@dataclass
class ParsingAutoConfig(Config):
    config_type: ClassVar[str] = "parsing"
    implementation: ClassVar[str] = "auto"


@dataclass
class ParsingNoneConfig(Config):
    config_type: ClassVar[str] = "parsing"
    implementation: ClassVar[str] = "none"


@dataclass
class ParsingPymupdfConfig(Config):
    config_type: ClassVar[str] = "parsing"
    implementation: ClassVar[str] = "pymupdf"


@dataclass
class ParsingDoclingConfig(Config):
    config_type: ClassVar[str] = "parsing"
    implementation: ClassVar[str] = "docling"


# --- embedding --------------------------------------------------------------


@dataclass
class EmbeddingOpenaiConfig(Config):
    config_type: ClassVar[str] = "embedding"
    implementation: ClassVar[str] = "openai"
    json_names: ClassVar[dict[str, str]] = {"chat_user": "user"}

    model: str
    dimensions: int
    chat_user: str | None = None
    api_key_name: str | None = None
    base_url: str | None = None


@dataclass
class EmbeddingOllamaConfig(Config):
    config_type: ClassVar[str] = "embedding"
    implementation: ClassVar[str] = "ollama"

    model: str
    dimensions: int
    base_url: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: str | None = None


@dataclass
class EmbeddingVoyageaiConfig(Config):
    config_type: ClassVar[str] = "embedding"
    implementation: ClassVar[str] = "voyageai"

    model: str
    dimensions: int
    input_type: str | None = None
    api_key_name: str | None = None


@dataclass
class EmbeddingLitellmConfig(Config):
    config_type: ClassVar[str] = "embedding"
    implementation: ClassVar[str] = "litellm"

    model: str
    dimensions: int
    api_key_name: str | None = None
    extra_options: dict[str, Any] | None = None


@dataclass
class EmbeddingSentenceTransformersConfig(Config):
    config_type: ClassVar[str] = "embedding"
    implementation: ClassVar[str] = "sentence_transformers"

    model: str | None = None
    dimensions: int | None = None


# --- chunking ---------------------------------------------------------------


@dataclass
class ChunkingCharacterTextSplitterConfig(Config):
    config_type: ClassVar[str] = "chunking"
    implementation: ClassVar[str] = "character_text_splitter"

    chunk_size: int | None = None
    chunk_overlap: int | None = None
    separator: str | None = None
    is_separator_regex: bool | None = None


@dataclass
class ChunkingRecursiveCharacterTextSplitterConfig(Config):
    config_type: ClassVar[str] = "chunking"
    implementation: ClassVar[str] = "recursive_character_text_splitter"

    chunk_size: int | None = None
    chunk_overlap: int | None = None
    separators: list[str] | None = None
    is_separator_regex: bool | None = None


@dataclass
class ChunkingNoneConfig(Config):
    config_type: ClassVar[str] = "chunking"
    implementation: ClassVar[str] = "none"


# --- formatting -------------------------------------------------------------


@dataclass
class FormattingPythonTemplateConfig(Config):
    config_type: ClassVar[str] = "formatting"
    implementation: ClassVar[str] = "python_template"

    template: str | None = None


@dataclass
class FormattingChunkValueConfig(Config):
    config_type: ClassVar[str] = "formatting"
    implementation: ClassVar[str] = "chunk_value"


# --- indexing ---------------------------------------------------------------


@dataclass
class IndexingDefaultConfig(Config):
    config_type: ClassVar[str] = "indexing"
    implementation: ClassVar[str] = "default"


@dataclass
class IndexingNoneConfig(Config):
    config_type: ClassVar[str] = "indexing"
    implementation: ClassVar[str] = "none"


@dataclass
class IndexingHnswConfig(Config):
    config_type: ClassVar[str] = "indexing"
    implementation: ClassVar[str] = "hnsw"

    min_rows: int | None = None
    opclass: str | None = None
    m: int | None = None
    ef_construction: int | None = None
    create_when_queue_empty: bool | None = None


@dataclass
class IndexingDiskannConfig(Config):
    config_type: ClassVar[str] = "indexing"
    implementation: ClassVar[str] = "diskann"

    min_rows: int | None = None
    storage_layout: str | None = None
    num_neighbors: int | None = None
    search_list_size: int | None = None
    max_alpha: float | None = None
    num_dimensions: int | None = None
    num_bits_per_dimension: int | None = None
    create_when_queue_empty: bool | None = None


# --- scheduling -------------------------------------------------------------


@dataclass
class SchedulingDefaultConfig(Config):
    config_type: ClassVar[str] = "scheduling"
    implementation: ClassVar[str] = "default"


@dataclass
class SchedulingNoneConfig(Config):
    config_type: ClassVar[str] = "scheduling"
    implementation: ClassVar[str] = "none"


@dataclass
class SchedulingTimescaledbConfig(Config):
    config_type: ClassVar[str] = "scheduling"
    implementation: ClassVar[str] = "timescaledb"

    schedule_interval: timedelta | str | None = None
    initial_start: datetime | str | None = None
    fixed_schedule: bool | None = None
    timezone: str | None = None


# --- processing -------------------------------------------------------------


@dataclass
class ProcessingDefaultConfig(Config):
    config_type: ClassVar[str] = "processing"
    implementation: ClassVar[str] = "default"

    batch_size: int | None = None
    concurrency: int | None = None


# --- destination ------------------------------------------------------------


@dataclass
class DestinationTableConfig(Config):
    config_type: ClassVar[str] = "destination"
    implementation: ClassVar[str] = "table"

    destination: str | None = None
    target_schema: str | None = None
    target_table: str | None = None
    view_schema: str | None = None
    view_name: str | None = None


@dataclass
class DestinationColumnConfig(Config):
    config_type: ClassVar[str] = "destination"
    implementation: ClassVar[str] = "column"

    embedding_column: str


CONFIG_CLASSES: list[type[Config]] = [
    LoadingColumnConfig,
    LoadingUriConfig,
    ParsingAutoConfig,
    ParsingNoneConfig,
    ParsingPymupdfConfig,
    ParsingDoclingConfig,
    EmbeddingOpenaiConfig,
    EmbeddingOllamaConfig,
    EmbeddingVoyageaiConfig,
    EmbeddingLitellmConfig,
    EmbeddingSentenceTransformersConfig,
    ChunkingCharacterTextSplitterConfig,
    ChunkingRecursiveCharacterTextSplitterConfig,
    ChunkingNoneConfig,
    FormattingPythonTemplateConfig,
    FormattingChunkValueConfig,
    IndexingDefaultConfig,
    IndexingNoneConfig,
    IndexingHnswConfig,
    IndexingDiskannConfig,
    SchedulingDefaultConfig,
    SchedulingNoneConfig,
    SchedulingTimescaledbConfig,
    ProcessingDefaultConfig,
    DestinationTableConfig,
    DestinationColumnConfig,
]

_BY_KIND = {(c.config_type, c.implementation): c for c in CONFIG_CLASSES}

# The keys of a vectorizer config whose values are config objects.
CONFIG_KEYS = (
    "destination",
    "loading",
    "parsing",
    "embedding",
    "chunking",
    "formatting",
    "indexing",
    "scheduling",
    "processing",
)


def config_class(config_type: str, implementation: str) -> type[Config] | None:
    """The class for a config kind, e.g. ("chunking", "none") -> ChunkingNoneConfig."""
    return _BY_KIND.get((config_type, implementation))


def to_json(key: str, value: Any) -> Any:
    """One value of a vectorizer config as JSON: config objects are rendered,
    a plain string names an implementation without options ("none"), dicts
    and lists are taken as they are."""
    if isinstance(value, Config):
        if value.config_type != key:
            raise TypeError(f"{key}: got a {value.config_type} config ({type(value).__name__})")
        return value.to_config()
    if key in CONFIG_KEYS and isinstance(value, str):
        return {"implementation": value}
    if isinstance(value, tuple):
        return list(value)
    return value


def vectorizer_config(**kwargs: Any) -> dict[str, Any]:
    """A whole vectorizer config from keyword arguments (`source`, `name`,
    `loading`, `embedding`, …, `grant_to`, `enqueue_existing`,
    `if_not_exists`); None values are left out."""
    config: dict[str, Any] = {}
    for key, value in kwargs.items():
        if value is None:
            continue
        if key == "grant_to" and isinstance(value, str):
            value = [value]
        config[key] = to_json(key, value)
    return config


__all__ = [c.__name__ for c in CONFIG_CLASSES] + [
    "Config",
    "CONFIG_KEYS",
    "config_class",
    "to_json",
    "vectorizer_config",
]
