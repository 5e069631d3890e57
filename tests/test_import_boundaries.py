"""The data flows one way: training, the model and the specs never load Beam, and the specs never load JAX."""

import json
import os
import subprocess

from tests.conftest import PYTHON, REPO


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([PYTHON, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_train_model_and_specs_do_not_import_beam() -> None:
    loaded = _modules_after("import train, model, data_specs")
    assert not any(m == "apache_beam" or m.startswith("apache_beam.") for m in loaded)


def test_specs_import_neither_beam_nor_jax() -> None:
    loaded = _modules_after(
        "import data_specs, data_specs.specs, data_specs.records, data_specs.shards, data_specs.stages, "
        "data_specs.hashing"
    )
    heavy = {"apache_beam", "jax", "flax", "tensorflow", "torch"}
    assert not {m.split(".")[0] for m in loaded} & heavy


def test_cli_startup_loads_no_heavy_framework() -> None:
    loaded = _modules_after("from glamkit.cli import build_parser; build_parser()")
    assert not {m.split(".")[0] for m in loaded} & {"apache_beam", "jax", "flax"}


def test_sources_report_and_filters_load_no_beam() -> None:
    """sources/ is plain Python (Beam only for a remote path, when met); report/ and filters/ never run a job."""
    loaded = _modules_after("import sources.stage, sources.readers, report.stage, report.mixture, filters.quality")
    assert not any(m == "apache_beam" or m.startswith("apache_beam.") for m in loaded)
