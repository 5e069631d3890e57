"""The curate job's decode/schema check and dead letter, conservation, and the command line.

Bad records are injected among real documents (read by the sources code): they go to the dead-letter file with a
reason and the job succeeds; an empty and a 50 MB document are dropped by rule, not errored.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_specs import specs
from data_specs.errors import GlamkitError
from pipelines.curate import core, schema
from pipelines.curate import stats as curate_stats
from pipelines.curate.job import curate

MIXTURE = """
name: dead-letter
seed: 3
components:
  wikipedia: {weight: 0.5, sources: [gensim-enwiki]}
  forums:    {weight: 0.5, sources: [mini-newsgroup]}
rules:
  forums: {min_words: 20}
"""


def _line(row: dict) -> bytes:
    return (json.dumps(row) + "\n").encode("ascii")  # non-ASCII as \\u escapes, lone surrogates included


def _raw(payload, component: str = "wikipedia") -> core.RawRecord:
    return core.RawRecord("gensim-enwiki", component, "x.jsonl.gz:1", payload)


GOOD = {"id": "gensim-enwiki/1", "component": "wikipedia", "source": "gensim-enwiki", "text": "Hello", "url": None,
        "meta": {"language": "en"}}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id": "a", "component": "wikipedia", "source": "s", "text": "caf\x81"}', "invalid_utf8"),
        (_line({**GOOD, "text": "\ud800 lone"}), "invalid_unicode"),
        (b"{not json", "bad_json"),
        (b"[1, 2]", "schema"),
        (_line({k: v for k, v in GOOD.items() if k != "text"}), "schema"),
        (_line({**GOOD, "text": 123}), "schema"),
        (_line({**GOOD, "meta": {"language": 1}}), "schema"),
        (_line({**GOOD, "extra": 1}), "schema"),
        (_line({**GOOD, "component": "news"}), "schema"),
        (_line({**GOOD, "component": "gossip"}), "schema"),
    ],
)
def test_decode_rejects_what_cannot_be_processed(payload: bytes, reason: str) -> None:
    with pytest.raises(core.RecordError, match=reason):
        core.decode_record(_raw(payload))


def test_decode_repairs_cp1252_bytes_in_utf8() -> None:
    raw = b'{"id": "a", "component": "wikipedia", "source": "s", "text": "caf\xe9 \x93ok\x94"}'
    doc = core.decode_record(_raw(raw))
    assert doc.text == "café “ok”"


def test_decode_parquet_row_with_binary_fields() -> None:
    row = {"id": b"a", "component": b"forums", "source": b"s", "text": b"ol\xc3\xa9", "url": None,
           "meta": [(b"language", b"en")]}
    doc = core.decode_record(core.RawRecord("s", "forums", "f.parquet:rg0:row0", row))
    assert doc.text == "olé" and doc.meta == {"language": "en"}


def test_conservation_failure_is_loud() -> None:
    stats: dict = {}
    curate_stats.add_read(stats, "web", "src", 3)
    curate_stats.add_outcome(stats, ("web", "src", "kept", None, 10, 10, None))
    curate_stats.add_outcome(stats, ("web", "src", "dropped", "min_words", 10, 0, None))
    with pytest.raises(curate_stats.ConservationError, match="web: read 3 != kept 1 \\+ dropped 1 \\+ errored 0"):
        curate_stats.finish_stats(stats, ["web"])
    curate_stats.add_outcome(stats, ("web", "src", "errored", None, 5, 0, None))
    assert curate_stats.finish_stats(stats, ["web"])["components"]["web"]["read"] == 3


@pytest.fixture(scope="module")
def dead_letter_run(read, tmp_path_factory) -> tuple[Path, dict, int]:
    """Real Wikipedia articles (JSONL.gz) and Usenet posts (Parquet, binary string columns) with bad records
    mixed in, curated in-process."""
    run = tmp_path_factory.mktemp("dead-letter")
    wiki = read("gensim-enwiki").docs[:30]
    posts = read("mini-newsgroup").docs[:60]
    lines = [_line(d.to_dict()) for d in wiki]
    template = {**wiki[0].to_dict()}
    bad = [
        b'{"id": "w/bad-utf8", "component": "wikipedia", "source": "gensim-enwiki", "text": "x\x81\x8d y"}\n',
        _line({**template, "id": "w/surrogate", "text": "a \ud83d b"}),
        b"this is not json\n",
        _line({k: v for k, v in template.items() if k != "text"}),
        _line({**template, "id": "w/int-text", "text": 42}),
        _line({**template, "id": "w/wrong-component", "component": "books"}),
    ]
    fine = [
        _line({**template, "id": "w/empty", "text": ""}),  # empty: dropped by min_words, not errored
        _line({**template, "id": "w/huge", "text": "All work and no play makes Jack a dull boy. " * 1_140_000}),
        b'{"id": "w/cp1252", "component": "wikipedia", "source": "gensim-enwiki", "text": "caf\xe9", "meta": {}}\n',
    ]
    assert len(fine[1]) > 50_000_000
    mixed = lines[:10] + bad[:3] + fine + lines[10:20] + bad[3:] + lines[20:]
    sources = run / "sources"
    sources.mkdir()
    with gzip.open(sources / "gensim-enwiki.jsonl.gz", "wb") as f:
        f.write(b"".join(mixed) + b"\n\n")  # blank lines are not records
    rows = [d.to_dict() for d in posts]
    for r in rows:
        r["meta"] = list(r["meta"].items())
    schema = pa.schema([("id", pa.binary()), ("component", pa.binary()), ("source", pa.binary()),
                        ("text", pa.large_binary()), ("url", pa.binary()),
                        ("meta", pa.map_(pa.binary(), pa.binary()))])
    enc = [{k: (v.encode() if isinstance(v, str) else [(a.encode(), b.encode()) for a, b in v] if k == "meta" else v)
            for k, v in r.items()} for r in rows]
    enc.insert(7, {**enc[0], "id": b"f/bad", "text": b"\xff\xfe\x81 broken"})
    pq.write_table(pa.Table.from_pylist(enc, schema=schema), sources / "mini-newsgroup.parquet", row_group_size=25)
    spec_path = run / "mixture.yaml"
    spec_path.write_text(MIXTURE)
    spec = specs.load("mixtures", spec_path)
    stats = curate(spec, run, run / "curated", num_shards=2, batch_size=8)
    return run / "curated", stats, len(wiki) + len(bad) + len(fine) + len(posts) + 1


def test_bad_records_go_to_dead_letter_and_the_job_succeeds(dead_letter_run) -> None:
    out, stats, total = dead_letter_run
    with gzip.open(out / "dead_letter.jsonl.gz", "rt") as f:
        dead = [json.loads(line) for line in f]
    reasons = sorted(d["reason"].split(":")[0] for d in dead)
    assert reasons == ["bad_json", "invalid_unicode", "invalid_utf8", "invalid_utf8", "schema", "schema", "schema"]
    assert all(d["locator"] and d["source"] and d["excerpt"] is not None for d in dead)
    assert any(d["locator"].startswith("mini-newsgroup.parquet:rg0:row7") for d in dead)
    wiki, forums = stats["components"]["wikipedia"], stats["components"]["forums"]
    assert wiki["errored"] == 6 and forums["errored"] == 1
    assert stats["total"]["read"] == total
    for c in (wiki, forums):
        assert c["read"] == c["kept"] + sum(c["dropped"].values()) + c["errored"]
    assert wiki["dropped"].get("min_words", 0) >= 1 and wiki["dropped"].get("max_words", 0) == 1
    dropped = pq.read_table(out / "dropped" / "wikipedia").to_pylist()
    assert {"w/empty": "min_words", "w/huge": "max_words"}.items() <= {r["id"]: r["drop_reason"]
                                                                         for r in dropped}.items()
    # the repaired record was processed (then dropped by the language filter: it carries no language ID)
    assert {r["id"]: r["drop_reason"] for r in dropped}["w/cp1252"] == "language"
    with gzip.open(out / "samples" / "dropped.jsonl.gz", "rt") as f:
        huge = [json.loads(line) for line in f if '"w/huge"' in line]
    assert huge[0]["text_truncated"] and len(huge[0]["text"]) == schema.SAMPLE_TEXT_CHARS


def test_real_documents_survive_next_to_bad_ones(dead_letter_run) -> None:
    out, stats, _ = dead_letter_run
    kept = pq.read_table(out / "documents" / "wikipedia").column("id").to_pylist()
    assert len(kept) >= 28  # of the 30 real articles (list pages may go)
    assert stats["components"]["forums"]["kept"] >= 50


# ------------------------------------------------------------------------------------------------ CLI
def _parse(argv: list[str]):
    from glamkit.cli import Parser
    from glamkit.commands import curate as curate_cli

    parser = Parser(prog="glamkit")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    curate_cli.register(sub)
    return parser.parse_args(argv)


def test_cli_passes_beam_options_through() -> None:
    args = _parse(["curate", "--spec", "demo", "--run", "r", "--runner=PortableRunner", "--direct_num_workers", "2",
                   "--environment_type=EXTERNAL", "--force"])
    assert args.run_dir == Path("r") and args.force
    assert args.beam_args == ["--runner=PortableRunner", "--direct_num_workers", "2", "--environment_type=EXTERNAL"]


def test_cli_refuses_unknown_beam_option() -> None:
    from pipelines.beam.options import pipeline_options

    with pytest.raises(GlamkitError, match="--direct_num_worker=2"):
        pipeline_options(["--direct_num_worker=2"])
    options = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]).get_all_options()
    assert options["runner"] == "FnApiRunner" and options["direct_num_workers"] == 2


def test_cli_help_has_an_example() -> None:
    import subprocess

    from tests.conftest import PYTHON, REPO

    out = subprocess.run([PYTHON, "-m", "glamkit.cli", "curate", "--help"], cwd=REPO, capture_output=True, text=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and "Example" in out.stdout and "--direct_num_workers" in out.stdout
