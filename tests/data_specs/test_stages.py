"""The stage runner: skip what is done, rerun what changed and everything after it, never show partial output."""

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from data_specs.stages import MARKER, RunLayout, Stage, StageContext
from tests.conftest import PYTHON, REPO


def _pipeline(run_dir: Path, source: Path, calls: list[str], scale: int = 2) -> RunLayout:
    def read(ctx: StageContext) -> dict:
        calls.append("read")
        (ctx.out / "words.txt").write_text(source.read_text().upper())
        return {"chars": len(source.read_text())}

    def count(ctx: StageContext) -> None:
        calls.append("count")
        words = (ctx.upstream["read"] / "words.txt").read_text().split()
        (ctx.out / "count.json").write_text(json.dumps({"n": len(words) * scale, "provenance": ctx.provenance}))

    def report(ctx: StageContext) -> None:
        calls.append("report")
        n = json.loads((ctx.upstream["count"] / "count.json").read_text())["n"]
        (ctx.out / "report.txt").write_text(f"{n}\n")

    return RunLayout(run_dir, [
        Stage("read", read, config={"upper": True}, inputs=(source,)),
        Stage("count", count, config={"scale": scale}, needs=("read",)),
        Stage("report", report, needs=("count",)),
    ])


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "input.txt"
    path.write_text("the quick brown fox")
    return path


def test_runs_once_then_skips(tmp_path: Path, source: Path) -> None:
    calls: list[str] = []
    results = _pipeline(tmp_path / "run", source, calls).run()
    assert [r.state for r in results] == ["ran", "ran", "ran"]
    assert (tmp_path / "run" / "report" / "report.txt").read_text() == "8\n"
    again = _pipeline(tmp_path / "run", source, calls).run()
    assert [r.state for r in again] == ["skipped"] * 3
    assert calls == ["read", "count", "report"]


def test_input_change_reruns_stage_and_everything_downstream(tmp_path: Path, source: Path) -> None:
    calls: list[str] = []
    _pipeline(tmp_path / "run", source, calls).run()
    source.write_text("jumps over the lazy dog today")
    calls.clear()
    results = _pipeline(tmp_path / "run", source, calls).run()
    assert calls == ["read", "count", "report"]
    assert (tmp_path / "run" / "report" / "report.txt").read_text() == "12\n"
    assert all(r.state == "ran" for r in results)


def test_config_change_reruns_from_that_stage_only(tmp_path: Path, source: Path) -> None:
    calls: list[str] = []
    _pipeline(tmp_path / "run", source, calls).run()
    calls.clear()
    layout = _pipeline(tmp_path / "run", source, calls, scale=3)
    assert layout.status() == [("read", "done"), ("count", "stale"), ("report", "stale")]
    layout.run()
    assert calls == ["count", "report"]
    assert (tmp_path / "run" / "report" / "report.txt").read_text() == "12\n"


def test_provenance_records_config_and_upstream_keys(tmp_path: Path, source: Path) -> None:
    layout = _pipeline(tmp_path / "run", source, [])
    layout.run()
    artefact = json.loads((tmp_path / "run" / "count" / "count.json").read_text())["provenance"]
    assert artefact["upstream"] == {"read": layout.key("read")}
    assert artefact["key"] == layout.key("count")
    marker = json.loads((tmp_path / "run" / "read" / MARKER).read_text())
    assert marker["summary"] == {"chars": 19}
    assert str(source) in marker["provenance"]["inputs"]


def test_failing_stage_leaves_nothing_visible_and_keeps_previous_output(tmp_path: Path, source: Path) -> None:
    calls: list[str] = []
    _pipeline(tmp_path / "run", source, calls).run()

    def broken(ctx: StageContext) -> None:
        (ctx.out / "report.txt").write_text("half")
        raise RuntimeError("disk full")

    layout = RunLayout(tmp_path / "run", [Stage("report", broken, config="v2")])
    with pytest.raises(RuntimeError):
        layout.run()
    assert (tmp_path / "run" / "report" / "report.txt").read_text() == "8\n"  # the last good output survives
    assert layout.status() == [("report", "stale")]


KILLED = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from data_specs.stages import RunLayout, Stage

    def slow_write(ctx):
        with open(ctx.out / "big.bin", "wb") as f:
            f.write(b"x" * 100000)
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    RunLayout(Path(sys.argv[1]), [Stage("write", slow_write)]).run()
    """
)


def test_stage_killed_mid_write_leaves_no_marker_and_no_visible_output(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([PYTHON, "-c", KILLED, str(run_dir)], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    visible = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
    assert visible == ["logs"]
    assert not list(run_dir.rglob(MARKER))

    def good(ctx: StageContext) -> None:
        (ctx.out / "big.bin").write_bytes(b"y")

    results = RunLayout(run_dir, [Stage("write", good)]).run()
    assert results[0].state == "ran"
    assert (run_dir / "write" / "big.bin").read_bytes() == b"y"
    assert not (run_dir / ".write.tmp").exists()


def test_stage_order_and_names_are_checked(tmp_path: Path) -> None:
    def noop(ctx: StageContext) -> None:
        return None

    with pytest.raises(ValueError, match="must come before it"):
        RunLayout(tmp_path, [Stage("b", noop, needs=("a",)), Stage("a", noop)])
    with pytest.raises(GlamkitError, match="no stage named 'c'"):
        RunLayout(tmp_path, [Stage("a", noop)]).run(only=["c"])


def test_only_runs_the_stage_and_what_it_needs(tmp_path: Path, source: Path) -> None:
    calls: list[str] = []
    _pipeline(tmp_path / "run", source, calls).run(only=["count"])
    assert calls == ["read", "count"]
    assert not (tmp_path / "run" / "report").exists()
