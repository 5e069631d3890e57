"""Every shipped spec loads; a bad spec fails with a message that names the file and the key."""

import re
from pathlib import Path

import pytest
import yaml

from data_specs import SPEC_ROOT, specs
from data_specs.errors import SpecError
from data_specs.loader import load_spec, parse_set_args


@pytest.mark.parametrize(
    ("kind", "name"), [(k, n) for k in specs.SPEC_KINDS for n in specs.spec_names(k)], ids=lambda v: str(v)
)
def test_every_shipped_spec_loads(kind: str, name: str) -> None:
    spec = specs.load(kind, name)
    assert isinstance(spec, specs.SPEC_KINDS[kind])


def test_every_kind_has_a_spec() -> None:
    for kind in specs.SPEC_KINDS:
        assert specs.spec_names(kind), f"no YAML under data_specs/{kind}/"


def test_mixture_and_classifier_references_resolve() -> None:
    sources = set(specs.spec_names("sources"))
    for name in specs.spec_names("mixtures"):
        mixture = specs.load("mixtures", name)
        for component, comp in mixture.components.items():
            for source in comp.sources:
                assert source in sources, f"mixture {name}: {component} names unknown source {source}"
                assert specs.load("sources", source).component == component
    for name in specs.spec_names("classifier"):
        clf = specs.load("classifier", name)
        for sample in clf.positives + clf.negatives:
            assert sample.source in sources
    for name in specs.spec_names("studies"):
        study = specs.load("studies", name)
        specs.load("mixtures", study.mixture)
        specs.load("train", study.train)
        templates = {yaml.safe_load(p.read_text())["task"] for p in (SPEC_ROOT / "tasks").glob("*.yaml")}
        assert set(study.tasks) <= templates, f"study {name}: tasks not among data_specs/tasks/"


def test_glam_mixture_is_the_papers_table() -> None:
    glam = specs.load("mixtures", "glam")
    table = {k: (c.tokens_b, c.weight) for k, c in glam.components.items()}
    assert table == {
        "web": (143, 0.42),
        "wikipedia": (3, 0.06),
        "conversations": (174, 0.28),
        "forums": (247, 0.02),
        "books": (390, 0.20),
        "news": (650, 0.02),
    }
    assert [c for c, spec in glam.components.items() if spec.quality_filter] == ["web"]
    assert glam.quality.keep.alpha == 9.0


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_and_dotted_key(tmp_path: Path) -> None:
    text = (SPEC_ROOT / "mixtures" / "demo.yaml").read_text().replace("seq_len: 256", "seq_len: 256\n  seq_lenn: 3")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError) as err:
        load_spec(specs.MixtureSpec, path)
    assert str(path) in str(err.value)
    assert "mixing.seq_lenn" in str(err.value)
    assert "unknown key" in str(err.value)


def test_wrong_type_names_file_and_key(tmp_path: Path) -> None:
    text = re.sub(r"(?m)^steps: \d+$", "steps: many", (SPEC_ROOT / "train" / "tiny.yaml").read_text())
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=rf"{path}: steps: expected an integer, got str 'many'"):
        load_spec(specs.TrainSpec, path)


def test_nested_wrong_type_in_mapping_of_dataclasses(tmp_path: Path) -> None:
    text = (SPEC_ROOT / "mixtures" / "demo.yaml").read_text().replace("max_words: 2000000", "max_words: true")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=r"rules\.books\.max_words: expected an integer, got bool"):
        load_spec(specs.MixtureSpec, path)


def test_bad_literal_and_missing_required_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "name: x\nmodel: tiny\noptimizer: {kind: sgd}\n")
    with pytest.raises(SpecError, match=r"optimizer\.kind: 'sgd' is not one of \['adafactor', 'adamw'\]"):
        load_spec(specs.TrainSpec, path)
    path = _write(tmp_path, "name: x\n")
    with pytest.raises(SpecError, match=r"model: required key is missing"):
        load_spec(specs.TrainSpec, path)


def test_semantic_check_reports_file(tmp_path: Path) -> None:
    text = (SPEC_ROOT / "mixtures" / "demo.yaml").read_text().replace("weight: 0.42", "weight: 0.52")
    path = _write(tmp_path, text)
    with pytest.raises(SpecError, match=r"weights sum to 1.1"):
        load_spec(specs.MixtureSpec, path)


def test_overrides_are_checked_like_the_file() -> None:
    path = specs.spec_path("train", "tiny")
    spec = load_spec(specs.TrainSpec, path, parse_set_args(["steps=7", "optimizer.learning_rate=0.5"]))
    assert (spec.steps, spec.optimizer.learning_rate) == (7, 0.5)
    with pytest.raises(SpecError, match=r"optimizer\.lr: unknown key"):
        load_spec(specs.TrainSpec, path, parse_set_args(["optimizer.lr=0.5"]))


def test_specs_are_frozen() -> None:
    spec = specs.load("train", "tiny")
    with pytest.raises(AttributeError):
        spec.steps = 1  # type: ignore[misc]


def test_unknown_spec_name_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match=r"no mixtures spec named 'nope' \(have: demo, glam\)"):
        specs.load("mixtures", "nope")


def test_component_literal_lists_the_components_in_order() -> None:
    """`Component` must be a Literal for typing; it spells COMPONENTS out again, so the two are checked equal."""
    from typing import get_args

    from data_specs.records import COMPONENTS

    assert get_args(specs.Component) == COMPONENTS
