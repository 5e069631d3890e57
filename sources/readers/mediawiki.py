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

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.records import Document
from sources.readers.base import (
    DECOMPRESS_ERRORS,
    MiB,
    ReadContext,
    bounded_lines,
    capped,
    check_size,
    compressed_position,
    decompressing,
    max_ratio,
    offset,
)
from sources.readers.wikitext import wikitext_to_text

_BASE = re.compile(rb"<base>(.*?)</base>")
_DECLARATION = re.compile(rb"<!(DOCTYPE|ENTITY)", re.I)


def read_mediawiki(path: str, ctx: ReadContext, start: int = 0, end: int | None = None) -> Iterator[Document]:
    """Articles (namespace 0, not redirects) of a dump, or of the byte range [start, end) of a multistream dump.

    Options: `namespaces` (list of ints, default [0]), `base_url` (article URL prefix; default from the dump's
    siteinfo), `max_page_bytes` (default 16 MiB; MediaWiki itself caps a revision at 2 MiB). A dump that declares
    a DTD or entities (MediaWiki exports never do: a billion-laughs or external-entity attack) is refused unread.
    """
    whole = not start and end is None
    if whole and not check_size(path, ctx, 1 << 62):
        return
    namespaces = {str(n) for n in ctx.opt("namespaces", [0])}
    limit = int(ctx.opt("max_page_bytes", 16 * MiB))
    base_url = ctx.opt("base_url") or _site_base(path)
    name = path.rsplit("/", 1)[-1]
    if not whole and (not path.endswith(".bz2") or start < 0 or (end is not None and end < start)):
        raise GlamkitError(f"{path}: byte {start}: a byte range [{start}, {end}) needs a bz2 multistream dump and "
                           "start <= end")
    raw = fileio.open_read(path)
    try:
        if not whole:
            raw.seek(start)
            stream: IO[bytes] = capped(bz2.BZ2File(_Window(raw, start, end)),  # type: ignore[arg-type]
                                       compressed_position(raw, start), max_ratio(ctx))
        else:
            stream = decompressing(raw, path, max_ratio(ctx))
        for page in _pages(stream, raw, path, ctx, limit, whole):
            doc = _article(page, name, path, ctx, namespaces, base_url)
            if doc is not None:
                yield doc
    finally:
        raw.close()


_OPEN, _CLOSE, _END = b"<page>", b"</page>", b"</mediawiki>"
_CHUNK = 1 << 16
_KEEP = 16  # bytes carried over between chunks: longer than any tag searched for


def _pages(stream: IO[bytes], raw: IO[bytes], path: str, ctx: ReadContext, limit: int, whole: bool
           ) -> Iterator[bytes]:
    """Each `<page>...</page>` of the stream, found by scanning chunks (any line layout: one page per line, the whole
    dump on one line, CR line ends), holding at most one page (`limit` bytes) and one chunk in memory."""
    page: bytearray | None = None
    oversized = ended = False
    pending = b""  # the end of the last chunk, which may hold the start of a tag
    try:
        while chunk := stream.read(_CHUNK):
            data, pos = pending + chunk, 0
            if b"<!" in data and _DECLARATION.search(data):
                ctx.refuse_entities(f"{path} near {offset(raw)}", "the dump declares a DTD or XML entities, which "
                                    "MediaWiki exports never do")
                return
            while True:
                if page is None:
                    i = data.find(_OPEN, pos)
                    ended = ended or data.find(_END, pos, i if i >= 0 else len(data)) >= 0
                    if i < 0:
                        pending = data[max(pos, len(data) - _KEEP) :]
                        break
                    page, oversized, pos = bytearray(_OPEN), False, i + len(_OPEN)
                j = data.find(_CLOSE, pos)
                stop = j + len(_CLOSE) if j >= 0 else max(pos, len(data) - _KEEP)
                if not oversized:
                    page += data[pos:stop]
                    if len(page) > limit:
                        oversized, page = True, bytearray()
                pos = stop
                if j < 0:
                    pending = data[pos:]
                    break
                if oversized:
                    ctx.error("too_large", f"{path} near {offset(raw)}", f"page over {limit} bytes")
                else:
                    yield bytes(page)
                page = None
    except DECOMPRESS_ERRORS as exc:
        ctx.broken(exc, f"{path} at compressed {offset(raw)}")
        return
    if page is not None:
        ctx.error("truncated", f"{path} at {offset(raw)}", "the dump ends inside a <page>")
    elif whole and not (ended or _END in pending):
        ctx.error("truncated", f"{path} at {offset(raw)}", "the dump ends before </mediawiki>")


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
        raw = fileio.open_read(path)
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
                chunk = raw.read(64 * 1024) if dec.needs_input else b""
                if not chunk and dec.needs_input:
                    break
                out += dec.decompress(chunk, max_length=limit)  # a bomb's first stream expands no further
        else:
            out = decompressing(raw, path).read(limit)
    except DECOMPRESS_ERRORS:
        pass
    return out


# -------------------------------------------------------------------------------------------------- multistream
def multistream_offsets(index_path: str) -> list[int]:
    """Distinct stream offsets from a multistream index (`offset:page_id:title` lines, plain or .bz2), in order.
    Lines that are not index lines are passed over; an offset that goes backwards or a damaged index fails, naming
    the index and where."""
    offsets: list[int] = []
    with fileio.open_read(index_path) as raw:
        try:
            for lineno, line in enumerate(bounded_lines(decompressing(raw, index_path), MiB), 1):
                head = (line or b"").split(b":", 1)[0]
                if not (head.isdigit() and head.isascii()):
                    continue
                off = int(head)
                if offsets and off < offsets[-1]:
                    raise GlamkitError(f"{index_path}: line {lineno} (at {offset(raw)}): stream offset {off} comes "
                                       f"after {offsets[-1]}: not the index of a multistream dump")
                if not offsets or off != offsets[-1]:
                    offsets.append(off)
        except DECOMPRESS_ERRORS as exc:
            raise GlamkitError(f"{index_path}: at compressed {offset(raw)}: the index is damaged ({exc})") from None
    return offsets


def multistream_ranges(index_path: str, streams_per_range: int = 1) -> list[tuple[int, int | None]]:
    """Byte ranges [start, end) covering the whole dump, `streams_per_range` indexed streams each (end None: EOF).

    Each range decompresses on its own, so `read_mediawiki(dump, ctx, start, end)` over all ranges yields exactly
    the pages of a sequential read: the unit a Beam job splits a 20 GB dump into. The first range starts at byte
    0 (the siteinfo stream, which the index leaves out), so a damaged index loses no page: a range that does not
    start on a stream is counted `truncated` by the reader.
    """
    starts = [0, *multistream_offsets(index_path)[::streams_per_range][1:]]
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
