"""The tokenizer, mix and report stages end to end on the real demo corpora, curated by the real curate job.

One run folder per session: the sources stage (shared `demo_sources_run`), the demo quality classifier, curate,
tokenizer, mix and report, each through the stage runner exactly as `glamkit curate/tokenizer/mix/report` run them.
The shards are then checked against the curated documents: shares vs weights, exact copies of repeated documents,
no validation document in training, every token unpacked and detokenized back to its document, byte-identical
reruns (in-process, 2 worker processes, SIGKILL mid-write then rerun), and `datasets` loading them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from data_specs import specs
from data_specs.hashing import uniform
from data_specs.shards import SHARD_SCHEMA, ShardManifest
from data_specs.tokenizer import load_tokenizer
from glamkit.commands import mix as mix_cli
from pipelines.curate.schema import curated_files, iter_curated
from pipelines.mix import stage as mix_stage
from pipelines.mix.rates import MIX_PURPOSE, TRAIN, VALIDATION, copies, split_of
from report import stage as report_stage
from tests.conftest import PYTHON, REPO
from tests.pipelines.curate_helpers import env, tree_digest

pytestmark = pytest.mark.slow
SPEC = "demo"


def _cli(run: Path, *args: str) -> list[str]:
    return [PYTHON, "-m", "glamkit.cli", *args, "--spec", SPEC, "--run", str(run)]


@pytest.fixture(scope="session")
def mixed_run(demo_run: Path) -> Path:
    """The session's demo run (tests/conftest.py): curated by the real curate job, then tokenizer, mix, report."""
    return demo_run


@pytest.fixture(scope="session")
def reference(mixed_run: Path, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    snapshot = tmp_path_factory.mktemp("reference") / "shards"
    shutil.copytree(mixed_run / "shards", snapshot)
    return snapshot, tree_digest(snapshot)


@pytest.fixture(scope="session")
def manifest(mixed_run: Path) -> ShardManifest:
    return ShardManifest.load(mixed_run / "shards" / "manifest.json")


@pytest.fixture(scope="session")
def unpacked(mixed_run: Path, manifest: ShardManifest) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray, str]]]:
    """split -> doc id -> (positions, tokens, component) of every piece of it in that split's shards."""
    out: dict[str, dict] = {}
    for split in (TRAIN, VALIDATION):
        pieces: dict[str, list] = defaultdict(list)
        for name in manifest.split_files(split):
            with pa.memory_map(str(mixed_run / "shards" / name)) as f:
                table = pa.ipc.open_file(f).read_all()
            assert table.schema.equals(SHARD_SCHEMA)
            n = table.num_rows
            toks = table.column("tokens").combine_chunks().flatten().to_numpy().reshape(n, manifest.seq_len)
            seg = table.column("segment_ids").combine_chunks().flatten().to_numpy().reshape(n, manifest.seq_len)
            pos = table.column("positions").combine_chunks().flatten().to_numpy().reshape(n, manifest.seq_len)
            for r, (ids, comps) in enumerate(zip(table.column("segment_doc_ids").to_pylist(),
                                                 table.column("segment_components").to_pylist(), strict=True)):
                for k, (doc, comp) in enumerate(zip(ids, comps, strict=True), 1):
                    sel = seg[r] == k
                    pieces[doc].append((pos[r][sel], toks[r][sel], comp))
        out[split] = {d: (np.concatenate([p[0] for p in v]), np.concatenate([p[1] for p in v]), v[0][2])
                      for d, v in pieces.items()}
    return out


# ------------------------------------------------------------------------------------------------ the mixture
def test_demo_budget_repeats_one_component_and_subsamples_another(manifest: ShardManifest) -> None:
    epochs = {c: m.epochs for c, m in manifest.components.items()}
    assert any(e > 1 for e in epochs.values()) and any(0 < e < 1 for e in epochs.values()), epochs
    assert 1e6 <= sum(m.tokens for m in manifest.components.values()) <= 5e6  # a few million tokens at most


def test_realised_shares_equal_the_weights_within_one_point(unpacked, manifest: ShardManifest) -> None:
    tokens: dict[str, int] = defaultdict(int)
    for pos, _, comp in unpacked[TRAIN].values():
        tokens[comp] += len(pos)
    total = sum(tokens.values())
    assert total == sum(s.tokens for s in manifest.shards if s.split == TRAIN)
    for c, m in manifest.components.items():
        assert abs(tokens[c] / total - m.target_weight) < 0.01, (c, tokens[c] / total, m.target_weight)
        assert tokens[c] == m.tokens


