"""Web pages: WARC files (responses -> main text; WET conversion records -> their text) and folders of HTML files.

WARC parsing is done here, record by record over the (multi-member) gzip stream, rather than with fastwarc or
warcio: both return a truncated last record as if it were whole and give up at the first malformed header, and
glamkit must count both. A malformed record is counted and skipped by resynchronising on the next `WARC/1.x` line;
a truncated file yields every complete record and counts the cut one, with its byte offset.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

from data_specs.records import Document
from filters.extract import DEFAULT_EXTRACTOR, decode_html, extract, looks_like_html
from sources.readers.base import (
    DECOMPRESS_ERRORS,
    MiB,
    ReadContext,
    check_size,
    offset,
    open_stream,
    read_whole,
)
from sources.readers.page_urls import page_url
from sources.readers.tabular import domain

HTML_TYPES = ("text/html", "application/xhtml+xml")
WARC_TYPES = ("warcinfo", "request", "metadata", "revisit", "continuation")  # ISO 28500's others, skipped by name
PAGE = "page"  # meta.kind of a web page (HTML, or a WET record's text): counted apart from feed items and messages


@dataclass(frozen=True)
class WarcRecord:
    offset: int  # of the record's first byte in the decompressed stream
    headers: dict[str, str]  # WARC headers, names lower-cased
    block: bytes

    @property
    def type(self) -> str:
        return self.headers.get("warc-type", "").lower()


class _Counting:
    """Wraps a stream and counts the bytes handed out: the decompressed offset of every record."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream, self.pos = stream, 0

    def readline(self, limit: int = -1) -> bytes:
        line = self.stream.readline(limit)
        self.pos += len(line)
        return line

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.pos += len(data)
        return data


def iter_warc(stream: IO[bytes], raw: IO[bytes], path: str, ctx: ReadContext, max_record: int) -> Iterator[WarcRecord]:
    """Every well-formed record of a (decompressed) WARC stream; bad and cut records are counted, not raised."""
    src = _Counting(stream)
    try:
        line = src.readline(65536)
        while line:
            if not line.strip():
                line = src.readline(65536)
                continue
            start = src.pos - len(line)
            if not line.startswith(b"WARC/"):
                ctx.error("bad_warc_record", f"{path} at uncompressed byte {start}", "no WARC/ version line")
                line = _resync(src)
                continue
            headers, ok = _headers(src)
            length = headers.get("content-length", "")
            if not ok or not (length.isascii() and length.isdigit()):
                ctx.error("bad_warc_record", f"{path} at uncompressed byte {start}", "bad header or Content-Length")
                line = _resync(src)
                continue
            size = int(length)
            if size > max_record:
                ctx.error("too_large", f"{path} at uncompressed byte {start}", f"record of {size} bytes")
                left = size
                while left:
                    chunk = src.read(min(left, 1 << 20))
                    if not chunk:
                        raise EOFError("file ends inside a record")
                    left -= len(chunk)
                line = src.readline(65536)
                continue
            block = src.read(size)
            if len(block) < size:
                raise EOFError(f"record at uncompressed byte {start} has {len(block)} of {size} bytes")
            yield WarcRecord(start, headers, block)
            line = src.readline(65536)
    except DECOMPRESS_ERRORS as exc:
        ctx.broken(exc, f"{path} at compressed {offset(raw)}")


def _headers(src: _Counting) -> tuple[dict[str, str], bool]:
    headers: dict[str, str] = {}
    while True:
        line = src.readline(65536)
        if not line:
            raise EOFError("file ends inside a record header")
        if not line.strip():
            return headers, True
        name, sep, value = line.decode("utf-8", "replace").partition(":")
        if not sep:
            return headers, False
        headers[name.strip().lower()] = value.strip()


def _resync(src: _Counting) -> bytes:
    """Skip to the next line that starts a record."""
    while True:
        line = src.readline(65536)
        if not line or line.startswith(b"WARC/1."):
            return line


