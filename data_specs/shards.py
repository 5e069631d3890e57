"""Token shards: the hand-off from the mixing job to the trainer, and the manifest that describes them.

One Arrow IPC file per shard, each row one training sequence of exactly `seq_len` tokens. Documents are packed
back to back (EOS between them); `segment_ids` number the documents inside a row from 1 (0 is padding) and
`positions` restart at 0 for each document. `segment_doc_ids[k-1]` / `segment_components[k-1]` say where segment k
came from, so the trainer can report loss per component and tests can prove no document is in two splits.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

SHARD_SCHEMA_VERSION = 1

SHARD_SCHEMA = pa.schema(
    [
        pa.field("tokens", pa.list_(pa.int32()), nullable=False),
        pa.field("segment_ids", pa.list_(pa.int32()), nullable=False),
        pa.field("positions", pa.list_(pa.int32()), nullable=False),
        pa.field("segment_doc_ids", pa.list_(pa.string()), nullable=False),
        pa.field("segment_components", pa.list_(pa.string()), nullable=False),
    ]
)


@dataclass(frozen=True)
class ShardInfo:
    file: str  # relative to the manifest's folder
    split: str  # "train" or "validation"
    rows: int
    tokens: int  # non-padding tokens
    sha256: str


@dataclass(frozen=True)
class ComponentMix:
    target_weight: float
    tokens_available: int  # tokens in the curated component (training split)
    tokens: int  # tokens sampled into the training shards
    epochs: float  # tokens / tokens_available: >1 repeated, <1 subsampled
    documents: int


@dataclass(frozen=True)
class ShardManifest:
    """`manifest.json` beside the shards. Holds no timestamps: reruns give identical bytes."""

    seq_len: int
    seed: int
    spec_hash: str
    tokenizer_hash: str
    upstream: Mapping[str, str]
    shards: tuple[ShardInfo, ...]
    components: Mapping[str, ComponentMix]
    schema_version: int = SHARD_SCHEMA_VERSION
    extra: Mapping[str, Any] = field(default_factory=dict)

    def split_files(self, split: str) -> list[str]:
        return [s.file for s in self.shards if s.split == split]

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ShardManifest:
        raw = json.loads(text)
        if raw.get("schema_version") != SHARD_SCHEMA_VERSION:
            raise ValueError(f"shard manifest schema {raw.get('schema_version')}, expected {SHARD_SCHEMA_VERSION}")
        raw["shards"] = tuple(ShardInfo(**s) for s in raw["shards"])
        raw["components"] = {k: ComponentMix(**v) for k, v in raw["components"].items()}
        return cls(**raw)

    @classmethod
    def load(cls, path: str | Path) -> ShardManifest:
        return cls.from_json(Path(path).read_text())
