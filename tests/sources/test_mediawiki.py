"""MediaWiki dumps: articles only, markup gone, multistream ranges, truncation counted, memory flat in dump size."""

from __future__ import annotations

import bz2
import json
import os
import subprocess
from pathlib import Path

import pytest

from sources.readers import ReadContext, multistream_ranges, read_mediawiki
from tests.conftest import PYTHON, REPO

SHORTENED = "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"


@pytest.fixture(scope="module")
def dump(read) -> Path:
    return Path(next(f for f in read("gensim-enwiki").files if f.endswith(SHORTENED)))


@pytest.fixture(scope="module")
def xml(dump: Path) -> bytes:
    return bz2.decompress(dump.read_bytes())


@pytest.fixture(scope="module")
def small_xml(xml: bytes) -> bytes:
    """The dump's header and first 30 pages (a quick but real dump)."""
    head, _, rest = xml.partition(b"  <page>")
    pages = rest.split(b"  <page>")[:30]
    return head + b"".join(b"  <page>" + p for p in pages).split(b"</mediawiki>")[0] + b"</mediawiki>\n"


def _read(path: Path | str, **kw) -> tuple[list, ReadContext]:
    ctx = ReadContext("wiki", "wikipedia")
    return list(read_mediawiki(str(path), ctx, **kw)), ctx


def test_articles_only_redirects_skipped(dump: Path) -> None:
    docs, ctx = _read(dump)
    assert len(docs) == 106
    assert ctx.skipped["redirect"] == 100 and not ctx.errors
    assert len({d.id for d in docs}) == 106
    anarchism = next(d for d in docs if d.meta["title"] == "Anarchism")
    assert anarchism.url == "https://en.wikipedia.org/wiki/Anarchism"
    assert anarchism.meta["group"] == "Anarchism"
    assert anarchism.text.startswith("Anarchism is a political philosophy")


def test_no_markup_left_in_any_article(read) -> None:
    got = read("gensim-enwiki")
    assert len(got.docs) == 111  # 106 + the 5 articles of enwiki-table-markup.xml.bz2
    for doc in got.docs:
        for debris in ("{{", "}}", "[[", "]]", "<ref", "|}", "{|", "'''", "&lt;", "Category:", "thumb|"):
            assert debris not in doc.text, (doc.meta["title"], debris)
    english = [d for d in got.docs if d.meta["language"] == "en" and float(d.meta["language_score"]) > 0.9]
    assert len(english) >= 108  # "List of anthropologists" (names only) is the kind that scores low


def test_tables_are_dropped_not_flattened(read) -> None:
    by_title = {d.meta["title"]: d.text for d in read("gensim-enwiki").docs}
    text = by_title["Constructive vote of no confidence"]
    assert "Germany" in text and "Weimar Republic" in text  # link text kept
    assert "Politics of Germany" not in text  # the {{see also|...}} template dropped
    for cell in ("Opposition candidate (party)", "Abstention", "Vote successful?", "FFDEAD", "cellpadding"):
        assert cell not in text  # the vote table's header row and styling


def _multistream(xml: bytes, folder: Path, pages_per_stream: int = 10) -> tuple[Path, Path]:
    """A real multistream dump: header stream, streams of N pages, footer stream, and its offset index."""
    head, _, rest = xml.partition(b"  <page>")
    pages = [b"  <page>" + p for p in rest.split(b"  <page>")]
    pages[-1], footer = pages[-1].split(b"</mediawiki>")[0], b"</mediawiki>\n"
    dump, index = folder / "multi.xml.bz2", folder / "multi-index.txt.bz2"
    lines, pos = [], 0
    with open(dump, "wb") as f:
        streams = [b"".join(pages[i : i + pages_per_stream]) for i in range(0, len(pages), pages_per_stream)]
        for chunk in [head, *streams]:
            if chunk is not head:
                for p in chunk.split(b"  <page>")[1:]:
                    pid = p.split(b"<id>", 1)[1].split(b"</id>", 1)[0].decode()
                    title = p.split(b"<title>", 1)[1].split(b"</title>", 1)[0].decode()
                    lines.append(f"{pos}:{pid}:{title}\n")
            data = bz2.compress(chunk)
            f.write(data)
            pos += len(data)
        f.write(bz2.compress(footer))
    index.write_bytes(bz2.compress("".join(lines).encode()))
    return dump, index