def test_repeated_documents_appear_floor_or_ceil_of_the_epochs(unpacked, manifest: ShardManifest) -> None:
    repeated = [c for c, m in manifest.components.items() if m.epochs > 1]
    assert repeated
    for c in repeated:
        rate = manifest.extra["rates"][c]["rate"]
        counts = [int(np.count_nonzero(pos == 0)) for pos, _, comp in unpacked[TRAIN].values() if comp == c]
        assert len(counts) == manifest.components[c].documents == manifest.extra["rates"][c]["documents_available"]
        assert set(counts) <= {math.floor(rate), math.ceil(rate)}, (c, rate, sorted(set(counts)))
        assert abs(np.mean(counts) - manifest.components[c].epochs) < 0.6


def test_no_validation_document_in_training(unpacked, manifest: ShardManifest) -> None:
    train, val = set(unpacked[TRAIN]), set(unpacked[VALIDATION])
    assert val and not train & val
    vf = manifest.extra["validation_fraction"]
    assert all(split_of(d, manifest.seed, vf) == VALIDATION for d in val)
    assert all(split_of(d, manifest.seed, vf) == TRAIN for d in train)


def test_packing_neither_loses_nor_duplicates_a_token(mixed_run: Path, unpacked, manifest: ShardManifest) -> None:
    """Every curated document: its expected copies (from the rule and the manifest's thresholds) are in the shards,
    every position exactly that many times with the right token; unpacked and detokenized it is the document."""
    sp = load_tokenizer(mixed_run / "tokenizer").processor()
    eos, vf, seed = manifest.extra["eos_id"], manifest.extra["validation_fraction"], manifest.seed
    seen = {TRAIN: set(), VALIDATION: set()}
    checked = 0
    for component, parts in curated_files(mixed_run / "curated").items():
        rate = manifest.extra["rates"][component]
        for part in parts:
            for batch in iter_curated(part):
                encoded = sp.encode([row["text"] for row in batch])
                for row, ids in zip(batch, encoded, strict=True):
                    split = split_of(row["id"], seed, vf)
                    want = 1 if split == VALIDATION else copies(uniform(row["id"], seed, MIX_PURPOSE), rate["whole"],
                                                                rate["threshold"])
                    if want == 0:
                        assert row["id"] not in unpacked[TRAIN] and row["id"] not in unpacked[VALIDATION]
                        continue
                    expected = np.array([*ids, eos], np.int32)
                    pos, toks, comp = unpacked[split][row["id"]]
                    assert comp == component
                    assert np.array_equal(np.bincount(pos, minlength=len(expected)), np.full(len(expected), want))
                    assert np.array_equal(toks, expected[pos])
                    rebuilt = np.empty(len(expected), np.int32)
                    rebuilt[pos] = toks
                    assert rebuilt[-1] == eos and sp.decode(rebuilt[:-1].tolist()) == row["text"]
                    seen[split].add(row["id"])
                    checked += 1
    assert seen[TRAIN] == set(unpacked[TRAIN]) and seen[VALIDATION] == set(unpacked[VALIDATION])
    assert checked > 1000


def test_manifest_describes_the_files(mixed_run: Path, manifest: ShardManifest) -> None:
    import hashlib

    per_shard = manifest.extra["sequences_per_shard"]
    for split in (TRAIN, VALIDATION):
        shards = [s for s in manifest.shards if s.split == split]
        assert all(s.rows == per_shard for s in shards[:-1]) and 0 < shards[-1].rows <= per_shard
    for s in manifest.shards:
        path = mixed_run / "shards" / s.file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == s.sha256
        with pa.memory_map(str(path)) as f:
            table = pa.ipc.open_file(f).read_all()
        assert table.num_rows == s.rows
        seg = table.column("segment_ids").combine_chunks().flatten().to_numpy()
        assert int(np.count_nonzero(seg)) == s.tokens
    assert manifest.tokenizer_hash == json.loads((mixed_run / "tokenizer" / "tokenizer.json").read_text())["sha256"]
    assert set(manifest.upstream) == {"curated", "tokenizer"}
    assert not list((mixed_run / "shards").glob(".*")), "no temporary files left behind"


def test_datasets_loads_the_shards(mixed_run: Path, manifest: ShardManifest, tmp_path: Path) -> None:
    from datasets import load_dataset

    files = {s: [str(mixed_run / "shards" / f) for f in manifest.split_files(s)] for s in (TRAIN, VALIDATION)}
    ds = load_dataset("arrow", data_files=files, cache_dir=str(tmp_path))
    for split in (TRAIN, VALIDATION):
        assert ds[split].num_rows == sum(s.rows for s in manifest.shards if s.split == split)
        assert ds[split].column_names == SHARD_SCHEMA.names
    row = ds[TRAIN][0]
    assert len(row["tokens"]) == len(row["positions"]) == manifest.seq_len
    assert len(row["segment_doc_ids"]) == max(row["segment_ids"])


