"""The data-quality study: arms differ only in the web filter, and the report states what the numbers say."""

import json
from pathlib import Path

import pytest

from data_specs import specs
from data_specs.loader import from_mapping, to_plain
from data_specs.specs import ArmSpec, MixtureSpec, StudySpec
from glamkit.study import arm_mixture, summarise
from report.study import write_report


def test_arms_differ_only_in_the_web_filter_and_share_the_tokenizer(tmp_path: Path) -> None:
    base = to_plain(specs.load("mixtures", "demo"))
    filtered = arm_mixture(base, True, None)
    unfiltered = arm_mixture(base, False, tmp_path / "tokenizer.model")
    assert filtered == base
    changed = {k for k in base if base[k] != unfiltered[k]}
    assert changed == {"components", "tokenizer"}
    assert {k for k in base["components"] if base["components"][k] != unfiltered["components"][k]} == {"web"}
    assert unfiltered["components"]["web"] == {**base["components"]["web"], "quality_filter": False}
    assert unfiltered["tokenizer"]["pretrained"] == str(tmp_path / "tokenizer.model")
    from_mapping(MixtureSpec, unfiltered, "arm")  # still a valid mixture


def _fake_study(tmp_path: Path, values: dict[str, list[float]]) -> StudySpec:
    """Per seed, lm-eval's results for lambada-books as the eval stage writes them; the tasks folder's YAML tags it
    NLG."""
    study = StudySpec(name="t", mixture="demo", train="tiny", tasks=("lambada-books",), seeds=(0, 1, 2),
                      arms=(ArmSpec("filtered", True), ArmSpec("unfiltered", False)))
    (tmp_path / "common" / "tasks").mkdir(parents=True)
    (tmp_path / "common" / "tasks" / "lambada-books.yaml").write_text(
        "task: lambada-books\ntag: [glamkit-nlg]\ndataset_path: json\noutput_type: generate_until\n")
    for arm, vals in values.items():
        for seed, v in zip(study.seeds, vals, strict=True):
            folder = tmp_path / arm / f"seed-{seed}"
            (folder / "eval").mkdir(parents=True)
            results = {"results": {"lambada-books": {"alias": "lambada-books", "exact_match,remove_whitespace": v,
                                                     "exact_match_stderr,remove_whitespace": 0.01}},
                       "higher_is_better": {"lambada-books": {"exact_match": True}}}
            (folder / "eval" / "results.json").write_text(json.dumps(results))
            (folder / "train").mkdir()
            (folder / "train" / "metrics.jsonl").write_text(
                "".join(json.dumps({"step": s, "loss": 5.0 - s / 10, **({"val_loss": 4.0} if s == 3 else {})}) + "\n"
                        for s in (1, 2, 3)))
    return study


def test_clear_difference_is_reported_significant(tmp_path: Path) -> None:
    study = _fake_study(tmp_path, {"filtered": [0.30, 0.31, 0.32], "unfiltered": [0.10, 0.11, 0.12]})
    summary = summarise(study, tmp_path)
    row = summary["rows"][0]
    assert (row["task"], row["metric"], row["group"]) == ("lambada-books", "exact_match,remove_whitespace", "nlg")
    assert row["difference"] == pytest.approx(0.2)
    assert row["significant"] and row["better"] == "filtered" and row["p_value"] < 0.01
    assert row["arms"]["filtered"]["ci_low"] < 0.31 < row["arms"]["filtered"]["ci_high"]
    assert summary["verdict"].startswith("NLG: filtered better on 1, unfiltered better on 0 of 1 metrics; significant")
    write_report(summary, tmp_path / "study.html")
    page = (tmp_path / "study.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "Welch" in page


def test_noise_is_reported_as_not_significant(tmp_path: Path) -> None:
    study = _fake_study(tmp_path, {"filtered": [0.30, 0.10, 0.22], "unfiltered": [0.12, 0.28, 0.20]})
    summary = summarise(study, tmp_path)
    assert not summary["rows"][0]["significant"]
    assert "no difference is significant at 95% with 3 seeds" in summary["verdict"]


@pytest.mark.slow
def test_builtin_tasks_share_no_13gram_with_either_arms_training_shards(demo_run: Path, tmp_path: Path) -> None:
    import shutil

    import numpy as np
    import pyarrow as pa

    from data_specs.tokenizer import load_tokenizer
    from filters.dedup import TaskIndex, ngram_hashes, task_folder_texts, word_hashes, words
    from glamkit.study import prepare_arms

    study = specs.load("studies", "demo")
    # The shared stages and the filtered arm (the demo mixture itself) are the session's demo run: the runner finds
    # their keys unchanged and skips them, so only the unfiltered arm is curated, tokenized and mixed here.
    for name in ("sources", "tasks", "classifier"):
        shutil.copytree(demo_run / name, tmp_path / "common" / name)
    for name in ("curated", "tokenizer", "shards", "report"):
        shutil.copytree(demo_run / name, tmp_path / "filtered" / name)
    arms = prepare_arms(study, tmp_path)
    assert [a.name for a in arms] == ["filtered", "unfiltered"]
    web = [json.loads((a / "curated" / "stats.json").read_text())["components"]["web"]["kept"] for a in arms]
    assert web[0] < web[1]  # the arms really differ

    index = TaskIndex.build(task_folder_texts(tmp_path / "common" / "tasks"), 13)
    assert len(index) > 10_000
    for arm in arms:
        sp = load_tokenizer(arm / "tokenizer").processor()
        grams, segments = [], 0
        for shard in sorted((arm / "shards").glob("*.arrow")):
            table = pa.ipc.open_file(shard).read_all()
            for tokens, seg in zip(table.column("tokens").to_pylist(), table.column("segment_ids").to_pylist(),
                                   strict=True):
                tokens, seg = np.asarray(tokens), np.asarray(seg)
                for s in np.unique(seg[seg > 0]):
                    text = sp.decode(tokens[seg == s].tolist())
                    grams.append(ngram_hashes(word_hashes(words(text)), 13, short=False))
                    segments += 1
        assert segments > 1000
        shared = index.matches(np.unique(np.concatenate(grams)))
        assert shared == (), f"{arm.name}: {len(shared)} task 13-grams in the training shards, tasks " \
                             f"{sorted({t for g in shared for t in index.tasks_of(g)})}"
