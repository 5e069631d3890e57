"""What every reader shares: the read context (counts of what could not be read, and why) and file opening.

A reader is a plain generator `read_x(path, ctx) -> Iterator[Document]`: usable in a loop, a test or a Beam DoFn.
Whatever it cannot turn into a document it counts in `ctx.errors` (bad input) or `ctx.skipped` (by design: redirects,
non-article pages, non-HTML responses) under a reason, and logs the file and byte offset, so nothing is lost silently.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import logging
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from data_specs import io as fileio
from data_specs.records import Document, doc_without_surrogates, make_doc_id, without_surrogates

log = logging.getLogger("glamkit.readers")

# What a damaged compressed stream raises while it is read: truncation (EOFError), corrupt data (OSError, zlib.error),
# and a bomb cut at its cap (DecompressionBomb, an OSError).
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (EOFError, OSError, zlib.error)
MiB = 1 << 20
LOGGED_PER_REASON = 5
# A compressed stream may expand to BOMB_FLOOR bytes, and beyond that to MAX_COMPRESSION_RATIO times the compressed
# bytes read so far (option `max_compression_ratio`). Real text compresses 3-10x (a Wikipedia dump ~5x, WET ~3x);
# a gzip bomb ~1000x, a bz2 bomb far more.
BOMB_FLOOR = 64 * MiB
MAX_COMPRESSION_RATIO = 200


class DecompressionBomb(OSError):
    """A compressed stream that expands past its cap: cut there, counted as `decompression_bomb`."""


@dataclass
class ReadContext:
    """Per-source reading state: the source's name and component, its reader options, and the tallies."""

    source: str
    component: str
    options: Mapping[str, Any] = field(default_factory=dict)
    roots: tuple[str, ...] = ()  # static prefixes of the source's globs, for relative names (urls, groups)
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    memo: dict[str, Any] = field(default_factory=dict)  # what a reader loads once per source (a URL index)

    def opt(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def error(self, reason: str, where: str, detail: str = "") -> None:
        """Count bad input under `reason` and log where it was (file, byte offset or line)."""
        self.errors[reason] += 1
        n = self.errors[reason]
        if n <= LOGGED_PER_REASON:  # the first few of each reason, with file and offset; the rest are counted
            more = " (further ones counted, not logged)" if n == LOGGED_PER_REASON else ""
            log.warning("%s: %s: %s%s%s", self.source, where, reason, f" ({detail})" if detail else "", more)

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    def refuse_entities(self, where: str, why: str) -> None:
        """Count an XML file that declares entities, refused unread: expanding them is a billion-laughs (memory)
        or external-entity (file disclosure) attack, and no real dump or feed needs them."""
        self.error("xml_entities_refused", where, f"{why}: refused without expanding them (a billion-laughs or "
                   "external-entity attack)")

    def broken(self, exc: BaseException, where: str) -> None:
        """Count a stream that broke while being read: a bomb cut at its cap, or a truncated or corrupt file."""
        reason = "decompression_bomb" if isinstance(exc, DecompressionBomb) else "truncated"
        self.error(reason, where, str(exc) or type(exc).__name__)

    def relative(self, path: str) -> str:
        """`path` relative to the glob root it was found under (its basename if none matches)."""
        for root in sorted(self.roots, key=len, reverse=True):
            if root and path.startswith(root.rstrip("/") + "/"):
                return path[len(root.rstrip("/")) + 1 :]
        return path.rsplit("/", 1)[-1]

    def document(self, locator: str, text: str, url: str | None = None, /, **meta: str | None) -> Document:
        """A document of this source; `meta` may use any key (a record's own `text` or `url` field included)."""
        clean = {k: v for k, v in meta.items() if v is not None and v != ""}
        return self.checked(Document(make_doc_id(self.source, locator), self.component, self.source, text, url, clean),
                            locator)

    def checked(self, doc: Document, where: str) -> Document:
        """`doc` as every writer accepts it: a lone surrogate in any field (a `\\ud83d` JSON escape, a strange
        codec's output) becomes U+FFFD, and the document is counted as `lone_surrogate_replaced`."""
        doc, repaired = doc_without_surrogates(doc)
        if repaired:
            self.error("lone_surrogate_replaced", where)
        return doc

    def decode(self, data: bytes, where: str, encoding: str = "utf-8") -> str:
        """Decode text; invalid bytes become U+FFFD and the document is counted as `invalid_utf8_replaced`. An unknown
        codec, or one that is not a character set (punycode, idna), decodes as UTF-8; a codec that yields lone
        surrogates (unicode_escape, utf-7) has them replaced and counted."""
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as exc:
            self.error("invalid_utf8_replaced", f"{where} at byte {exc.start}", exc.reason)
            try:
                text = data.decode(encoding, errors="replace")
            except (UnicodeError, LookupError):
                text = data.decode("utf-8", errors="replace")
        except (UnicodeError, LookupError):
            if encoding == "utf-8":
                raise
            return self.decode(data, where)
        text, repaired = without_surrogates(text)
        if repaired:
            self.error("lone_surrogate_replaced", where, f"decoded as {encoding}")
        return text


# ------------------------------------------------------------------------------------------------------- files
def decompressing(raw: IO[bytes], path: str, max_ratio: float = MAX_COMPRESSION_RATIO) -> IO[bytes]:
    """Wrap `raw` in a decompressor chosen by suffix (.gz, .bz2; concatenated streams included), capped against
    bombs (`capped`)."""
    if path.endswith(".gz"):
        return capped(gzip.GzipFile(fileobj=raw, mode="rb"), compressed_position(raw), max_ratio)  # type: ignore[arg-type]
    if path.endswith(".bz2"):
        return capped(bz2.BZ2File(raw, mode="rb"), compressed_position(raw), max_ratio)  # type: ignore[arg-type]
    return raw


def compressed_position(raw: IO[bytes], start: int = 0) -> Callable[[], int]:
    """How many compressed bytes have been read from `raw` (since `start`), for the bomb cap."""

    def tell() -> int:
        try:
            return raw.tell() - start
        except (OSError, ValueError, AttributeError):  # a stream that cannot tell: only the floor applies
            return 0

    return tell


def capped(stream: IO[bytes], compressed: Callable[[], int], max_ratio: float = MAX_COMPRESSION_RATIO) -> IO[bytes]:
    """`stream` (decompressed), raising DecompressionBomb once it has given more than BOMB_FLOOR bytes and more than
    `max_ratio` times the compressed bytes read so far (`compressed()`): a bomb is cut, never expanded."""
    return io.BufferedReader(_Capped(stream, compressed, max_ratio), buffer_size=1 << 16)


class _Capped(io.RawIOBase):
    def __init__(self, stream: IO[bytes], compressed: Callable[[], int], max_ratio: float) -> None:
        self.stream, self.compressed, self.max_ratio, self.out = stream, compressed, max_ratio, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        n = self.stream.readinto(b)  # type: ignore[attr-defined]
        self.out += n
        if self.out > BOMB_FLOOR and self.out > self.max_ratio * self.compressed():
            raise DecompressionBomb(f"expands over {self.max_ratio:g}x its compressed size: cut after {self.out} "
                                    f"decompressed bytes")
        return n


@contextmanager
def open_stream(path: str, ctx: ReadContext | None = None) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """(decompressed stream, raw file): the raw file's tell() gives byte offsets for error messages. The source's
    `max_compression_ratio` option (default MAX_COMPRESSION_RATIO) caps the expansion."""
    raw = fileio.open_read(path)
    try:
        yield decompressing(raw, path, max_ratio(ctx)), raw
    finally:
        raw.close()


def max_ratio(ctx: ReadContext | None) -> float:
    return float(ctx.opt("max_compression_ratio", MAX_COMPRESSION_RATIO)) if ctx is not None else MAX_COMPRESSION_RATIO


def bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of a byte stream, none holding more than `limit` + 1 bytes in memory: a longer line is read on in
    chunks and given as None (the caller counts it), so one endless line cannot exhaust memory. A UTF-8 byte-order
    mark at the start of the stream (Windows tools write one) is dropped."""
    first = True
    while True:
        line = stream.readline(limit + 1)
        if first and line.startswith(codecs.BOM_UTF8):
            line = line[len(codecs.BOM_UTF8) :] or stream.readline(limit + 1)
        first = False
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            while line and not line.endswith(b"\n"):
                line = stream.readline(limit + 1)
            yield None
            continue
        yield line


def numbered_lines(path: str, ctx: ReadContext, limit: int) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of a text file, compressed or not (`open_stream`), from 1: a line over `limit` bytes is
    counted `too_large` and skipped; a stream that stops decompressing is counted (`ctx.broken`) naming the line it
    stopped after."""
    with open_stream(path, ctx) as (stream, raw):
        lineno = 0
        try:
            for line in bounded_lines(stream, limit):
                lineno += 1
                if line is None:
                    ctx.error("too_large", f"{path}:{lineno}", f"line over {limit} bytes")
                    continue
                yield lineno, line
        except DECOMPRESS_ERRORS as exc:
            ctx.broken(exc, f"{path} at {offset(raw)} (after line {lineno})")


def offset(raw: IO[bytes]) -> str:
    try:
        return f"byte {raw.tell()}"
    except (OSError, ValueError):
        return "unknown offset"


def check_size(path: str, ctx: ReadContext, limit: int) -> bool:
    """False (and counted) for an empty file or one over `limit` bytes that would be one document."""
    size = fileio.size(path)
    if size == 0:
        ctx.error("empty_file", path)
        return False
    if size is not None and size > limit:
        ctx.error("too_large", path, f"{size} bytes > limit {limit}")
        return False
    return True


def read_limited(stream: IO[bytes], limit: int) -> bytes | None:
    """Read a whole (decompressed) stream, or None if it exceeds `limit` bytes (a bomb or an oversized document)."""
    data = stream.read(limit + 1)
    return None if len(data) > limit else data


def read_whole(path: str, ctx: ReadContext, limit: int) -> bytes | None:
    """A file that is one document (a page, a feed), decompressed, or None with the reason counted: empty, over
    `limit` bytes (before or after decompression), or cut short."""
    if not check_size(path, ctx, limit if not path.endswith((".gz", ".bz2")) else 1 << 62):
        return None
    try:
        with open_stream(path, ctx) as (stream, _raw):
            data = read_limited(stream, limit)
    except DECOMPRESS_ERRORS as exc:
        ctx.broken(exc, path)
        return None
    if data is None:
        ctx.error("too_large", path, f"over {limit} bytes decompressed")
    return data


def stem(path: str) -> str:
    name = Path(path.rsplit("/", 1)[-1]).name
    for suffix in (".gz", ".bz2"):
        name = name.removesuffix(suffix)
    return name.rsplit(".", 1)[0] if "." in name else name
