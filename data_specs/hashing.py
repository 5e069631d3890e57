"""Keyed hashing: the one source of per-document randomness and of content/config fingerprints.

Every per-document decision in glamkit (splits, Pareto draws, subsampling) calls `uniform`, never a global RNG,
so a decision depends only on (doc id, seed, purpose): not on batch, worker, order or Python's hash seed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

_SEP = b"\x1f"  # unit separator between purpose and seed
_SCALE = 2.0**-53


@functools.lru_cache(maxsize=256)
def _key(seed: int, purpose: str) -> bytes:
    """A 32-byte blake2b key per (seed, purpose): distinct purposes are distinct keyed hash functions."""
    return hashlib.blake2b(purpose.encode() + _SEP + str(int(seed)).encode(), digest_size=32).digest()


def _digest64(doc_id: str, seed: int, purpose: str) -> int:
    h = hashlib.blake2b(doc_id.encode("utf-8", "surrogatepass"), digest_size=8, key=_key(seed, purpose))
    return int.from_bytes(h.digest(), "big")


def uniform(doc_id: str, seed: int, purpose: str) -> float:
    """A float in [0, 1) that is a pure function of its arguments (53 random bits, exactly representable).

    `purpose` names the decision ("split", "pareto", "mix", ...): two purposes give independent streams for the
    same document, so e.g. the validation split does not correlate with the quality filter's draw.
    """
    return (_digest64(doc_id, seed, purpose) >> 11) * _SCALE


def uniform_array(doc_ids: Iterable[str], seed: int, purpose: str) -> np.ndarray:
    """`uniform` over a batch, as float64; element i depends on doc_ids[i] alone."""
    return np.fromiter((uniform(d, seed, purpose) for d in doc_ids), dtype=np.float64)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that hashes are taken over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    raise TypeError(f"cannot hash value of type {type(value).__name__}")


def hash_value(value: Any, length: int = 16) -> str:
    """Hex fingerprint of a JSON-able value (dataclasses included), stable across processes and machines."""
    return hashlib.blake2b(canonical_json(value).encode(), digest_size=length).hexdigest()


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes, streamed; `path` may be any path object with `open` (etils.epath: gs://...)."""
    h = hashlib.sha256()
    with path.open("rb") if hasattr(path, "open") else open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()