# ------------------------------------------------------------------------------------------------ determinism
def _swap_out(run: Path) -> None:
    shutil.rmtree(run / "shards")


def test_rerun_is_byte_identical(mixed_run: Path, reference) -> None:
    result = mix_cli.run_stage(mixed_run, specs.spec_path("mixtures", SPEC), mix_stage,
                               force=True)
    assert result.state == "ran"
    assert tree_digest(mixed_run / "shards") == reference[1]


def test_two_worker_processes_give_identical_bytes(mixed_run: Path, reference) -> None:
    proc = subprocess.run(_cli(mixed_run, "mix", "--force", "--direct_num_workers=2",
                               "--direct_running_mode=multi_processing"),
                          cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree_digest(mixed_run / "shards") == reference[1]


def test_sigkill_mid_write_then_rerun_is_identical(mixed_run: Path, reference) -> None:
    _swap_out(mixed_run)
    tmp = mixed_run / ".shards.tmp"
    proc = subprocess.Popen(_cli(mixed_run, "mix"), cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if tmp.is_dir() and any(p.suffix == ".arrow" or ".arrow.tmp" in p.name for p in tmp.iterdir()):
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the job finished before it could be killed mid-write"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (mixed_run / "shards").exists(), "a killed run must leave no visible shards"
    rerun = subprocess.run(_cli(mixed_run, "mix"), cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert tree_digest(mixed_run / "shards") == reference[1]
    assert not tmp.exists()


def test_unchanged_rerun_is_skipped(mixed_run: Path) -> None:
    proc = subprocess.run(_cli(mixed_run, "mix"), cwd=REPO, env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "up to date" in proc.stdout


# ------------------------------------------------------------------------------------------------ report
def test_report_numbers_match_the_manifest(mixed_run: Path, manifest: ShardManifest) -> None:
    r = json.loads((mixed_run / "report" / "report.json").read_text())
    curated = json.loads((mixed_run / "curated" / "stats.json").read_text())
    for c, m in manifest.components.items():
        rc = r["components"][c]
        assert (rc["tokens_sampled"], rc["tokens_available"], rc["epochs"]) == (m.tokens, m.tokens_available,
                                                                                m.epochs)
        assert rc["documents_kept"] == curated["components"][c]["kept"]
        assert abs(rc["realised_weight"] - m.target_weight) < 0.01
        assert rc["samples"]["kept"], f"no kept sample for {c}"
    assert r["components"]["web"]["quality"] is not None and r["keep_curve"][-1] > r["keep_curve"][0]
    assert r["dedup"]["cluster_sizes"] == curated["dedup"]["cluster_sizes"]  # the report shows curate's clusters
    assert (mixed_run / "report.html").resolve() == (mixed_run / "report" / "report.html").resolve()


def test_report_html_is_self_contained(mixed_run: Path) -> None:
    import re

    page = (mixed_run / "report" / "report.html").read_text()
    assert not re.search(r'(src|href)="(?!data:)', page), "the page must load nothing"
    assert "<script" not in page
    assert len(re.findall(r'<figure class="plot"', page)) >= 7
    assert 'data-plot="dedup"' in page and "dedup not run" not in page


def test_report_is_byte_identical_on_rerun(mixed_run: Path) -> None:
    before = tree_digest(mixed_run / "report")
    mix_cli.run_stage(mixed_run, specs.spec_path("mixtures", SPEC), report_stage,
                      force=True)
    assert tree_digest(mixed_run / "report") == before


def test_report_shows_dedup_clusters_when_curate_has_them(mixed_run: Path) -> None:
    from report.html import render

    r = json.loads((mixed_run / "report" / "report.json").read_text())
    r["dedup"] = {"cluster_sizes": {"2": 40, "3": 6, "10": 1}}
    page = render(r)
    assert 'data-plot="dedup"' in page and "dedup not run" not in page


def test_report_draws_an_unfitted_auto_alpha(mixed_run: Path) -> None:
    """alpha "auto" that curation never fitted (no page reached the score): the curve is left out, no crash."""
    from report.html import render

    r = json.loads((mixed_run / "report" / "report.json").read_text())
    r["keep_rule"] = {"kind": "pareto", "alpha": "auto", "from": "spec"}
    r["keep_curve"] = None
    assert "<html" in render(r)


def test_headless_chromium_sees_every_plot_drawn(mixed_run: Path, tmp_path: Path) -> None:
    from scripts.check_report import find_browser

    if find_browser() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "report.png"
    proc = subprocess.run([PYTHON, "scripts/check_report.py", str(mixed_run / "report.html"), "--screenshot",
                           str(shot)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert shot.stat().st_size > 10_000
