"""Document records and token shards: round trips, byte-stable writers, and no partial files."""

import hashlib
from pathlib import Path

import pyarrow as pa
import pytest

from data_specs.errors import GlamkitError
from data_specs.records import (
    DOCUMENT_SCHEMA,
    Document,
    make_doc_id,
    parquet_provenance,
    read_documents,
    write_jsonl_gz,
    write_parquet,
)
from data_specs.shards import SHARD_SCHEMA, ComponentMix, ShardInfo, ShardManifest

DOCS = [
    Document(make_doc_id("botchan", "0"), "books", "botchan", "Because of an hereditary recklessness...", None,
             {"title": "Botchan", "work": "botchan", "language": "en"}),
    Document(make_doc_id("iana-warc", "http://www.iana.org/"), "web", "iana-warc", "Ünïcödé ✓\nline two",
             "http://www.iana.org/", {}),
]


@pytest.mark.parametrize("name", ["docs.jsonl.gz", "docs.parquet"])
def test_round_trip_and_byte_stable(tmp_path: Path, name: str) -> None:
    writer = write_parquet if name.endswith(".parquet") else write_jsonl_gz
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    assert writer(first, DOCS) == 2
    writer(second, iter(DOCS))
    assert list(read_documents(first)) == DOCS
    assert first.read_bytes() == second.read_bytes()


def test_parquet_carries_provenance_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "docs.parquet"
    write_parquet(path, DOCS, provenance={"spec_hash": "abc", "upstream": {"sources": "k1"}})
    assert parquet_provenance(path) == {"spec_hash": "abc", "upstream": {"sources": "k1"}}
    import pyarrow.parquet as pq

    assert pq.read_schema(path).remove_metadata().equals(DOCUMENT_SCHEMA)


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def exploding():
        yield DOCS[0]
        raise RuntimeError("reader died")

    for writer, name in ((write_jsonl_gz, "x.jsonl.gz"), (write_parquet, "x.parquet")):
        with pytest.raises(RuntimeError):
            writer(tmp_path / name, exploding())
        assert list(tmp_path.iterdir()) == []


def test_doc_ids_are_stable_and_distinct() -> None:
    assert make_doc_id("gensim-enwiki", "12") == make_doc_id("gensim-enwiki", "12")
    assert make_doc_id("gensim-enwiki", "12") != make_doc_id("gensim-enwiki", "13")
    assert make_doc_id("a", "x") != make_doc_id("b", "x")
    assert make_doc_id("a", "x").startswith("a/")


def test_bad_records_are_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "component": "web", "source": "s", "text": "ok"}\n{"id": 3}\n')
    with pytest.raises(GlamkitError, match=r"bad\.jsonl:2: bad document record: field 'id' must be a string"):
        list(read_documents(path))
    with pytest.raises(ValueError, match="unknown component"):
        Document("a", "blogs", "s", "t")
    with pytest.raises(ValueError, match="'meta' must map strings to strings"):
        Document.from_dict({"id": "a", "component": "web", "source": "s", "text": "t", "meta": {"n": 1}})


def test_shard_schema_and_manifest_round_trip() -> None:
    row = {"tokens": [5, 6, 1, 7], "segment_ids": [1, 1, 1, 2], "positions": [0, 1, 2, 0],
           "segment_doc_ids": ["a/1", "b/2"], "segment_components": ["web", "books"]}
    table = pa.Table.from_pylist([row], schema=SHARD_SCHEMA)
    assert table.num_rows == 1 and table.schema.field("tokens").type == pa.list_(pa.int32())
    manifest = ShardManifest(
        seq_len=4, seed=1, spec_hash="s", tokenizer_hash="t", upstream={"curate": "k"},
        shards=(ShardInfo("train-00000.arrow", "train", 1, 4, "0" * 64),
                ShardInfo("validation-00000.arrow", "validation", 1, 3, "1" * 64)),
        components={"web": ComponentMix(0.5, 10, 4, 0.4, 1)},
    )
    again = ShardManifest.from_json(manifest.to_json())
    assert again == manifest
    assert again.split_files("validation") == ["validation-00000.arrow"]
    assert "time" not in manifest.to_json()


def test_jsonl_gz_bytes_are_the_ones_runs_hold(tmp_path: Path) -> None:
    """The digest the writer gave before issue 21 moved it onto data_specs.io: deflate's bytes depend on where its
    input is cut, so a change of write pattern would change every run's sources/*.jsonl.gz."""
    docs = [Document(f"t/{i}", "books", "t", f"word{i} " * (i % 97 + 1) + "é\n", None, {"k": str(i)})
            for i in range(3000)]
    write_jsonl_gz(tmp_path / "d.jsonl.gz", docs)
    digest = hashlib.sha256((tmp_path / "d.jsonl.gz").read_bytes()).hexdigest()
    assert digest == "6de83538add4668c4320cf27fe1ed69a54de4a7202fdf3e7adec68cba984c912"
