"""The tokenizer hand-off format: what the tokenizer stage writes (RUN/tokenizer/tokenizer.model and tokenizer.json)
and the mix job, the report and eval read back. Training it is pipelines/tokenizer.py."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError

MODEL_FILE = "tokenizer.model"
INFO_FILE = "tokenizer.json"
PAD_ID, EOS_ID, UNK_ID, BOS_ID = 0, 1, 2, -1  # fixed for trained models (T5's layout); no BOS: EOS separates docs


@dataclass(frozen=True)
class Tokenizer:
    """A loaded model and the ids the shards use. `pad_id` is the model's, or its unk id if it has none (padding is
    marked by segment id 0 anyway)."""

    model: bytes
    sha256: str
    vocab_size: int
    eos_id: int
    pad_id: int

    def processor(self) -> Any:
        import sentencepiece as spm

        return spm.SentencePieceProcessor(model_proto=self.model)


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """The tokenizer stage's output folder -> Tokenizer."""
    folder = Path(folder)
    try:
        model = (folder / MODEL_FILE).read_bytes()
        info = json.loads((folder / INFO_FILE).read_text())
    except FileNotFoundError:
        raise GlamkitError(f"{folder}: no {MODEL_FILE}/{INFO_FILE}: run `glamkit tokenizer train` first") from None
    digest = hashlib.sha256(model).hexdigest()
    if digest != info["sha256"]:
        raise GlamkitError(f"{folder / MODEL_FILE}: sha256 {digest} does not match {INFO_FILE} ({info['sha256']})")
    return Tokenizer(model, digest, info["vocab_size"], info["eos_id"], info["pad_id"])
