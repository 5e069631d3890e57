"""The tokenizer stage on real text (Botchan, Lee's news stories, Usenet posts) in the curated layout: fixed ids,
identical model bytes from two trainings, lossless round trips, a sample that follows the weights, and the
pre-trained SentencePiece model from the mistral-common wheel."""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.tokenizer import EOS_ID, PAD_ID, UNK_ID, load_tokenizer
from pipelines.curate.schema import CURATED_SCHEMA
from pipelines.tokenizer import build_tokenizer, read_curated_texts, sample_pieces, text_pieces

SOURCES = {"botchan": "books", "lee-background": "news", "mini-newsgroup": "forums"}


def _read(name: str) -> list:
    """One source's documents, read by the sources code from its cached package (seconds, not the whole demo)."""
    from sources.read import SourceStats, read_source
    from sources.resolve import fetch_sources, resolve_files

    spec = specs.load("sources", name)
    fetch_sources([spec])
    files, roots = resolve_files(spec)
    return sorted(read_source(spec, files, roots, SourceStats(spec.component)), key=lambda d: d.id)


@pytest.fixture(scope="module")
def curated(tmp_path_factory) -> Path:
    """RUN/curated/documents/<component>/part-*.parquet from real source documents (the curate job's layout)."""
    root = tmp_path_factory.mktemp("tok") / "curated"
    for source, component in SOURCES.items():
        docs = _read(source)
        rows = [{**d.to_dict(), "meta": list(d.meta.items()), "quality_score": None, "drop_reason": None}
                for d in docs]
        out = root / "documents" / component
        out.mkdir(parents=True)
        half = len(rows) // 2
        for i, part in enumerate((rows[:half], rows[half:])):
            pq.write_table(pa.Table.from_pylist(part, schema=CURATED_SCHEMA), out / f"part-{i:05d}-of-00002.parquet")
    return root


def _spec(**tok):
    overrides = {"tokenizer.vocab_size": 1000, "tokenizer.sample_documents": 600, **{f"tokenizer.{k}": v
                                                                                     for k, v in tok.items()}}
    return specs.load("mixtures", "demo", overrides)


def test_two_trainings_give_identical_bytes_and_fixed_ids(curated: Path, tmp_path: Path) -> None:
    a = build_tokenizer(_spec(), curated, tmp_path / "a")
    b = build_tokenizer(_spec(), curated, tmp_path / "b")
    assert (tmp_path / "a" / "tokenizer.model").read_bytes() == (tmp_path / "b" / "tokenizer.model").read_bytes()
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()
    assert (a["pad_id"], a["eos_id"], a["unk_id"], a["vocab_size"]) == (PAD_ID, EOS_ID, UNK_ID, 1000)
    assert a == b
    tok = load_tokenizer(tmp_path / "a")
    sp = tok.processor()
    assert sp.id_to_piece(PAD_ID) == "<pad>" and sp.id_to_piece(EOS_ID) == "</s>"


def test_round_trip_is_lossless_on_real_documents(curated: Path, tmp_path: Path) -> None:
    build_tokenizer(_spec(), curated, tmp_path)
    sp = load_tokenizer(tmp_path).processor()
    texts = [t for _, _, t in read_curated_texts(curated)]
    texts += ["  two  spaces\tand a tab\n\nnewlines, digits 12345, ünïcödé, 漢字 and emoji 🙂"]
    for text in random.Random(0).sample(texts, 40) + texts[-1:]:
        ids = sp.encode(text)
        assert UNK_ID not in ids, "byte fallback must cover every character"
        assert sp.decode(ids) == text


def test_bpe_trains_too(curated: Path, tmp_path: Path) -> None:
    info = build_tokenizer(_spec(model_type="bpe"), curated, tmp_path)
    assert info["model_type"] == "bpe" and info["eos_id"] == EOS_ID


def test_sample_follows_the_weights_and_not_the_input_order() -> None:
    rnd = random.Random(0)
    docs = [(c, f"{c}/{i}", "\n".join(f"line {j} of {c} {i} " * 3 for j in range(rnd.randint(1, 40))))
            for c in ("books", "news", "web") for i in range(200)]
    weights = {"books": 0.5, "news": 0.3, "web": 0.2}
    sample = sample_pieces(docs, weights, 300, seed=1, piece_chars=200)
    assert {c: len(p) for c, p in sample.items()} == {"books": 150, "news": 90, "web": 60}
    rnd.shuffle(docs)
    assert sample_pieces(docs, weights, 300, seed=1, piece_chars=200) == sample
    assert sample_pieces(docs, weights, 300, seed=2, piece_chars=200) != sample


def test_a_small_component_gives_what_it_has_and_is_never_repeated() -> None:
    docs = [("web", "web/0", "just one short page"), *[("books", f"b/{i}", f"book {i}") for i in range(100)]]
    sample = sample_pieces(docs, {"web": 0.5, "books": 0.5}, 100, seed=0, piece_chars=100)
    assert sample["web"] == ["just one short page"] and len(sample["books"]) == 50


def test_text_pieces_cut_on_lines_and_keep_every_line() -> None:
    text = "\n".join(f"line {i} " + "x" * (i % 50) for i in range(300)) + "\n" + "y" * 1000
    pieces = text_pieces(text, 120)
    assert all(len(p) <= 120 for p in pieces)
    assert "".join(p.replace("\n", "") for p in pieces) == text.replace("\n", "")


def test_pretrained_model_from_the_mistral_common_wheel(tmp_path: Path) -> None:
    spec = specs.load("mixtures", "demo", {"tokenizer.kind": "pretrained", "tokenizer.pretrained": "mistral-v1"})
    info = build_tokenizer(spec, None, tmp_path)
    assert info["vocab_size"] == 32000 and info["eos_id"] == 2
    assert info["pretrained"] == "mistral-common==1.13.1:mistral_common/data/tokenizer.model.v1"
    sp = load_tokenizer(tmp_path).processor()
    assert sp.decode(sp.encode("The quick brown fox.")) == "The quick brown fox."


def test_unknown_pretrained_name_is_one_clear_error(tmp_path: Path) -> None:
    spec = specs.load("mixtures", "demo", {"tokenizer.kind": "pretrained", "tokenizer.pretrained": "no-such-model"})
    with pytest.raises(GlamkitError, match="no-such-model"):
        build_tokenizer(spec, None, tmp_path)
