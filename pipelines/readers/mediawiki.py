"""MediaWiki XML dumps (plain, .bz2, .gz, and bz2 multistream with its index): one document per article.

Pages are cut out of the stream line by line (`<page>` and `</page>` always sit on their own lines in MediaWiki's
export format, and `<` inside wikitext is escaped), so memory is one page at a time whatever the dump's size.
A multistream dump is many concatenated bz2 streams of ~100 pages each; its index gives each stream's byte offset,
so `multistream_ranges` splits one huge file into independent byte ranges that a Beam job can read in parallel
with `read_mediawiki(path, ctx, start, end)`.
"""

from __future__ import annotations

import bz2
import io
import re
from collections.abc import Iterator
from typing import IO
from xml.etree import ElementTree as ET

from data_specs.records import Document
from pipelines.readers.base import DECOMPRESS_ERRORS, MiB, ReadContext, check_size, decompressing, offset, open_raw
from pipelines.readers.wikitext import wikitext_to_text

_BASE = re.compile(rb"<base>(.*?)</base>")


def read_mediawiki(path: str, ctx: ReadContext, start: int = 0, end: int | None = None) -> Iterator[Document]:
    """Articles (namespace 0, not redirects) of a dump, or of the byte range [start, end) of a multistream dump.

    Options: `namespaces` (list of ints, default [0]), `base_url` (article URL prefix; default from the dump's
    siteinfo), `max_page_bytes` (default 16 MiB; MediaWiki itself caps a revision at 2 MiB).
    """
    if not start and not check_size(path, ctx, 1 << 62):
        return
    namespaces = {str(n) for n in ctx.opt("namespaces", [0])}
    limit = int(ctx.opt("max_page_bytes", 16 * MiB))
    base_url = ctx.opt("base_url") or _site_base(path)
    name = path.rsplit("/", 1)[-1]
    raw = open_raw(path)
    try:
        if start or end is not None:
            if not path.endswith(".bz2"):
                raise ValueError("byte ranges need a bz2 multistream dump")
            raw.seek(start)
            stream: IO[bytes] = bz2.BZ2File(_Window(raw, start, end))  # type: ignore[arg-type]
        else:
            stream = decompressing(raw, path)
        for page in _pages(stream, raw, path, ctx, limit):
            doc = _article(page, name, path, ctx, namespaces, base_url)
            if doc is not None:
                yield doc
    finally:
        raw.close()


def _pages(stream: IO[bytes], raw: IO[bytes], path: str, ctx: ReadContext, limit: int) -> Iterator[bytes]:
    buf: list[bytes] | None = None
    size = 0
    oversized = False
    try:
        for line in stream:
            if buf is None:
                if b"<page>" in line:
                    buf, size, oversized = [line], len(line), False
                continue
            if not oversized:
                buf.append(line)
                size += len(line)
                if size > limit:
                    oversized, buf = True, [b""]
            if b"</page>" in line:
                if oversized:
                    ctx.error("too_large", f"{path} near {offset(raw)}", f"page over {limit} bytes")
                else:
                    yield b"".join(buf)
                buf = None
    except DECOMPRESS_ERRORS as exc:
        ctx.error("truncated", f"{path} at compressed {offset(raw)}", str(exc) or type(exc).__name__)
        return
    if buf is not None:
        ctx.error("truncated", f"{path} at {offset(raw)}", "the dump ends inside a <page>")


def _article(
    page: bytes, name: str, path: str, ctx: ReadContext, namespaces: set[str], base_url: str | None
) -> Document | None:
    text = ctx.decode(page, f"{path}: page")
    try:
        elem = ET.fromstring(text)
    except ET.ParseError as exc:
        ctx.error("bad_page_xml", path, str(exc))
        return None
    title = (elem.findtext("title") or "").strip()
    wikitext = elem.findtext("revision/text") or ""
    if elem.find("redirect") is not None or wikitext.lstrip()[:9].upper() == "#REDIRECT":
        ctx.skip("redirect")
        return None
    if (elem.findtext("ns") or "0").strip() not in namespaces:
        ctx.skip("namespace")
        return None
    body = wikitext_to_text(wikitext)
    if not body:
        ctx.skip("empty_text")
        return None
    page_id = (elem.findtext("id") or "").strip()
    url = base_url + title.replace(" ", "_") if base_url and title else None
    return ctx.document(f"{name}:{page_id or title}", body, url, title=title, group=title, page_id=page_id)


def _site_base(path: str) -> str | None:
    """The article URL prefix from the dump's <siteinfo><base>, read from its first stream only (cheap)."""
    try:
        raw = open_raw(path)
    except Exception:
        return None
    with raw:
        head = _first_bytes(raw, path, 1 * MiB)
    m = _BASE.search(head)
    if not m:
        return None
    base = m.group(1).decode("utf-8", "replace")
    return base.rsplit("/", 1)[0] + "/" if "/wiki/" in base else None


def _first_bytes(raw: IO[bytes], path: str, limit: int) -> bytes:
    out = b""
    try:
        if path.endswith(".bz2"):
            dec = bz2.BZ2Decompressor()
            while not dec.eof and len(out) < limit and b"</siteinfo>" not in out and b"<page>" not in out:
                chunk = raw.read(64 * 1024)
                if not chunk:
                    break
                out += dec.decompress(chunk)
        else:
            out = decompressing(raw, path).read(limit)
    except DECOMPRESS_ERRORS:
        pass
    return out


# -------------------------------------------------------------------------------------------------- multistream
def multistream_offsets(index_path: str) -> list[int]:
    """Distinct stream offsets from a multistream index (`offset:page_id:title` lines, plain or .bz2), in order."""
    offsets: list[int] = []
    raw = open_raw(index_path)
    with raw, io.TextIOWrapper(decompressing(raw, index_path), encoding="utf-8") as lines:
        for line in lines:
            head = line.split(":", 1)[0]
            if head.isdigit():
                off = int(head)
                if not offsets or off != offsets[-1]:
                    offsets.append(off)
    return offsets


def multistream_ranges(index_path: str, streams_per_range: int = 1) -> list[tuple[int, int | None]]:
    """Byte ranges [start, end) covering every indexed stream, `streams_per_range` streams each (end None: EOF).

    Each range decompresses on its own, so `read_mediawiki(dump, ctx, start, end)` over all ranges yields exactly
    the pages of a sequential read: the unit a Beam job splits a 20 GB dump into.
    """
    offsets = multistream_offsets(index_path)
    starts = offsets[::streams_per_range]
    return [(s, starts[i + 1] if i + 1 < len(starts) else None) for i, s in enumerate(starts)]


class _Window(io.RawIOBase):
    """A read-only view of bytes [start, end) of an open file."""

    def __init__(self, raw: IO[bytes], start: int, end: int | None) -> None:
        self.raw, self.left = raw, None if end is None else end - start

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = len(b) if self.left is None else min(len(b), self.left)
        data = self.raw.read(n)
        b[: len(data)] = data
        if self.left is not None:
            self.left -= len(data)
        return len(data)
