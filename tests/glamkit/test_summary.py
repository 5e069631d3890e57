"""The run summary shows the classifier's held-out AUC only next to its leave-one-source-out partner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from glamkit.summary import summarize

AUC = re.compile(r"ROC-AUC \d")


def _auc_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if AUC.search(line)]


def _run_with_eval(tmp_path: Path, result: dict) -> Path:
    (tmp_path / "classifier").mkdir(parents=True)
    (tmp_path / "classifier" / "eval.json").write_text(json.dumps(result))
    return tmp_path


def test_a_heldout_auc_is_printed_with_the_worst_leave_one_source_out_auc(tmp_path: Path) -> None:
    result = {"heldout_split": "host", "roc_auc": 0.957, "pr_auc": 0.9, "f1": 0.9,
              "worst_leave_one_source_out": {"source": "shakespeare", "roc_auc": 0.61, "component": "books"},
              "worst_web_leave_one_source_out": {"source": "formasaurus", "roc_auc": 0.7, "component": "web"}}
    lines = _auc_lines(summarize(_run_with_eval(tmp_path, result)))
    assert lines == ["classifier: held-out-by-host ROC-AUC 0.957, worst web-source leave-one-source-out ROC-AUC "
                     "0.700 (formasaurus), worst of all sources 0.610 (shakespeare)"]


def test_an_eval_without_leave_one_source_out_says_so(tmp_path: Path) -> None:
    lines = _auc_lines(summarize(_run_with_eval(tmp_path, {"roc_auc": 0.998, "pr_auc": 0.99, "f1": 0.98})))
    assert lines and all("leave-one-source-out ROC-AUC not measured" in line for line in lines)


@pytest.mark.slow
def test_the_demo_summary_pairs_every_auc(demo_run: Path) -> None:
    text = summarize(demo_run)
    lines = _auc_lines(text)
    assert lines and all("held-out-by-host" in ln and "leave-one-source-out ROC-AUC" in ln for ln in lines)
    assert re.search(r"keep rule \(web\): pareto alpha [\d.]+ .*kept [\d,]+ of [\d,]+ pages", text)
