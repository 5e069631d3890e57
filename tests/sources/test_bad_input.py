"""Bad input, for every reader: an empty file and a missing file; and per format: truncated gzip, invalid UTF-8,
a 50 MB document. Each case yields what can be read and counts the rest, or fails with one line naming the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from data_specs.records import Document, make_doc_id, write_jsonl_gz
from sources.readers import READERS, ReadContext, read_gutenberg, read_records, read_text_lines

SUFFIX = {"mediawiki": ".xml.bz2", "warc": ".warc.gz", "html_dir": ".html", "records": ".jsonl.gz",
          "news_csv": ".csv", "dialog_csv": ".csv.gz", "usenet_pickle": "", "usenet_files": "", "gutenberg": ".txt",
          "text_lines": ".txt", "labelled_lines": ".csv", "feed": ".xml"}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_an_empty_file_is_counted(reader: str, tmp_path: Path) -> None:
    path = tmp_path / f"empty{SUFFIX[reader]}"
    path.write_bytes(b"")
    ctx = ReadContext("s", "web")
    assert list(READERS[reader](str(path), ctx)) == []
    assert ctx.errors == {"empty_file": 1}


@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_missing_file_fails_naming_it(reader: str, tmp_path: Path) -> None:
    path = tmp_path / f"nowhere{SUFFIX[reader]}"
    with pytest.raises(GlamkitError, match=f"{path}: file not found"):
        list(READERS[reader](str(path), ReadContext("s", "web")))


def test_truncated_gzip_lines_keep_what_was_read(demo_sources, tmp_path: Path) -> None:
    from sources.resolve import resolve_files

    lines = Path(resolve_files(demo_sources["lee-background"])[0][0]).read_bytes()
    full = gzip.compress(lines, mtime=0)
    path = tmp_path / "lee.txt.gz"
    path.write_bytes(full[: len(full) // 2])
    ctx = ReadContext("lee", "news")
    docs = list(read_text_lines(str(path), ctx))
    assert 50 < len(docs) < 300 and ctx.errors == {"truncated": 1}


def test_a_50_mb_document_streams_through_and_a_longer_line_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    word = b"lorem "
    with open(path, "wb") as f:
        f.write(b"a short first line\n")
        f.write(word * (50 * (1 << 20) // len(word)) + b"\n")
        f.write(b"a short last line\n")
    ctx = ReadContext("big", "books")
    docs = list(read_text_lines(str(path), ctx))
    assert [len(d.text) for d in docs][::2] == [18, 17] and len(docs[1].text) > 50_000_000 and not ctx.errors
    small = ReadContext("big", "books", {"max_doc_bytes": 10 << 20})
    assert [d.text for d in read_text_lines(str(path), small)] == ["a short first line", "a short last line"]
    assert small.errors == {"too_large": 1}
    book = ReadContext("big", "books")
    assert len(next(iter(read_gutenberg(str(path), book))).text) > 50_000_000


def test_invalid_utf8_in_a_line_is_replaced_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(b"good line\nbad \xff\xfe line\n")
    ctx = ReadContext("t", "news")
    assert [d.text for d in read_text_lines(str(path), ctx)] == ["good line", "bad \ufffd\ufffd line"]
    assert ctx.errors == {"invalid_utf8_replaced": 1}


def test_records_pass_through_and_bare_objects_are_stamped(tmp_path: Path) -> None:
    docs = [Document(make_doc_id("x", str(i)), "books", "x", f"text {i}", None, {"group": "g"}) for i in range(3)]
    path = tmp_path / "docs.jsonl.gz"
    write_jsonl_gz(path, docs)
    ctx = ReadContext("mine", "web")
    assert list(read_records(str(path), ctx)) == docs
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps({"text": "hello world", "url": "https://www.example.org/a", "lang": "en"}) + "\n"
                    + "{not json\n" + json.dumps({"text": ""}) + "\n")
    got = list(read_records(str(bare), ctx))
    assert len(got) == 1 and got[0].component == "web" and got[0].source == "mine"
    assert got[0].meta == {"group": "example.org", "lang": "en"} and got[0].url == "https://www.example.org/a"
    assert ctx.errors == {"bad_json": 1} and ctx.skipped == {"empty_text": 1}
