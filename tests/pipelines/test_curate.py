"""The curate job on the real demo corpora: conservation, byte-identical outputs (1 vs 2 workers, two runs, a run
killed with SIGKILL and rerun), real Wikipedia and books kept, and the portable runner with an EXTERNAL worker pool.

One run folder is built per session (the session's demo sources, read by the sources stage; the demo classifier
trained on them) and curated once; the other runs land in the same folder (outputs embed their input paths as
provenance) and are compared with it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipelines.curate.schema import CURATED_SCHEMA, DROP_REASONS, DROPPED_SCHEMA, STATS_FILE
from pipelines.curate.stage import STAGE_NAME
from tests.conftest import REPO
from tests.pipelines.curate_helpers import (
    build_demo_run,
    curate_cmd,
    env,
    free_port,
    run_curate,
    start_service,
    tree_digest,
)

pytestmark = pytest.mark.slow
SPEC = "demo"


@pytest.fixture(scope="session")
def demo_run(demo_sources_run: Path, tmp_path_factory) -> Path:
    return build_demo_run(demo_sources_run, tmp_path_factory.mktemp("curate") / "run")


@pytest.fixture(scope="session")
def reference(demo_run: Path, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The embedded default runner's output (a snapshot outside the run folder) and its digest."""
    proc = run_curate(SPEC, demo_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    snapshot = tmp_path_factory.mktemp("reference") / STAGE_NAME
    shutil.copytree(demo_run / STAGE_NAME, snapshot)
    return snapshot, tree_digest(snapshot)


def _stats(folder: Path) -> dict:
    return json.loads((folder / STATS_FILE).read_text())


def test_conservation_and_outputs_agree_with_stats(reference: tuple[Path, dict]) -> None:
    out, digest = reference
    stats = _stats(out)
    comps = stats["components"]
    assert set(comps) == {"web", "wikipedia", "books", "news", "forums", "conversations"}
    for name, c in comps.items():
        assert c["read"] > 0, name
        assert c["read"] == c["kept"] + sum(c["dropped"].values()) + c["errored"], name
        assert set(c["dropped"]) <= set(DROP_REASONS), name
        assert sum(s["read"] for s in c["sources"].values()) == c["read"]
        kept = pq.read_table(out / "documents" / name)
        assert kept.num_rows == c["kept"] == sum(s["kept"] for s in c["sources"].values())
        assert kept.schema.remove_metadata() == CURATED_SCHEMA
        assert kept.column("drop_reason").null_count == kept.num_rows
        assert set(kept.column("component").to_pylist()) <= {name}
        assert sum(len(t.encode()) for t in kept.column("text").to_pylist()) == c["bytes_out"]
        dropped = pq.read_table(out / "dropped" / name)
        assert dropped.schema.remove_metadata() == DROPPED_SCHEMA
        assert dropped.num_rows == sum(c["dropped"].values())
        by_reason: dict[str, int] = {}
        for r in dropped.column("drop_reason").to_pylist():
            by_reason[r] = by_reason.get(r, 0) + 1
        assert by_reason == c["dropped"]
        if name == "web":  # the quality stage: every document that reached it has a score, kept or not
            assert kept.column("quality_score").null_count == 0
            assert sum(c["score_histogram"]) == c["kept"] + c["dropped"].get("quality", 0)
        else:
            assert kept.column("quality_score").null_count == kept.num_rows
    # the real sources carry no broken records: nothing errored, an empty dead-letter file
    assert stats["total"]["errored"] == 0
    with gzip.open(out / "dead_letter.jsonl.gz", "rt") as f:
        assert f.read() == ""
    # shards: a fixed set per component, sorted by id, each id in the shard its hash names
    for name in comps:
        files = sorted((out / "documents" / name).glob("*.parquet"))
        assert [f.name for f in files] == [f"part-{i:05d}-of-00008.parquet" for i in range(8)]
        for f in files:
            ids = pq.read_table(f, columns=["id"]).column("id").to_pylist()
            assert ids == sorted(ids)
    assert not [p for p in digest if Path(p).name.startswith(".")], "temporary files left in the output"
    # bounded samples of dropped documents, per (component, reason)
    with gzip.open(out / "samples" / "dropped.jsonl.gz", "rt") as f:
        samples = [json.loads(line) for line in f]
    counts: dict[tuple[str, str], int] = {}
    for s in samples:
        counts[(s["component"], s["drop_reason"])] = counts.get((s["component"], s["drop_reason"]), 0) + 1
        assert len(s["text"]) <= 4000
    assert all(n <= 20 for n in counts.values())
    assert set(counts) == {(c, r) for c, v in comps.items() for r in v["dropped"]}


def test_real_wikipedia_and_books_are_kept(reference: tuple[Path, dict]) -> None:
    """Rules that drop real Wikipedia articles or plays are bugs. No book or play is dropped by a rule (only held out
    for eval, or as the second edition of a play, or for overlapping a held-out one); Wikipedia loses at most list
    pages to the rules (a list of names that language ID cannot place, a list of rivers that repeats its phrasing)."""
    out, _ = reference
    comps = _stats(out)["components"]
    not_rules = {"eval_holdout", "exact_duplicate", "near_duplicate", "contaminated"}
    assert set(comps["books"]["dropped"]) <= not_rules
    wiki = comps["wikipedia"]
    assert sum(n for r, n in wiki["dropped"].items() if r not in not_rules) <= 0.03 * wiki["read"]
    with gzip.open(out / "samples" / "dropped.jsonl.gz", "rt") as f:
        dropped_wiki = [row for row in map(json.loads, f) if row["component"] == "wikipedia"
                        and row["drop_reason"] not in not_rules]
    for doc in dropped_wiki:
        lines = [ln for ln in doc["text"].split("\n") if ln.strip()]
        prose = [ln for ln in lines if ln.rstrip().endswith((".", "?", "!", '"')) and len(ln.split()) >= 8]
        assert len(prose) < 0.5 * len(lines), f"prose article dropped by {doc['drop_reason']}: {doc['meta']}"


def test_two_workers_give_identical_bytes(demo_run: Path, reference: tuple[Path, dict]) -> None:
    proc = run_curate(SPEC, demo_run, "--force", "--direct_num_workers=2", "--direct_running_mode=multi_processing")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree_digest(demo_run / STAGE_NAME) == reference[1]
    log = (demo_run / "logs" / f"{STAGE_NAME}.log").read_text()
    assert "--direct_num_workers=2" in log  # timings and runner settings go to the log, never the outputs


def test_sigkill_mid_run_then_rerun_is_identical(demo_run: Path, reference: tuple[Path, dict]) -> None:
    shutil.rmtree(demo_run / STAGE_NAME)
    tmp = demo_run / f".{STAGE_NAME}.tmp"
    proc = subprocess.Popen(curate_cmd(SPEC, demo_run), cwd=REPO, env=env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if tmp.is_dir() and any(tmp.rglob("*.parquet")):  # the job is writing its outputs
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (demo_run / STAGE_NAME).exists(), "a killed job must leave no visible output"
    assert tmp.exists()  # its partial work stays hidden, and the rerun clears it
    rerun = run_curate(SPEC, demo_run)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not tmp.exists()
    assert tree_digest(demo_run / STAGE_NAME) == reference[1]


def test_rerun_with_nothing_changed_is_skipped(demo_run: Path, reference: tuple[Path, dict]) -> None:
    proc = run_curate(SPEC, demo_run)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "up to date" in proc.stdout


SMALL_MIXTURE = """
name: small
seed: 7
components:
  web:       {weight: 0.5, quality_filter: true, sources: [iana-warc, trafilatura-pages]}
  wikipedia: {weight: 0.3, sources: [gensim-enwiki]}
  forums:    {weight: 0.2, sources: [mini-newsgroup]}
rules:
  forums: {min_words: 20}
quality:
  classifier: demo
  keep: {kind: pareto, alpha: 9.0, seed: 7}
"""


def test_portable_runner_with_external_worker_pool(demo_run: Path, tmp_path: Path) -> None:
    """Beam's local job service and an EXTERNAL worker pool, both on loopback: the pipeline is serialised into a
    portable job and runs in another process, as on Dataflow or Flink. Same bytes as the in-process runner."""
    run = tmp_path / "run"
    (run / "sources").mkdir(parents=True)
    for name in ("iana-warc", "trafilatura-pages", "gensim-enwiki", "mini-newsgroup"):
        shutil.copy(demo_run / "sources" / f"{name}.jsonl.gz", run / "sources")
    shutil.copytree(demo_run / "classifier", run / "classifier")
    spec = tmp_path / "small.yaml"
    spec.write_text(SMALL_MIXTURE)
    local = run_curate(spec, run)
    assert local.returncode == 0, local.stderr[-3000:]
    expected = tree_digest(run / STAGE_NAME)
    job_port, worker_port = free_port(), free_port()
    job = start_service("job", job_port, tmp_path / "job.log")
    worker = start_service("worker", worker_port, tmp_path / "worker.log")
    try:
        portable = run_curate(spec, run, "--force", "--runner=PortableRunner", f"--job_endpoint=localhost:{job_port}",
                              "--environment_type=EXTERNAL", f"--environment_config=localhost:{worker_port}")
    finally:
        for proc in (job, worker):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert portable.returncode == 0, portable.stderr[-3000:]
    assert "Control channel established" in (tmp_path / "worker.log").read_text()  # the external worker did the work
    assert tree_digest(run / STAGE_NAME) == expected
    stats = _stats(run / STAGE_NAME)
    assert set(stats["components"]) == {"web", "wikipedia", "forums"}
    assert all(v["read"] > 0 for v in stats["components"].values())


def test_top_fraction_keep_rule_uses_a_component_wide_cutoff(demo_run: Path, tmp_path: Path) -> None:
    """top_fraction needs every score of the component (a side input): it keeps exactly round(fraction x scored)."""
    from data_specs import specs
    from pipelines.curate.job import curate

    spec_path = tmp_path / "top.yaml"
    spec_path.write_text(SMALL_MIXTURE.replace("{kind: pareto, alpha: 9.0, seed: 7}",
                                               "{kind: top_fraction, fraction: 0.5, seed: 7}"))
    stats = curate(specs.load("mixtures", spec_path), demo_run, tmp_path / "out")
    web = stats["components"]["web"]
    scored = sum(web["score_histogram"])
    assert scored > 0 and web["kept"] == round(0.5 * scored)
    kept = pq.read_table(tmp_path / "out" / "documents" / "web").column("quality_score").to_pylist()
    dropped = [r["quality_score"] for r in pq.read_table(tmp_path / "out" / "dropped" / "web").to_pylist()
               if r["drop_reason"] == "quality"]
    assert min(kept) >= max(dropped)


@pytest.mark.parametrize("keep", ["{kind: pareto, alpha: auto, seed: 7}",
                                  "{kind: pareto, alpha: auto, target_keep: 0.3, seed: 7}"])
def test_alpha_auto_is_fitted_on_the_scored_pages_and_applied(demo_run: Path, tmp_path: Path, keep: str) -> None:
    """alpha auto: curation fits alpha on every score of the component (to the classifier's held-out positives, or
    to a keep fraction), applies exactly that alpha, and says so in stats.json."""
    import numpy as np

    from data_specs import specs
    from filters.keep import keep_probability, pareto_keep
    from pipelines.curate.job import curate

    spec_path = tmp_path / "auto.yaml"
    spec_path.write_text(SMALL_MIXTURE.replace("{kind: pareto, alpha: 9.0, seed: 7}", keep))
    stats = curate(specs.load("mixtures", spec_path), demo_run, tmp_path / "out")
    rule = stats["keep_rules"]["web"]
    cal = rule["calibration"]
    assert rule["rule"].startswith("pareto alpha auto") and rule["applied"] == f"pareto alpha {rule['alpha']:g}"
    assert cal["alpha"] == rule["alpha"] > 0 and cal["candidates"] == sum(stats["components"]["web"]["score_histogram"])
    rows = pq.read_table(tmp_path / "out" / "documents" / "web").to_pylist() + [
        r for r in pq.read_table(tmp_path / "out" / "dropped" / "web").to_pylist() if r["drop_reason"] == "quality"]
    ids = [r["id"] for r in rows]
    scores = np.array([r["quality_score"] for r in rows], dtype=np.float32)
    kept = {r["id"] for r in rows if r["drop_reason"] is None}
    assert {i for i, k in zip(ids, pareto_keep(ids, scores, rule["alpha"], 7), strict=True) if k} == kept
    if "target_keep" in keep:
        assert cal["method"] == "keep_rate" and float(keep_probability(scores, rule["alpha"]).mean()) == \
            pytest.approx(0.3, abs=1e-4)
    else:
        assert cal["method"] == "reference_ks" and cal["reference"] > 0 and 0 <= cal["ks"] < 1


def test_calibrate_cli_prints_alpha_curve_and_keep_rate(demo_run: Path, reference: tuple[Path, dict],
                                                        tmp_path: Path) -> None:
    from tests.conftest import PYTHON

    (tmp_path / "curated").symlink_to(reference[0])  # candidates: the pages that reached the quality score
    model = tmp_path / "classifier"
    shutil.copytree(demo_run / "classifier", model)
    proc = subprocess.run([PYTHON, "-m", "glamkit.cli", "classifier", "calibrate", "--run", str(tmp_path),
                           "--mixture", "demo", "--model", str(model)], cwd=REPO, env=env(), capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    record = json.loads((model / "calibration.json").read_text())
    assert f"fitted alpha {record['alpha']:.3f}" in proc.stdout
    assert "keep curve P(keep | score)" in proc.stdout and f"{record['expected_keep_rate']:.1%} expected" in proc.stdout
    assert "reached the quality score" in record["candidates_from"]
    assert (model / "calibration.png").read_bytes().startswith(b"\x89PNG")