def parse_http(block: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """(status, headers, decoded body) of an HTTP response block, or None if it is not one."""
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
    lines = head.decode("iso-8859-1").splitlines()
    if not sep or not lines or not lines[0].startswith("HTTP/"):
        return None
    parts = lines[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isascii() and parts[1].isdigit() else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body)
    encoding = headers.get("content-encoding", "").lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            body = gzip.decompress(body) if "gzip" in encoding else zlib.decompress(body, -zlib.MAX_WBITS)
        except (OSError, EOFError, zlib.error):
            pass  # many servers label plain bodies as compressed; the HTML sniff decides
    return status, headers, body


def _dechunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return bytes(out) or body
        try:
            size = int(body[pos:end].split(b";")[0], 16)
        except ValueError:
            return bytes(out) or body
        if size <= 0:  # the last chunk (0), or a negative size that would walk backwards
            return bytes(out) if size == 0 else bytes(out) or body
        out += body[end + 2 : end + 2 + size]
        pos = end + 4 + size


def _charset(content_type: str) -> str | None:
    for part in content_type.split(";")[1:]:
        name, _, value = part.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def html_document(
    ctx: ReadContext, locator: str, data: bytes, url: str | None, where: str, charset: str | None = None,
    group: str | None = None, prefer_page_url: bool = False, fallback_group: str | None = None, **meta: str
) -> Document | None:
    """Extract one page; count pages that are not HTML, too large, or empty after extraction. A page without a
    known URL (or with `prefer_page_url`) takes the one its head declares (canonical link, og:url); its group is
    `group`, else its URL's host, else `fallback_group` or the locator (a page of its own)."""
    limit = int(ctx.opt("max_html_bytes", 16 * MiB))
    if len(data) > limit:
        ctx.error("too_large", where, f"{len(data)} bytes of HTML > limit {limit}")
        return None
    if not looks_like_html(data):
        ctx.error("not_html", where, "no HTML markup in the first 64 KB")
        return None
    html, clean = decode_html(data, charset)
    if not clean:
        ctx.error("invalid_utf8_replaced", where, "undecodable bytes; encoding guessed")
    page = extract(html, url, ctx.opt("extractor", DEFAULT_EXTRACTOR))
    if not page.text.strip():
        ctx.skip("no_main_text")
        return None
    url = (page.canonical_url or url) if prefer_page_url else (url or page.canonical_url)
    group = group or (domain(url) if url else None) or fallback_group or locator
    return ctx.document(locator, page.text, url, title=page.title, group=group, kind=PAGE, **meta)


def read_warc(path: str, ctx: ReadContext) -> Iterator[Document]:
    """Documents from WARC response records (HTML, HTTP 200, main text extracted), WET conversion records (text
    as is) and resource records (HTML). Options: `extractor`, `max_html_bytes` (16 MiB), `max_record_bytes`
    (64 MiB)."""
    if not check_size(path, ctx, 1 << 62):
        return
    max_record = int(ctx.opt("max_record_bytes", 64 * MiB))
    with open_stream(path, ctx) as (stream, raw):
        for rec in iter_warc(stream, raw, path, ctx, max_record):
            doc = _warc_document(rec, path, ctx)
            if doc is not None:
                yield doc


def _warc_document(rec: WarcRecord, path: str, ctx: ReadContext) -> Document | None:
    url = rec.headers.get("warc-target-uri", "").strip("<>") or None
    locator = rec.headers.get("warc-record-id") or f"{ctx.relative(path)}@{rec.offset}"
    where = f"{path} record at uncompressed byte {rec.offset}"
    group = domain(url) if url else ctx.source
    if rec.type == "conversion":
        text = ctx.decode(rec.block, where).strip()
        if not text:
            ctx.skip("empty_text")
            return None
        return ctx.document(locator, text, url, group=group, kind=PAGE, warc_type="conversion")
    if rec.type == "resource":
        ctype = rec.headers.get("content-type", "").lower()
        if not ctype.startswith(HTML_TYPES):
            ctx.skip("not_html_resource")
            return None
        return html_document(ctx, locator, rec.block, url, where, _charset(ctype), group=group)
    if rec.type != "response":
        ctx.skip(f"warc_{rec.type}" if rec.type in WARC_TYPES else "warc_other_type")
        return None
    http = parse_http(rec.block)
    if http is None:
        ctx.error("bad_http_response", where)
        return None
    status, headers, body = http
    if status != 200:
        ctx.skip("http_status")
        return None
    ctype = headers.get("content-type", "").lower()
    if ctype and not ctype.startswith(HTML_TYPES):
        ctx.skip("not_html_response")
        return None
    return html_document(ctx, locator, body, url, where, _charset(ctype), group=group)


def read_html_file(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One page per file (.html, .htm, optionally .gz). Options: `extractor`, `base_url` (the page's URL is
    base_url + its path under the glob root), `urls` (where a package keeps its pages' URLs:
    sources/readers/page_urls.py), `group` (a fixed group; default the URL's host, else the file name: one site
    per file), `max_html_bytes` (16 MiB). Without base_url or an index entry, the page's canonical link is its URL."""
    data = read_whole(path, ctx, int(ctx.opt("max_html_bytes", 16 * MiB)))
    if data is None:
        return
    rel = ctx.relative(path)
    base = ctx.opt("base_url")
    url = base.rstrip("/") + "/" + rel.removesuffix(".gz") if base else page_url(path, ctx)
    prefer_page = bool((ctx.opt("urls") or {}).get("prefer_page"))
    doc = html_document(ctx, rel, data, url, path, None, group=ctx.opt("group"), prefer_page_url=prefer_page,
                        fallback_group=rel.rsplit("/", 1)[-1].removesuffix(".gz"))
    if doc is not None:
        yield doc
