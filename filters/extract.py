"""HTML -> main text: pure functions over one page, no I/O. The default extractor was chosen by `bench/extract.py`.

Candidates share one signature, `(html, url) -> text`, so the bench, the readers and later stages call them alike.
`baseline` (every visible text node) is what a boilerplate remover has to beat.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from data_specs.errors import GlamkitError
from data_specs.records import without_surrogates

DEFAULT_EXTRACTOR = "trafilatura_recall"  # best F1 in bench/extract.py (README)

_HTML_SNIFF = re.compile(rb"<(!doctype\s+html|html|head|body|title|div|p|article|main|table|span|a)[\s>/]", re.I)
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_\-:.]+)""", re.I)
_BLANKS = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Extracted:
    text: str
    title: str | None
    canonical_url: str | None = None  # the URL the page says it lives at (canonical link, og:url, <base href>)


def _trafilatura(html: str, url: str | None, **kw: bool) -> str:
    try:
        import trafilatura
    except ImportError as exc:  # e.g. lxml_html_clean missing: a venv older than requirements.lock

        raise GlamkitError(f"trafilatura cannot be imported ({exc}); reinstall from requirements.lock (make setup)"
                           ) from exc

    out = trafilatura.extract(
        html, url=url, output_format="txt", include_comments=False, include_tables=True, include_images=False,
        include_links=False, deduplicate=False, with_metadata=False, fast=False, **kw,
    )
    return plain_tables(out or "")


_TABLE_RULE = re.compile(r"^[ \t|:-]*-[ \t|:-]*$")  # a markdown header separator row: |---|---|
_CELL_GAP = re.compile(r"[ \t]*\|[ \t]*")


def plain_tables(text: str) -> str:
    """trafilatura writes table rows as markdown (`| a | b |` and `|---|---|`): cells become tab-separated text.
    The pipes are markup, not words: left in, they count as non-alphabetic words and fail pages on Gopher's
    alpha-word rule for holding a table. A literal pipe is escaped (`\\|`) by trafilatura and stays."""
    if "|" not in text:
        return text
    out = []
    for line in text.replace("\\|", "\x00").split("\n"):
        if "|" in line:
            if _TABLE_RULE.match(line):
                continue
            line = _CELL_GAP.sub("\t", line).strip("\t ")
        out.append(line)
    return "\n".join(out).replace("\x00", "|")


def trafilatura_default(html: str, url: str | None = None) -> str:
    return _trafilatura(html, url)


def trafilatura_recall(html: str, url: str | None = None) -> str:
    return _trafilatura(html, url, favor_recall=True)


def trafilatura_precision(html: str, url: str | None = None) -> str:
    return _trafilatura(html, url, favor_precision=True)


def resiliparse_main(html: str, url: str | None = None) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=True, alt_texts=False, links=False, form_fields=False, noscript=False)


def baseline_all_text(html: str, url: str | None = None) -> str:
    """Every visible text node, boilerplate included: the floor every extractor is compared with."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=False, alt_texts=False, links=False, form_fields=False)


EXTRACTORS: dict[str, Callable[[str, str | None], str]] = {
    "trafilatura": trafilatura_default,
    "trafilatura_recall": trafilatura_recall,
    "trafilatura_precision": trafilatura_precision,
    "resiliparse": resiliparse_main,
    "baseline": baseline_all_text,
}


# Where a saved page says it lives, most explicit first: a page saved without its URL still names its site.
_SELF_URL = (("link[rel=canonical]", "href"), ('meta[property="og:url"]', "content"),
             ('meta[name="twitter:url"]', "content"), ("base[href]", "href"))


def html_title(html: str) -> str | None:
    return head_info(html)[0]


def head_info(html: str) -> tuple[str | None, str | None]:
    """(title, canonical URL): the page's <title> and the first absolute http(s) URL its head declares for itself."""
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse(html)
    title = tree.title
    url = None
    for selector, attr in _SELF_URL:
        node = tree.document.query_selector(selector)
        value = (node.getattr(attr) or "").strip() if node is not None else ""
        if value.lower().startswith(("http://", "https://")) and len(value) < 2048:
            url = value
            break
    return (" ".join(title.split()) or None if title else None), url


def extract(html: str, url: str | None = None, method: str = DEFAULT_EXTRACTOR) -> Extracted:
    """The page's main text (paragraphs separated by blank lines) and its <title>."""
    try:
        fn = EXTRACTORS[method]
    except KeyError:
        raise ValueError(f"unknown extractor {method!r} (one of {', '.join(EXTRACTORS)})") from None
    text = _BLANKS.sub("\n\n", fn(html, url).replace("\r\n", "\n")).strip()
    return Extracted(text, *head_info(html))


def looks_like_html(data: bytes) -> bool:
    """True for markup; False for binary (NUL bytes) or text with no HTML tag near the start (PDF, JSON, PNG...)."""
    head = data[:65536]
    return b"\x00" not in head[:8192] and _HTML_SNIFF.search(head) is not None


def decode_html(data: bytes, declared: str | None = None) -> tuple[str, bool]:
    """(text, clean): decode with the declared charset, the page's <meta charset>, or UTF-8; `clean` is False when
    bytes had to be replaced or the encoding guessed."""
    candidates = [c for c in (declared, _meta_charset(data), "utf-8") if c]
    for enc in candidates:
        try:
            text = data.decode(_norm(enc))
        except (UnicodeError, LookupError):  # undecodable, unknown, or not a charset at all (punycode, idna)
            continue
        if not without_surrogates(text)[1]:  # a codec such as unicode_escape can make lone surrogates: not text
            return text, True
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return bytes_to_str(data, detect_encoding(data)), False


def _meta_charset(data: bytes) -> str | None:
    m = _CHARSET.search(data[:4096])
    return m.group(1).decode("ascii", "replace") if m else None


def _norm(enc: str) -> str:
    enc = enc.strip().lower()
    return "cp1252" if enc in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii") else enc
