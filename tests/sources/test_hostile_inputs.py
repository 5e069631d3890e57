"""One hostile input of each kind per reader (tests/sources/hostile.py), read through the sources stage's function
and held to the rule; what each gets is the README's table, which this test reads back and compares."""

from __future__ import annotations

import re

import pytest

from tests.conftest import REPO
from tests.sources.fuzz_inputs import TARGETS
from tests.sources.hostile import COLUMNS, KINDS, outcome, table

pytestmark = [pytest.mark.fuzz]
BEGIN, END = "<!-- hostile-inputs table: python -m tests.sources.hostile -->", "<!-- /hostile-inputs table -->"


@pytest.mark.slow
def test_every_hostile_input_gets_what_the_readme_says() -> None:
    cells = {t.name: {k: c for k in KINDS if (c := outcome(t, k)) is not None} for t in TARGETS if t.name in COLUMNS}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), readme, re.S)
    assert m, f"README.md has no block between {BEGIN} and {END}"
    assert m.group(1).strip() == table(cells).strip(), "rerun `python -m tests.sources.hostile` for README.md"


def test_every_reader_has_a_column() -> None:
    by = {t.name: t for t in TARGETS}
    assert {by[n].reader for n in COLUMNS} == {t.reader for t in TARGETS}
