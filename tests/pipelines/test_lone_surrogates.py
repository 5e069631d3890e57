"""The issue's crash, as a user met it: their own scraped JSONL holds an escaped lone surrogate (`"\\ud83d"`, half of
an emoji cut in two). `glamkit sources read` used to die in the JSONL writer ("internal error: UnicodeEncodeError");
now the reader repairs it (U+FFFD, counted) and `glamkit curate` takes every document, conservation holding."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from data_specs import SPEC_ROOT, specs
from glamkit.cli import main
from tests.sources.fuzz_inputs import record_lines

pytestmark = [pytest.mark.fuzz]

MIXTURE = """
name: scraped
seed: 5
components:
  news: {weight: 1.0, sources: [my-scraped]}
rules:
  news: {min_words: 30}
"""


@pytest.fixture
def user_specs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spec folder like the repository's plus the user's own source `my-scraped` (their JSONL)."""
    root = tmp_path / "specs"
    shutil.copytree(SPEC_ROOT, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    lines = record_lines(12, bare=True).splitlines(keepends=True)
    emoji = json.loads(lines[3])
    emoji["text"] = "Scraped with an emoji cut in half \ud83d here. " + emoji["text"]
    emoji["title"] = "half \udc00"
    lines[3] = json.dumps(emoji).encode() + b"\n"  # ensure_ascii: "\\ud83d", valid JSON
    assert b"\\ud83d" in lines[3]
    data = tmp_path / "data" / "scraped.jsonl.gz"
    data.parent.mkdir()
    data.write_bytes(gzip.compress(b"".join(lines), mtime=0))
    (root / "sources" / "my-scraped.yaml").write_text(
        f"name: my-scraped\ncomponent: news\nreader: records\npaths: [{data}]\n")
    monkeypatch.setattr(specs, "SPEC_ROOT", root)
    (tmp_path / "mixture.yaml").write_text(MIXTURE)
    return tmp_path / "mixture.yaml"


def test_sources_read_and_curate_take_a_lone_surrogate(user_specs: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["sources", "read", "--spec", str(user_specs), "--run", str(run)]) == 0, capsys.readouterr().err
    stats = json.loads((run / "sources" / "stats.json").read_text())["sources"]["my-scraped"]
    assert stats["documents"] == 12 and stats["errors"] == {"lone_surrogate_replaced": 1}
    with gzip.open(run / "sources" / "my-scraped.jsonl.gz", "rt", encoding="utf-8") as f:
        docs = [json.loads(line) for line in f]
    repaired = next(d for d in docs if "emoji cut in half" in d["text"])
    assert "half \ufffd here" in repaired["text"] and repaired["meta"]["title"] == "half \ufffd"

    assert main(["curate", "--spec", str(user_specs), "--run", str(run)]) == 0, capsys.readouterr().err
    curated = json.loads((run / "curated" / "stats.json").read_text())["components"]["news"]
    assert curated["read"] == 12 and curated["errored"] == 0
    assert curated["read"] == curated["kept"] + sum(curated["dropped"].values()) + curated["errored"]
    assert "internal error" not in capsys.readouterr().err
