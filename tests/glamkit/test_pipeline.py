"""The recipe's stage keys: a change reruns exactly the stages that depend on it."""

from pathlib import Path

import yaml

from data_specs.specs import spec_path
from glamkit.pipeline import PLANNED, layout


def test_recipe_stages_are_the_planned_ones_in_order(tmp_path: Path) -> None:
    names = [s.name for s in layout(tmp_path, spec_path("mixtures", "demo")).stages]
    assert names == [name for name, _ in PLANNED]


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