def test_multistream_ranges_read_the_same_articles(small_xml: bytes, tmp_path: Path) -> None:
    dump, index = _multistream(small_xml, tmp_path, pages_per_stream=4)
    whole, _ = _read(dump)
    ranges = multistream_ranges(str(index), streams_per_range=2)
    assert len(ranges) == 4 and ranges[-1][1] is None  # 8 streams of pages, 2 per range
    parts = [doc for start, end in ranges for doc in _read(dump, start=start, end=end)[0]]
    assert [d.to_dict() for d in parts] == [d.to_dict() for d in whole]
    assert len(whole) >= 3 and whole[0].url == "https://en.wikipedia.org/wiki/Anarchism"


def test_truncated_bz2_yields_what_it_can_and_counts_the_cut(dump: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.xml.bz2"
    cut.write_bytes(dump.read_bytes()[: dump.stat().st_size // 2])
    docs, ctx = _read(cut)
    assert 20 < len(docs) < 106
    assert ctx.errors == {"truncated": 1}


def test_truncated_plain_xml_counts_the_open_page(small_xml: bytes, tmp_path: Path) -> None:
    cut = tmp_path / "cut.xml"
    cut.write_bytes(small_xml[: len(small_xml) // 2])
    docs, ctx = _read(cut)
    assert docs and ctx.errors == {"truncated": 1}


def test_invalid_utf8_in_a_page_is_replaced_and_counted(small_xml: bytes, tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_bytes(small_xml.replace(b"political philosophy", b"political \xff\xfe philosophy", 1))
    docs, ctx = _read(bad)
    good, _ = _read(_write(tmp_path / "good.xml", small_xml))
    assert len(docs) == len(good) and ctx.errors == {"invalid_utf8_replaced": 1}
    assert "\ufffd" in docs[0].text


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


_RSS_PROBE = """
import json, resource, sys
from sources.readers import ReadContext, read_mediawiki
ctx = ReadContext("wiki", "wikipedia")
n = sum(1 for _ in read_mediawiki(sys.argv[1], ctx))
print(json.dumps({"docs": n, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "skipped": ctx.skipped}))
"""


def _repeat_dump(xml: bytes, path: Path, size: int) -> None:
    """An uncompressed dump of >= `size` bytes made of real pages: most as talk pages (streamed past, not parsed),
    one copy in 400 as articles (parsed and cleaned), so the test exercises both paths and stays fast."""
    head, _, rest = xml.partition(b"  <page>")
    pages = [b"  <page>" + p for p in rest.split(b"</mediawiki>")[0].split(b"  <page>")]
    pages = [p for p in pages if b"<redirect" not in p]
    talk = [p.replace(b"<ns>0</ns>", b"<ns>1</ns>", 1) for p in pages]
    written, i = 0, 0
    with open(path, "wb") as f:
        f.write(head)
        while written < size:
            page = pages[i % len(pages)] if i % 400 == 0 else talk[i % len(talk)]
            f.write(page)
            written += len(page)
            i += 1
        f.write(b"</mediawiki>\n")


@pytest.mark.slow
def test_peak_memory_is_flat_in_dump_size(xml: bytes, tmp_path: Path) -> None:
    small, big = tmp_path / "small.xml", tmp_path / "big.xml"
    _repeat_dump(xml, small, 10 << 20)
    _repeat_dump(xml, big, 1 << 30)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = {}
    for name, path in (("small", small), ("big", big)):
        proc = subprocess.run([PYTHON, "-c", _RSS_PROBE, str(path)], env=env, capture_output=True, text=True,
                              check=True)
        out[name] = json.loads(proc.stdout.splitlines()[-1])
        path.unlink()
    assert out["big"]["skipped"]["namespace"] > 90 * out["small"]["skipped"]["namespace"] > 0  # ~100x the pages
    assert out["big"]["rss_kb"] <= 1.2 * out["small"]["rss_kb"], out
