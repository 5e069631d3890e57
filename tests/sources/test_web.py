"""Web: WARC responses and WET records, HTML folders; main text without navigation; bad records counted."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from sources.readers import ReadContext, read_html_file, read_warc


@pytest.fixture(scope="module")
def iana(read) -> Path:
    return Path(read("iana-warc").files[0])


def _warc(path: Path | str, **options) -> tuple[list, ReadContext]:
    ctx = ReadContext("warc", "web", options)
    return list(read_warc(str(path), ctx)), ctx


def test_iana_warc_html_responses_with_url_and_title(read) -> None:
    got = read("iana-warc")
    assert len(got.docs) == 16  # the HTML 200 responses; 4 redirects, 28 other types, requests, revisits skipped
    assert got.stats.skipped["http_status"] == 4 and got.stats.skipped["not_html_response"] == 28
    assert not got.stats.errors
    for doc in got.docs:
        assert doc.url.startswith(("http://www.iana.org/", "https://www.iana.org/"))
        assert doc.meta["group"] == "iana.org" and doc.meta["title"]
    home = next(d for d in got.docs if d.url.rstrip("/").endswith("iana.org"))
    assert "Internet Assigned Numbers Authority" in home.meta["title"]


def test_truncated_warc_gz_keeps_complete_records_and_counts_the_cut(iana: Path, tmp_path: Path) -> None:
    whole, _ = _warc(iana)
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(iana.read_bytes()[: iana.stat().st_size * 2 // 3])
    docs, ctx = _warc(cut)
    assert 0 < len(docs) < len(whole)
    assert [d.id for d in docs] == [d.id for d in whole[: len(docs)]]
    assert ctx.errors == {"truncated": 1}


def test_broken_record_is_counted_and_reading_resumes(iana: Path, tmp_path: Path) -> None:
    data = gzip.decompress(iana.read_bytes())
    whole, _ = _warc(iana)
    starts = [i for i in range(len(data)) if data.startswith(b"WARC/1.0\r\n", i)]
    # corrupt one request record's Content-Length (requests yield no document, so the pages are all still due)
    request = next(s for s in starts if data[s : s + 200].find(b"WARC-Type: request") > 0)
    at = data.index(b"Content-Length: ", request)
    broken = data[:at] + b"Content-Length: twelve" + data[data.index(b"\r\n", at) :]
    path = tmp_path / "broken.warc"
    path.write_bytes(broken)
    docs, ctx = _warc(path)
    assert ctx.errors == {"bad_warc_record": 1}
    assert [d.id for d in docs] == [d.id for d in whole]


def test_wet_conversion_records_are_read_as_text(read, tmp_path: Path) -> None:
    from warcio.warcwriter import WARCWriter

    pages = read("iana-warc").docs[:5]
    path = tmp_path / "pages.warc.wet.gz"
    with open(path, "wb") as f:
        writer = WARCWriter(f, gzip=True)
        for doc in pages:
            rec = writer.create_warc_record(doc.url, "conversion", payload=__import__("io").BytesIO(
                doc.text.encode()), warc_content_type="text/plain")
            writer.write_record(rec)
    docs, ctx = _warc(path)
    assert [(d.url, d.text) for d in docs] == [(p.url, p.text) for p in pages] and not ctx.errors


def test_python_docs_main_text_without_navigation(read) -> None:
    got = read("python-docs")
    assert len(got.files) >= 525 and 60 <= len(got.docs) <= 75 and not got.stats.errors  # a sample: one host
    path = next(f for f in got.files if f.endswith("/library/os.html"))
    [os_page] = read_html_file(path, ReadContext("python-docs", "web", dict(got.spec.options), got.roots))
    assert os_page.url == "https://docs.python.org/3.11/library/os.html"
    assert "os — Miscellaneous operating system interfaces" in os_page.meta["title"]
    assert "This module provides a portable way of using" in os_page.text and "os.getcwd" not in os_page.meta["title"]
    for nav in ("Table of Contents", "Previous topic", "Next topic", "This Page", "Report a Bug", "Show Source",
                "Quick search", "Python Software Foundation"):
        assert nav not in os_page.text, nav
    assert {d.meta["group"] for d in got.docs} == {"docs.python.org"}


def test_trafilatura_pages_each_their_own_site(read) -> None:
    got = read("trafilatura-pages")
    names = {d.meta["group"] for d in got.docs}
    assert "scam.html" in names  # no URL known: the page is a site of its own
    assert "fivethirtyeight.com" in names  # the gzip'd page is read too, grouped by its canonical link's host
    assert len(names) == len(got.docs)


def test_non_html_in_an_html_slot_is_counted(read, tmp_path: Path) -> None:
    png = tmp_path / "image.html"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    json_page = tmp_path / "api.html"
    json_page.write_text('{"results": [1, 2, 3], "next": null}')
    ctx = ReadContext("html", "web")
    assert list(read_html_file(str(png), ctx)) == [] and list(read_html_file(str(json_page), ctx)) == []
    assert ctx.errors == {"not_html": 2}


def test_invalid_utf8_html_is_decoded_and_counted(read, tmp_path: Path) -> None:
    page = Path(read("python-docs").files[0]).read_bytes()
    bad = tmp_path / "bad.html"
    bad.write_bytes(page.replace(b"<body", b"<p>caf\xe9 \xff</p><body", 1).replace(b'charset="utf-8"', b""))
    ctx = ReadContext("html", "web")
    docs = list(read_html_file(str(bad), ctx))
    assert len(docs) == 1 and ctx.errors == {"invalid_utf8_replaced": 1}


def test_a_50_mb_html_page_is_refused_as_too_large(tmp_path: Path) -> None:
    big = tmp_path / "big.html"
    para = b"<p>" + b"word " * 200 + b"</p>\n"
    with open(big, "wb") as f:
        f.write(b"<html><body>")
        for _ in range(50 * (1 << 20) // len(para)):
            f.write(para)
        f.write(b"</body></html>")
    ctx = ReadContext("html", "web")
    assert list(read_html_file(str(big), ctx)) == [] and ctx.errors == {"too_large": 1}
