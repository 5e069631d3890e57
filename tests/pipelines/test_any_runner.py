"""What keeps the curate job correct on runners the other tests do not run (a distributed engine, fused stages):
no element-wise function changes its input, the job checks its written files before its stage publishes them, and
every runner's options pass the option check. The mixing job's counterparts are in test_mix_job.py.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from data_specs import specs
from data_specs.errors import GlamkitError
from data_specs.records import Document
from data_specs.specs import DedupSpec, KeepRuleSpec
from data_specs.stages import MARKER
from pipelines.beam import checks as job_checks
from pipelines.beam.options import RUNNER_OPTION_MODULES, declared_flags, options_parser, pipeline_options
from pipelines.curate import core, job, schema
from pipelines.curate.checks import check_curated
from pipelines.curate.plan import CuratePlan
from pipelines.dedup import config as dedup
from pipelines.dedup.features import CuratedFeatures
from pipelines.dedup.job import _apply
from pipelines.dedup.summary import snippet
from tests.pipelines.immutability import unchanged

FILES = {"samples": schema.SAMPLES_FILE, "dead": schema.DEAD_LETTER_FILE}


class _LongWordShare:
    """A quality scorer standing in for the fastText classifier (which needs a trained model): the share of words
    of five letters or more. Only its inputs matter here."""

    def score(self, texts: list[str]) -> np.ndarray:
        return np.array([sum(len(w) >= 5 for w in t.split()) / max(1, len(t.split())) for t in texts], np.float32)


def _line(doc: Document) -> bytes:
    return (json.dumps(doc.to_dict()) + "\n").encode()


@pytest.fixture(scope="module")
def records(read) -> list[core.RawRecord]:
    """Real Wikipedia articles and Usenet posts as read, a JSON line that does not parse and a Parquet-style row."""
    wiki, posts = read("gensim-enwiki").docs[:12], read("mini-newsgroup").docs[:12]
    raws = [core.RawRecord(d.source, d.component, f"{d.source}.jsonl.gz:{i}", _line(d))
            for i, d in enumerate(wiki + posts)]
    row = {k: v.encode() for k, v in wiki[-1].to_dict().items() if isinstance(v, str)}
    row["meta"] = [(k.encode(), v.encode()) for k, v in wiki[-1].meta.items()]
    return [*raws, core.RawRecord("gensim-enwiki", "wikipedia", "x.jsonl.gz:99", b"{not json"),
            core.RawRecord("gensim-enwiki", "wikipedia", "x.parquet:rg0:row0", {**row, "id": b"gensim-enwiki/row"})]


def _plan(out: Path) -> CuratePlan:
    spec = specs.load("mixtures", "demo")
    return CuratePlan(
        splits=(), components=("wikipedia", "forums"), rules={c: spec.rules_for(c) for c in ("wikipedia", "forums")},
        quality_components=("forums",), keep=KeepRuleSpec(kind="threshold", threshold=0.45), classifier_dir=None,
        out_dir=str(out), num_shards=2, samples_per_reason=2, seed=5, eval_holdout_fraction=0.15,
        dedup=dedup.config_for(DedupSpec(decontaminate=False), None))


def _tagged(outputs: list) -> dict[str | None, list]:
    out: dict[str | None, list] = {}
    for o in outputs:
        tag = getattr(o, "tag", None)
        value = o.value if tag is not None else o
        out.setdefault(tag, []).append(getattr(value, "value", value))  # finish_bundle's are windowed
    return out


# ------------------------------------------------------------------------------------------------ immutability
def test_curate_functions_leave_their_inputs_unchanged(records: list[core.RawRecord], tmp_path: Path) -> None:
    """The curate job by hand, element by element through its DoFns, CombineFns and the functions they call
    (dedup's included), each input compared with a deep copy afterwards; the outputs then pass the job's checks."""
    plan = _plan(tmp_path)
    pre = job._PreDedup(plan)
    with unchanged("_PreDedup", records):
        first = _tagged(list(pre.process(records)))
    with unchanged("pre_dedup", records):
        assert core.pre_dedup(records, plan.rules, (plan.seed, plan.eval_holdout_fraction)) == first[None]
    items = first[None]
    assert {it.outcome for it in items} == {"kept", "dropped", "errored"}  # every path is exercised

    config = plan.dedup
    alive = [it for it in items if it.alive]
    victim = dedup.node_of(config.rank_of(alive[0].component), alive[0].doc.id)
    index = (np.array([dedup.node_key(victim)], np.int64).tobytes(),
             np.array([dedup.REASONS.index(dedup.NEAR)], np.int64).tobytes())
    features = CuratedFeatures(config)
    judged = []
    for it in items:
        with unchanged("CuratedFeatures", it):
            list(features.process(it))
        with unchanged("snippet", it):
            list(snippet(it, {"roots": {alive[0].doc.id}}))
        with unchanged("_apply", it, index):
            judged.append(_apply(it, config, index))
    assert judged[items.index(alive[0])].drop_reason == dedup.NEAR and alive[0].alive

    scorer = _LongWordShare()
    to_score = [it for it in judged if it.alive and it.component in plan.quality_components]
    with unchanged("score_batch", to_score):
        scored = core.score_batch(to_score, scorer)
    with unchanged("apply_keep", scored):
        core.apply_keep(scored, plan.keep)
    rule = KeepRuleSpec(kind="top_fraction", fraction=0.5)
    fit = core.fit_keep([(it.doc.id, it.quality_score) for it in scored], rule)
    for it in scored:
        with unchanged("_keep_fitted", it, fit):
            job._keep_fitted(it, {"forums"}, {"forums": fit})
    score = job._Score(plan)
    score.clf = scorer
    with unchanged("_Score", judged):
        score.start_bundle()
        finished = [o for it in judged for o in score.process(it)] + _tagged(list(score.finish_bundle()))[None]
    assert sorted(it.locator for it in finished) == sorted(it.locator for it in judged)
    assert any(it.drop_reason == schema.QUALITY_REASON for it in finished)

    route = job._Route(plan)
    with unchanged("_Route", finished):
        route.start_bundle()
        routed = _tagged([o for it in finished for o in route.process(it)] + list(route.finish_bundle()))
    written: dict[str, list] = {}
    for tag, kind in ((None, "documents"), ("dropped", "dropped")):
        groups: dict = {}
        for key, it in routed[tag]:
            groups.setdefault(key, []).append(it)
        for element in sorted(groups.items()):
            with unchanged(f"_WriteShard({kind})", element):
                written.setdefault(kind, []).extend(job._WriteShard(plan, kind).process(element))
    by_reason: dict = {}
    for key, sample in routed["samples"]:
        by_reason.setdefault(key, []).append(sample)
    samples = [sorted(v)[: plan.samples_per_reason] for v in by_reason.values()]
    with unchanged("_WriteSamples", samples):
        list(job._WriteSamples(plan).process((None, samples)))
    dead = [r for _, r in routed["dead"]]
    with unchanged("_WriteDeadLetter", dead):
        list(job._WriteDeadLetter(plan).process((None, dead)))
    with unchanged("_WriteEmpty", written):
        job._WriteEmpty(plan).process(None, written.get("documents", []), written.get("dropped", []), [1], [1])

    stats_fn = job._StatsFn()
    reads, outcomes = stats_fn.create_accumulator(), stats_fn.create_accumulator()
    for r in first["read"]:
        with unchanged("_StatsFn.add_input", r):
            reads = stats_fn.add_input(reads, ("read", r))
    for o in routed["outcomes"]:
        with unchanged("_StatsFn.add_input", o):
            outcomes = stats_fn.add_input(outcomes, o)
    keep_rules = {"forums": core.keep_summary(plan.keep, None)}
    with unchanged("_WriteStats", reads, outcomes, keep_rules):
        job._WriteStats(plan).process(None, reads, outcomes, None, keep_rules)
    stats = json.loads((tmp_path / schema.STATS_FILE).read_text())
    check_curated(plan, stats, FILES)  # what the job checks after the runner's success

    (tmp_path / "dropped" / "forums" / schema.shard_name(2, 1)).unlink()
    with pytest.raises(job_checks.OutputCheckError, match=r"missing dropped/forums/part-00001-of-00002\.parquet"):
        check_curated(plan, stats, FILES)
    with gzip.open(tmp_path / schema.DEAD_LETTER_FILE, "wb") as f:
        f.write(b"")
    with pytest.raises(job_checks.OutputCheckError, match=r"dead_letter\.jsonl\.gz holds 0 records, stats\.json "
                                                          r"counts 1 errored"):
        check_curated(plan, stats, FILES)


def test_a_record_cannot_be_changed(records: list[core.RawRecord]) -> None:
    item = core.pre_dedup(records[:1], _plan(Path(".")).rules)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        item.drop_reason = "near_duplicate"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        records[0].payload = b""  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ output checks
MIXTURE = """
name: branch
seed: 1
components:
  wikipedia: {weight: 0.5, sources: [gensim-enwiki]}
  forums:    {weight: 0.5, sources: [mini-newsgroup]}
dedup: {exact: false, near: false, decontaminate: false}
"""


def test_a_branch_that_wrote_nothing_fails_the_job_and_publishes_nothing(read, tmp_path: Path, monkeypatch,
                                                                          capsys) -> None:
    """The documents writer reports every forums shard written but writes none (as a runner that skips a branch):
    the job fails with one line naming the missing files; RUN/curated and its completion marker never appear."""
    from data_specs.records import write_jsonl_gz
    from glamkit.cli import main

    run = tmp_path / "run"
    write_jsonl_gz(run / "sources" / "gensim-enwiki.jsonl.gz", read("gensim-enwiki").docs[:20])
    write_jsonl_gz(run / "sources" / "mini-newsgroup.jsonl.gz", read("mini-newsgroup").docs[:40])
    (run / "mixture.yaml").write_text(MIXTURE)
    real = job._WriteShard.process

    def skip_forums(self, element):  # type: ignore[no-untyped-def]
        (component, shard), _ = element
        if self.kind == "documents" and component == "forums":
            yield component, shard
            return
        yield from real(self, element)

    monkeypatch.setattr(job._WriteShard, "process", skip_forums)
    assert main(["curate", "--spec", str(run / "mixture.yaml"), "--run", str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glamkit: error: curate: "), err
    assert "missing documents/forums/part-00000-of-00008.parquet" in err[0]
    assert not (run / "curated").exists() and not list(run.rglob(MARKER))


# ------------------------------------------------------------------------------------------------ runner options
RUNNER_FLAGS = {
    "dask": ["--dask_client_address=127.0.0.1:8786", "--dask_connection_timeout", "30", "--dask_npartitions=4"],
    "flink": ["--runner=FlinkRunner", "--flink_master=flink-host:8081", "--parallelism=4",
              "--environment_type=DOCKER", "--environment_config=my-image"],
    "spark": ["--runner=SparkRunner", "--spark_master_url=spark://host:7077", "--spark_rest_url=http://host:6066"],
    "dataflow": ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                 "--temp_location=gs://bucket/tmp", "--sdk_container_image=my-image", "--max_num_workers=8"],
    "portable": ["--runner=PortableRunner", "--job_endpoint=localhost:8099", "--environment_type=EXTERNAL",
                 "--environment_config=localhost:50000"],
    "render": ["--runner=apache_beam.runners.render.RenderRunner", "--render_output=pipeline.svg"],
}


@pytest.mark.parametrize("runner", sorted(RUNNER_FLAGS))
def test_glamkit_curate_accepts_each_runners_options(runner: str) -> None:
    from glamkit.cli import Parser
    from glamkit.commands import curate as curate_cli

    flags = RUNNER_FLAGS[runner]
    parser = Parser(prog="glamkit")
    curate_cli.register(parser.add_subparsers(dest="command", parser_class=Parser))
    args = parser.parse_args(["curate", "--spec", "demo", "--run", "r", *flags])
    assert args.beam_args == flags
    options = pipeline_options(args.beam_args).get_all_options(retain_unknown_options=True)
    for name, value in (f.removeprefix("--").split("=", 1) for f in flags if "=" in f):
        got = options[name]  # a list for options that may repeat (--render_output)
        assert (got if isinstance(got, list) else [str(got)]) == [value]


def test_misspelt_runner_options_are_still_refused() -> None:
    for flag in ("--dask_client_adress=h:8786", "--flink_mastr=h:8081", "--spark_master=spark://h:7077"):
        with pytest.raises(GlamkitError, match=f"unknown Beam pipeline option.*{flag.split('=')[0]}"):
            pipeline_options([flag])
    with pytest.raises(GlamkitError, match="no_such_module cannot be imported here"):
        pipeline_options(["--runner=no_such_module.Runner"])


def test_every_option_class_beam_ships_with_a_runner_is_known() -> None:
    """Every PipelineOptions subclass in apache_beam/runners/ (outside the tests) is in a module the option check
    knows, and all its flags are: a Beam upgrade that adds a runner's options fails here, not on a user's cluster."""
    import apache_beam

    root = Path(apache_beam.__file__).parent
    found: dict[str, tuple[str, ...]] = {}
    for path in sorted((root / "runners").rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if path.name.endswith("_test.py") or "PipelineOptions)" not in text:
            continue
        flags = declared_flags(text)
        if flags:
            found[".".join(("apache_beam", *path.relative_to(root).with_suffix("").parts))] = flags
    assert set(found) == set(RUNNER_OPTION_MODULES)
    known = options_parser()._option_string_actions
    assert [f for flags in found.values() for f in flags if f not in known] == []
