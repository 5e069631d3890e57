"""The mix job on a small curated layout of real text (Botchan, Lee's news stories, Usenet posts), in seconds: edge
cases the demo run does not reach (no validation split, components with no documents, the plain Bernoulli rule)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pyarrow as pa
import pytest

from data_specs import specs
from data_specs.shards import ShardManifest
from pipelines.mix import job as mix
from pipelines.tokenizer import build_tokenizer
from tests.pipelines.test_tokenizer import SOURCES, _read


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    import pyarrow.parquet as pq

    from pipelines.curate.schema import CURATED_SCHEMA

    run = tmp_path_factory.mktemp("mixjob")
    for source, component in SOURCES.items():
        rows = [{**d.to_dict(), "meta": list(d.meta.items()), "quality_score": None, "drop_reason": None}
                for d in _read(source)]
        out = run / "curated" / "documents" / component
        out.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows, schema=CURATED_SCHEMA), out / "part-00000-of-00001.parquet",
                       row_group_size=64)
    build_tokenizer(_spec(), run / "curated", run / "tokenizer")
    return run


def _spec(**mixing):
    return specs.load("mixtures", "demo", {"tokenizer.vocab_size": 1000, "tokenizer.sample_documents": 600,
                                           "mixing.seq_len": 64, "mixing.sequences_per_shard": 100,
                                           "mixing.budget_tokens": 150_000,
                                           **{f"mixing.{k}": v for k, v in mixing.items()}})


def _run(small_run: Path, out: str, **mixing) -> ShardManifest:
    mix.mix(_spec(**mixing), small_run / "curated", small_run / "tokenizer", small_run / out)
    return ShardManifest.load(small_run / out / "manifest.json")


def test_no_validation_split_and_empty_components(small_run: Path) -> None:
    m = _run(small_run, "a", validation_fraction=0.0, budget_tokens=600_000)
    assert m.split_files("validation") == [] and m.split_files("train")
    for c in ("web", "wikipedia", "conversations"):  # in the mixture, no curated documents here
        assert (m.components[c].tokens_available, m.components[c].tokens, m.components[c].epochs) == (0, 0, 0.0)
    books = m.components["books"]  # Botchan alone: one document, repeated whole
    assert books.documents == 1 and books.epochs >= 1
    assert sum(s.tokens for s in m.shards) == sum(c.tokens for c in m.components.values())


def test_a_target_whole_documents_cannot_meet_is_a_warning(small_run: Path) -> None:
    m = _run(small_run, "d")  # books is Botchan alone (~100K tokens) against a target of 30K: 0 or 100K
    warnings = m.extra["warnings"]
    assert any(w.startswith("books: 0 tokens planned for a target of 30,000 (1 documents") for w in warnings)
    assert any(w.startswith("web: 0 tokens planned") and "no curated documents" in w for w in warnings)
    assert not any(w.startswith(("news", "forums")) for w in warnings)


def test_plain_rule_keeps_documents_below_the_fractional_rate(small_run: Path) -> None:
    m = _run(small_run, "b", exact_tokens=False)
    for c in ("news", "forums", "books"):
        rate = m.extra["rates"][c]
        assert rate["threshold"] == pytest.approx(rate["rate"] - math.floor(rate["rate"]))
        assert rate["whole"] == math.floor(rate["rate"])


def test_every_row_has_seq_len_tokens_and_segments_number_from_one(small_run: Path) -> None:
    m = _run(small_run, "c")
    for name in m.split_files("train"):
        with pa.memory_map(str(small_run / "c" / name)) as f:
            t = pa.ipc.open_file(f).read_all()
        for toks, seg, ids in zip(t.column("tokens").to_pylist(), t.column("segment_ids").to_pylist(),
                                  t.column("segment_doc_ids").to_pylist(), strict=True):
            assert len(toks) == len(seg) == m.seq_len
            used = sorted(set(seg) - {0})
            assert used == list(range(1, len(ids) + 1))


# ------------------------------------------------------------------------------------------------ any runner
def test_mix_functions_leave_their_inputs_unchanged(small_run: Path, tmp_path: Path) -> None:
    """The mixing job by hand, element by element through its DoFns and the functions they call, each input
    compared with a deep copy afterwards (Beam's model: a runner may hand one object to several consumers). What it
    writes is the Beam job's output, byte for byte."""
    import dataclasses

    from tests.pipelines.immutability import unchanged

    job = mix.make_job(_spec(), small_run / "curated", small_run / "tokenizer", tmp_path / "by-hand")
    Path(job.out_dir).mkdir()
    tokenize = mix._Tokenize(job)
    tokenize.setup()
    docs = []
    for part in job.parts:
        with unchanged("read_part", part):
            batches = list(mix.read_part(part))
        for batch in batches:
            with unchanged("_Tokenize", batch):
                docs += list(tokenize.process(batch))
    sizes = [(d[0], d[1], d[2], len(d[3])) for d in docs]
    with unchanged("make_plan", sizes):
        plan = mix.make_plan(sizes, job)
    buckets: dict = {}
    for doc in docs:
        with unchanged("expand", doc, plan):
            for key, unit in mix.expand(doc, plan, job.seed):
                buckets.setdefault(key, []).append(unit)
    rows, counts = [], []
    for element in sorted(buckets.items()):
        with unchanged("_Pack", element):
            for out in mix._Pack(job).process(element):
                (counts.append(out.value) if hasattr(out, "tag") else rows.append(out))
    with unchanged("offsets", counts):
        layout = mix.offsets(counts)
    shards: dict = {}
    for element in rows:
        with unchanged("_Place", element, layout):
            for key, value in mix._Place(job).process(element, layout):
                shards.setdefault(key, []).append(value)
    records = []
    for element in sorted(shards.items()):
        with unchanged("_WriteShard", element, layout):
            records += list(mix._WriteShard(job).process(element, layout))
    with unchanged("write_outputs", records, plan):
        mix.write_outputs(records, plan, job)

    mix.run_job(dataclasses.replace(job, out_dir=str(tmp_path / "beam")))
    files = {p.name: p.read_bytes() for p in sorted((tmp_path / "by-hand").iterdir())}
    assert len(files) > 3 and files == {p.name: p.read_bytes() for p in sorted((tmp_path / "beam").iterdir())}


def test_a_shard_the_writer_lost_fails_the_job_and_publishes_nothing(small_run: Path, tmp_path: Path, monkeypatch,
                                                                      capsys) -> None:
    """The shard writer reports train shard 0 written, but the file is gone (as when a runner loses a branch's
    work): `glamkit mix` fails with one line naming it; RUN/shards and its completion marker never appear."""
    import shutil

    from data_specs.stages import MARKER
    from glamkit.cli import main

    run = tmp_path / "run"
    for folder in ("curated", "tokenizer"):
        shutil.copytree(small_run / folder, run / folder)
    real = mix._WriteShard.process

    def lose_train_shard_0(self, element, layout):  # type: ignore[no-untyped-def]
        for record in real(self, element, layout):
            if element[0] == ("train", 0):
                (Path(self.out_dir) / record["file"]).unlink()
            yield record

    monkeypatch.setattr(mix._WriteShard, "process", lose_train_shard_0)
    sets = ["mixing.seq_len=64", "mixing.sequences_per_shard=100", "mixing.budget_tokens=150000"]
    assert main(["mix", "--spec", "demo", "--run", str(run), *(a for s in sets for a in ("--set", s))]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glamkit: error: mix: "), err
    assert re.search(r"missing train-00000-of-\d{5}\.arrow", err[0]), err[0]
    assert not (run / "shards").exists() and not list(run.rglob(MARKER))
