"""Fuzzing curation's decode path: a sources-stage file (JSONL.gz or Parquet of real documents), mutated, through the
curate job's own functions (read_split, pre_dedup, the stage's writers) as its Beam DoFns call them.

The rule: every record read is kept, dropped or errored (a dead letter with its reason), conservation holds and
the writers take every outcome; or the file cannot be read at all and the job fails with one line naming it and
where (`GlamkitError`). Nothing else escapes.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.specs import RulesSpec
from pipelines.curate import core
from pipelines.curate import stats as curate_stats
from tests.conftest import FUZZ_MULTIPLIER
from tests.sources.fuzz_inputs import _parquet, mutations, record_lines
from tests.sources.fuzz_rule import check_failure

pytestmark = [pytest.mark.fuzz]
SOURCE, COMPONENT = "lee-background", "news"
DEAD_LETTER_KINDS = {"bad_json", "schema", "invalid_utf8", "invalid_unicode"}  # curate.core.RecordError prefixes


def curate_file(path: Path, out: Path) -> dict:
    """Curate one sources file through the decode path and the writers; returns the job's stats."""
    if path.suffix == ".parquet":
        splits = core.parquet_splits(SOURCE, COMPONENT, str(path))
    else:
        splits = [core.InputSplit(SOURCE, COMPONENT, str(path))]
    stats: dict = {}
    items: list[core.Curated] = []
    for split in splits:
        for batch in core.read_split(split, 8):
            curate_stats.add_read(stats, COMPONENT, SOURCE, len(batch))
            items += core.pre_dedup(batch, {COMPONENT: RulesSpec(min_words=30)}, (1234, 0.05))
    for it in items:
        curate_stats.add_outcome(stats, curate_stats.stat_of(it))
    final = curate_stats.finish_stats(stats, [COMPONENT])  # ConservationError if a record went missing
    by = {k: [it for it in items if it.outcome == k] for k in ("kept", "dropped", "errored")}
    core.write_table_atomic(str(out / "kept.parquet"), core.curated_table(sorted(by["kept"], key=core.sort_key)))
    core.write_table_atomic(str(out / "dropped.parquet"),
                            core.dropped_table(sorted(by["dropped"], key=core.sort_key)))
    fileio.write_jsonl_gz(str(out / "dead.jsonl.gz"), [core.dead_letter_record(it) for it in by["errored"]])
    fileio.write_jsonl_gz(str(out / "samples.jsonl.gz"), [core.sample_record(it) for it in by["dropped"]])
    assert pq.read_metadata(out / "kept.parquet").num_rows == final["components"][COMPONENT]["kept"]
    with gzip.open(out / "dead.jsonl.gz", "rt", encoding="utf-8") as f:
        dead = [json.loads(line) for line in f]
    assert len(dead) == final["components"][COMPONENT]["errored"]
    assert all(d["reason"].split(":")[0] in DEAD_LETTER_KINDS for d in dead), dead
    return {**final, "dead_letter_reasons": sorted(d["reason"].split(":")[0] for d in dead)}


def check_rule(data: bytes, name: str) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return curate_file(path, Path(tmp))
        except GlamkitError as exc:
            check_failure(exc, [path])
            return None


SEEDS = {
    "lee-background.jsonl.gz": lambda: record_lines(40),
    "lee-background.parquet": lambda: _parquet(record_lines(40)),
}


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed_is_curated_without_errors(name: str) -> None:
    data = SEEDS[name]()
    stats = check_rule(gzip.compress(data, mtime=0) if name.endswith(".gz") else data, name)
    assert stats is not None and stats["components"][COMPONENT]["read"] == 40
    assert stats["components"][COMPONENT]["errored"] == 0 and stats["components"][COMPONENT]["kept"] > 20


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SEEDS))
def test_mutated_sources_file_is_curated_or_refused_in_one_line(name: str) -> None:
    seed = SEEDS[name]()
    packed = gzip.compress(seed, mtime=0)

    @settings(max_examples=150 * FUZZ_MULTIPLIER)
    @given(raw=st.booleans(), data=st.data())
    def case(raw: bool, data: st.DataObject) -> None:
        if not name.endswith(".gz"):
            blob = data.draw(mutations(seed))
        else:  # the gzip file itself damaged, or the records damaged and then gzip'd
            blob = data.draw(mutations(packed)) if raw else gzip.compress(data.draw(mutations(seed)), mtime=0)
        check_rule(blob, name)

    case()


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": "a", "component": "news", "source": "s", "text": "half \\ud83d an emoji"}', "invalid_unicode"),
        (b'{"id": "a", "component": "news", "source": "s", "text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
         "bad_json"),
        (b'{"id": "a", "component": "news", "source": "s", "text": "x", "meta": [1, 2]}', "schema"),
        (b'{"id": "a", "component": "news", "source": "s", "text": "x", "meta": [["a", "b", "c"]]}', "schema"),
        (b'{"id": "a", "component": "news", "source": "s", "text": "x", "meta": {"k": {"n": 1}}}', "schema"),
        (b'{"id": "a", "component": "news", "source": "s", "text": "\x00\x01 raw controls"}', "bad_json"),
        (b'{"id": "a", "component": "news", "source": "s", "text": "\\u0000\\u0001 escaped controls"}', None),
        (b'{"id": "a", "component": "news", "source": "s", "text": "caf\xe9 \x93cp1252\x94"}', None),
        (b'{"id": "a", "component": "news", "source": "s", "text": "\x81\x8d not cp1252 either"}', "invalid_utf8"),
    ],
)
def test_hostile_records_are_dead_letters_with_a_reason(line: bytes, reason: str | None) -> None:
    data = record_lines(5) + line + b"\n"
    stats = check_rule(gzip.compress(data, mtime=0), "lee-background.jsonl.gz")
    news = stats["components"][COMPONENT]
    assert news["read"] == 6 and stats["dead_letter_reasons"] == ([reason] if reason else [])


def test_a_damaged_sources_file_fails_the_job_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "lee-background.jsonl.gz"
    packed = gzip.compress(record_lines(40), mtime=0)
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(GlamkitError, match=r"lee-background\.jsonl\.gz: byte \d+ \(after line \d+\): the file is "
                                           r"damaged"):
        curate_file(path, tmp_path)
