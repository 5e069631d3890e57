"""RSS and Atom feeds: one document per item (RSS 0.9x/1.0/2.0 `item`, Atom `entry`), its title and text.

A feed item is not a web page: it carries `meta.kind = "feed_item"`, so stats count items apart from pages. Item
bodies are HTML fragments (escaped in the XML); their visible text is kept. Old feeds are often malformed, so the
XML is parsed with recovery (what cannot be recovered is counted), never with entity expansion or network access.
The group is the feed's site (the channel's link host), so a split never cuts a blog.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import Any

from data_specs.records import Document
from filters.extract import baseline_all_text
from sources.readers.base import MiB, ReadContext, read_whole
from sources.readers.tabular import domain

FEED_ITEM = "feed_item"
_DECLARED = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9_\-.:]+)["']""")
_CHAR_REF = re.compile(r"&#(?:[xX]([0-9a-fA-F]+)|([0-9]+));")
_ENTITY = re.compile(r"<!ENTITY", re.I)  # declared entities are never expanded nor fetched (parse_feed)
_SOURCE_COMMENT = re.compile(r"<!--\s*Source:\s*(https?://\S+)")
_BODIES = ("encoded", "content", "description", "summary")  # content:encoded first: the full post
_DATES = ("pubDate", "published", "updated", "date")


def folder_encoding(path: str) -> str | None:
    """The codec named by a file's folder, e.g. `tests/windows-1251-russian/x.xml` -> cp1251 (the longest dash
    prefix that is a codec), or None."""
    parts = path.rsplit("/", 2)[-2].split("-") if path.count("/") else []
    for i in range(len(parts), 0, -1):
        try:
            return codecs.lookup("-".join(parts[:i])).name
        except LookupError:
            continue
    return None


def _decode(data: bytes, path: str, ctx: ReadContext) -> str:
    declared = _DECLARED.match(data)
    encoding = (folder_encoding(path) if ctx.opt("encoding_from_folder") else None) or \
        (declared.group(1).decode("ascii") if declared else None) or "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    try:
        codecs.lookup(encoding)
    except LookupError:
        ctx.error("unknown_encoding", path, encoding)
        encoding = "utf-8"
    return ctx.decode(data, path, encoding)


def _local(tag: Any) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _child(node: Any, *names: str) -> Any:
    for name in names:
        for child in node:
            if _local(child.tag) == name:
                return child
    return None


def _text(node: Any) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _link(node: Any) -> str | None:
    """RSS `<link>url</link>`, or Atom `<link rel="alternate" href=...>` (rel defaults to alternate)."""
    for child in node:
        if _local(child.tag) != "link":
            continue
        href = child.get("href")
        if href and child.get("rel", "alternate") == "alternate":
            return href.strip()
        if not href and _text(child):
            return _text(child)
    return None


def _html_text(fragment: str) -> str:
    if "<" not in fragment:
        return " ".join(fragment.split())

    return baseline_all_text(fragment).strip()


def valid_char_refs(text: str) -> tuple[str, int]:
    """(`text` with every character reference to a code point XML forbids, such as `&#xD800;`, as `&#xFFFD;`, how
    many). libxml2's recovery keeps a surrogate's reference as bytes no codec can decode, failing later reads."""
    if "&#" not in text:
        return text, 0

    def fix(m: re.Match[str]) -> str:
        digits = m.group(1) or m.group(2)
        n = int(digits, 16 if m.group(1) else 10) if len(digits) <= 8 else -1
        ok = n in (0x9, 0xA, 0xD) or 0x20 <= n <= 0xD7FF or 0xE000 <= n <= 0xFFFD or 0x10000 <= n <= 0x10FFFF
        return m.group(0) if ok else "&#xFFFD;"

    fixed = _CHAR_REF.sub(fix, text)
    return fixed, sum(a != b for a, b in zip(_CHAR_REF.findall(text), _CHAR_REF.findall(fixed), strict=True))


def parse_feed(text: str) -> Any:
    """The feed's root element (lxml, recovering from malformed XML; no entities expanded, no network), or None."""
    from lxml import etree

    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1).encode("utf-8")
    parser = etree.XMLParser(recover=True, encoding="utf-8", resolve_entities=False, no_network=True,
                             load_dtd=False, huge_tree=False)
    try:
        return etree.fromstring(body, parser)
    except etree.XMLSyntaxError:
        return None


def read_feed(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One document per feed item: title, blank line, the body's visible text. Options: `encoding_from_folder`
    (the file's folder names its encoding, as in chardet's test corpus; default: the XML declaration, else UTF-8),
    `max_feed_bytes` (64 MiB). meta: kind feed_item, title, feed (its title), date, group (the site's host)."""
    data = read_whole(path, ctx, int(ctx.opt("max_feed_bytes", 64 * MiB)))
    if data is None:
        return
    text, bad_refs = valid_char_refs(_decode(data, path, ctx))
    if bad_refs:
        ctx.error("invalid_char_ref_replaced", path, f"{bad_refs} references to code points XML forbids")
    root = parse_feed(text)
    if root is None and _ENTITY.search(text):  # a billion-laughs or external-entity feed: libxml2 gives up on it
        ctx.refuse_entities(path, "the feed declares XML entities and does not parse without them")
        return
    if root is None:
        ctx.error("bad_feed", path, "not parseable as XML")
        return
    items = [n for n in root.iter() if _local(n.tag) in ("item", "entry")]
    if not items:
        ctx.error("bad_feed", path, f"no RSS item or Atom entry (root <{_local(root.tag)}>)")
        return
    channel = _child(root, "channel")
    feed = channel if channel is not None else root
    source_comment = _SOURCE_COMMENT.search(text[:2048])
    site = _link(feed) or (source_comment.group(1) if source_comment else None)
    name = ctx.relative(path)
    for i, item in enumerate(items):
        title = " ".join(_text(_child(item, "title")).split())
        body = next((b for b in (_text(_child(item, n)) for n in _BODIES) if b), "")
        content = "\n\n".join(p for p in (title, _html_text(body)) if p)
        if not content:
            ctx.skip("empty_text")
            continue
        url = _link(item)
        group = domain(site) if site else (domain(url) if url else name)
        yield ctx.document(f"{name}#{i}", content, url, kind=FEED_ITEM, title=title or None, group=group,
                           feed=" ".join(_text(_child(feed, "title")).split()) or None,
                           date=_text(_child(item, *_DATES)) or None)
