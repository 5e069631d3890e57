"""The recipe's stage keys: a change reruns exactly the stages that depend on it."""

from pathlib import Path

import yaml

from data_specs.hashing import hash_value
from data_specs.loader import to_plain
from data_specs.specs import spec_path
from glamkit.recipe import STAGES, layout, stage_help, stage_names

# What each demo stage's key is made of, recorded on the tree before issue 21 moved the stages (version, hash of
# its config, the stages it needs): a refactor that changes one would rerun every existing run.
DEMO_KEYS = {
    "sources": ["3", "447ce99a42307308ac241fa8bb3908c7", []],
    "tasks": ["4", "4044023355c96953e4ab2dead984dd63", ["sources"]],
    "classifier": ["1", "728580cd3deade2573910b11535f54d2", ["sources"]],
    "curated": ["3", "3be0068825d7fb179920070020838b1a", ["sources", "tasks", "classifier"]],
    "tokenizer": ["1", "ed218279dcee1f49809917378c754ad2", ["curated"]],
    "shards": ["1", "12f73fde123c1750af39f1a59523595b", ["curated", "tokenizer"]],
    "report": ["2", "2c9a0b565f0baa11509f111c239ae4c1", ["curated", "tokenizer", "shards"]],
    "train": ["1", "e5ae5974388974e31f6e881f20f71e07", ["shards"]],
    "eval": ["2", "69670b7949beb440cb279e3a7eb5917a", ["train", "tokenizer", "tasks"]],
}


def test_recipe_stages_are_the_stage_modules_in_order(tmp_path: Path) -> None:
    names = [s.name for s in layout(tmp_path, spec_path("mixtures", "demo")).stages]
    assert names == stage_names() == [m.NAME for m in STAGES]
    assert stage_help().splitlines()[3].split() == ["curated", *STAGES[3].DESCRIPTION.split()]


def test_demo_stage_keys_are_unchanged(tmp_path: Path) -> None:
    """Besides these, a key covers the input files' fingerprints: the sources stage's (the fetched packages) only."""
    run = layout(tmp_path, spec_path("mixtures", "demo"))
    got = {s.name: [s.version, hash_value(to_plain(s.config)), list(s.needs)] for s in run.stages}
    assert got == DEMO_KEYS
    assert all(not s.inputs for s in run.stages if s.name != "sources")


def test_changing_alpha_reruns_curation_onwards_but_not_sources_or_classifier(tmp_path: Path) -> None:
    demo = spec_path("mixtures", "demo")
    spec = yaml.safe_load(demo.read_text())
    spec["quality"]["keep"]["alpha"] = 4.0
    spec["quality"]["keep"].pop("target_keep", None)
    changed = tmp_path / "demo-alpha4.yaml"
    changed.write_text(yaml.safe_dump(spec))
    before, after = layout(tmp_path / "a", demo), layout(tmp_path / "b", changed)
    same = {s.name for s in before.stages if before.key(s.name) == after.key(s.name)}
    assert same == {"sources", "tasks", "classifier"}


def test_changing_the_train_spec_reruns_only_train_and_eval(tmp_path: Path) -> None:
    demo = spec_path("mixtures", "demo")
    other = spec_path("train", "glam-1.7b-64e-tpuv4-64")
    before, after = layout(tmp_path / "a", demo), layout(tmp_path / "b", demo, other)
    differ = {s.name for s in before.stages if before.key(s.name) != after.key(s.name)}
    assert differ == {"train", "eval"}
