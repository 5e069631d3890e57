"""The report without a run: planning mode through the CLI, the keep curve, and the headless-Chromium check failing
on a page whose plot is empty (the positive check on the demo run's report is in test_mix.py)."""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path

import pytest

from report.mixture import keep_curve
from tests.conftest import PYTHON, REPO
from tests.pipelines.curate_helpers import env


def test_plan_mode_cli_prints_and_saves_table_3(tmp_path: Path) -> None:
    proc = subprocess.run([PYTHON, "-m", "glamkit.cli", "report", "--plan", "data_specs/mixtures/glam.yaml",
                           "--budget", "600B", "--out", str(tmp_path)], cwd=REPO, env=env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for line in ("| wikipedia | 3 | 0.06 | 36 | 12.0 |", "| web | 143 | 0.42 | 252 | 1.76 |",
                 "| conversations | 174 | 0.28 | 168 | 0.97 |", "| forums | 247 | 0.02 | 12 | 0.049 |",
                 "| books | 390 | 0.20 | 120 | 0.31 |", "| news | 650 | 0.02 | 12 | 0.018 |"):
        assert line in proc.stdout
    assert (tmp_path / "glam-600b.md").read_text() in proc.stdout
    assert (tmp_path / "glam-600b.json").exists()


def test_plan_mode_bad_budget_is_one_line_error(tmp_path: Path) -> None:
    proc = subprocess.run([PYTHON, "-m", "glamkit.cli", "report", "--plan", "glam", "--budget", "lots",
                           "--out", str(tmp_path)], cwd=REPO, env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["glamkit: error: budget 'lots': expected a token count like 600B, "
                                                "1.6T, 4M or 4000000"]


def test_keep_curve_is_gpt3s_pareto_rule() -> None:
    curve = keep_curve({"kind": "pareto", "alpha": 9.0, "threshold": 0.5}, 10)
    assert curve[-1] == pytest.approx((2 - 0.95) ** -9, rel=1e-5)
    assert curve == sorted(curve)
    assert keep_curve({"kind": "threshold", "alpha": 9.0, "threshold": 0.5}, 4) == [0.0, 0.0, 1.0, 1.0]
    assert keep_curve(None, 4) is None


def _png(draw_data: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=90)
    if draw_data:
        ax.bar(["a", "b"], [3, 5], color="#1f77b4")
    else:
        ax.set_title("axes without data")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _page(path: Path, plots: dict[str, bool]) -> Path:
    figs = "".join(f'<figure class="plot" data-plot="{n}"><img src="data:image/png;base64,{_png(d)}"></figure>'
                   for n, d in plots.items())
    path.write_text(f"<!DOCTYPE html><html><body><h1>t</h1>{figs}</body></html>")
    return path


def _check(page: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    from scripts.check_report import find_browser

    if find_browser() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return subprocess.run([PYTHON, "scripts/check_report.py", str(page), "--screenshot", str(tmp_path / "s.png")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)


def test_chromium_check_fails_on_an_empty_plot(tmp_path: Path) -> None:
    proc = _check(_page(tmp_path / "r.html", {"full": True, "empty": False}), tmp_path)
    assert proc.returncode == 1
    assert "plot empty: empty" in proc.stderr and "plot full" in proc.stdout
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_chromium_check_passes_when_every_plot_has_data(tmp_path: Path) -> None:
    proc = _check(_page(tmp_path / "r.html", {"one": True, "two": True}), tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_quality_plot_with_an_unfitted_alpha_auto_draws_no_curve() -> None:
    """A run where no page reached the score keeps `alpha: "auto"` unresolved: the report still renders."""
    from report.html import _plot_quality

    quality = {"dropped": [1, 0, 0, 0], "kept": [0, 0, 0, 2], "keep_rate": [0.0, None, None, 1.0]}
    report = {"score_bins": 4, "keep_rule": {"kind": "pareto", "alpha": "auto"}, "keep_curve": None,
              "components": {"web": {"quality": quality}}}
    assert "data:image/png;base64," in _plot_quality(report, "web")
