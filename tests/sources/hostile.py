"""Hostile inputs, one of each kind, built from a fuzz target's real seed: the named cases the README's table
lists per reader (the random mutations of `fuzz_inputs.mutations` cover the same kinds at random offsets).

Each kind is `(target) -> {relative path: bytes}` or None where it does not apply to the target's format.
"""

from __future__ import annotations

import bz2
import gzip
import io
import re
import zipfile
from collections.abc import Callable
from functools import cache

from tests.sources.fuzz_inputs import Target

GiB = 1 << 30
LONG_LINE = b"lorem ipsum " * (20_000_000 // 12)  # a 20 MB line: tens of MB in one line, no newline
NESTED_TAGS = b"<div>" * 100_000 + b"<p>Deep inside 100k divs there is a sentence.</p>" + b"</div>" * 100_000
DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
LAUGHS = b"".join(b'<!ENTITY lol%d "%s">\n' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"lol" * 10)
                  for i in range(1, 10))
BILLION_LAUGHS = b'<!DOCTYPE lolz [\n' + LAUGHS + b"]>\n"  # &lol9; would expand to 10^9 "lol"s (3 GB)
EXTERNAL_ENTITY = b'<!DOCTYPE x [\n<!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
COMPRESSED = (".gz", ".bz2", ".zip")


def _main(target: Target) -> str:
    return next(iter(target.files(b"")))


def _content(target: Target, change: Callable[[bytes], bytes | None]) -> dict[str, bytes] | None:
    """The target's files with its seed changed (before any compression the target applies)."""
    if target.name.endswith("-raw"):
        return None
    data = change(target.seed())
    return None if data is None else target.files(data)


def _middle(data: bytes, insert: bytes, after: bytes = b"\n") -> bytes:
    """`insert` at the first `after` past the middle of `data` (inside the content, not its header)."""
    at = data.find(after, len(data) // 2)
    at = len(data) // 2 if at < 0 else at + len(after)
    return data[:at] + insert + data[at:]


def _insert(insert: bytes) -> Callable[[Target], dict[str, bytes] | None]:
    """`insert` into the middle of the content: a Parquet file's data pages, a WARC record's block, a page's
    wikitext, a feed item's description, a line of text, a CSV row."""

    def kind(target: Target) -> dict[str, bytes] | None:
        if target.name.endswith("parquet"):
            return target.files(_middle(target.seed(), insert, b"PAR1"))
        if target.reader == "mediawiki":
            tag = b'xml:space="preserve">'
            return _content(target, lambda d: d.replace(tag, tag + insert, 2))
        spot = {"feed": b"<description>", "warc": b"\r\n\r\n"}.get(target.reader, b"\n")
        return _content(target, lambda d: _middle(d, insert, spot))

    return kind


def _index(target: Target) -> bool:
    """A page_urls target: its seed is the URL index (or sidecar) beside the page, read as is."""
    return target.name.startswith("page_urls")


def truncated(target: Target) -> dict[str, bytes] | None:
    if _index(target):
        return _content(target, lambda d: d[: len(d) // 2])
    if target.name.endswith(("-gz", "bz2", "zip", "parquet")) or _main(target).endswith(COMPRESSED):
        files = target.files(target.seed())  # the compressed file itself, cut in half
        main = _main(target)
        return {**files, main: files[main][: len(files[main]) // 2]}
    return _content(target, lambda d: d[: len(d) // 2])


def flipped(target: Target) -> dict[str, bytes] | None:
    if _index(target):
        return _content(target, lambda d: d[: len(d) // 3] + bytes([d[len(d) // 3] ^ 0xFF]) + d[len(d) // 3 + 1 :])
    files = target.files(target.seed())
    main = _main(target)
    data = bytearray(files[main])
    data[len(data) // 3] ^= 0xFF
    return {**files, main: bytes(data)}


def _replace_lines(old: bytes, new: bytes) -> Callable[[Target], dict[str, bytes] | None]:
    return lambda t: _content(t, lambda d: d.replace(b"\r\n", b"\n").replace(old, new))


def _json_only(make: Callable[[Target, bytes], bytes]) -> Callable[[Target], dict[str, bytes] | None]:
    """A JSON kind: `make(target, seed)` is the records file, sidecar or index to read instead."""

    def kind(target: Target) -> dict[str, bytes] | None:
        if target.name in ("records-jsonl", "records-jsonl-gz", "page_urls-json_index", "page_urls-sidecar_json"):
            return _content(target, lambda d: make(target, d))
        return None

    return kind


def _lone_surrogates(target: Target, seed: bytes) -> bytes:
    """Half an emoji (`\\ud83d`, `\\udc00`), as scraped JSON holds it, in a record's text or in every URL."""
    if target.reader == "records":
        first = seed.splitlines(keepends=True)[0]
        return seed.replace(first, first.replace(b'"text": "', b'"text": "half an emoji \\ud83d, \\udc00 ', 1), 1)
    return re.sub(rb'("url": ?")', rb"\1\\ud83d", seed)


def _deep_json(target: Target, seed: bytes) -> bytes:
    return (b'{"text": ' + DEEP_JSON + b"}\n" + seed) if target.reader == "records" else DEEP_JSON


def _wrong_types(target: Target, seed: bytes) -> bytes:
    """A JSON value of the wrong type where the reader expects a string or an object."""
    if target.name == "page_urls-json_index":
        return b'[{"url": 1}, "html/231.html"]'
    if target.name == "page_urls-sidecar_json":
        return b'{"url": 12345, "title": ["x"]}'
    return (b'{"text": 42}\n{"id": 1, "component": "web", "source": [], "text": {}}\n["not", "an", "object"]\n'
            b'{"text": "a text", "meta": {"lang": 1}, "url": 7, "id": [1]}\n' + seed)


def content_length_past_end(target: Target) -> dict[str, bytes] | None:
    """The last record's WARC Content-Length 100,000 bytes past the end of the file."""
    if target.reader != "warc":
        return None

    def change(d: bytes) -> bytes:
        at = d.rindex(b"WARC/1.0\r\n")
        m = re.compile(rb"(?i)content-length: (\d+)\r\n").search(d, at)
        return d[: m.start(1)] + str(int(m.group(1)) + 100_000).encode() + d[m.end(1) :]

    return _content(target, change)


def _is_page(target: Target) -> bool:
    return target.name.startswith("html_dir")


def nested_tags(target: Target) -> dict[str, bytes] | None:
    """100,000 nested <div>s around a sentence, in a page's body (a page file, a WARC response, a feed item)."""
    if _is_page(target):
        return _in_page(target, lambda page: _middle(page, NESTED_TAGS, b"<body"))
    if target.reader == "feed":
        return _content(target, lambda d: _middle(d, b"<![CDATA[" + NESTED_TAGS + b"]]>", b"<description>"))
    if target.reader == "warc" and target.name != "wet":
        return _content(target, lambda d: _in_block(d, NESTED_TAGS, b"<body"))
    return None


def _in_page(target: Target, change: Callable[[bytes], bytes]) -> dict[str, bytes]:
    """An html_dir target's page (gunzipped if need be) changed."""
    files = target.files(target.seed())
    main = _main(target)
    page = change(gzip.decompress(files[main]) if main.endswith(".gz") else files[main])
    return {**files, main: gzip.compress(page, mtime=0) if main.endswith(".gz") else page}


def _in_block(warc: bytes, insert: bytes, marker: bytes | None) -> bytes:
    """`insert` into the first record block that holds `marker`, after the tag it starts (None: at the start of
    the first block), the record's Content-Length raised to match."""
    for m in re.finditer(rb"(?i)content-length: (\d+)\r\n", warc):
        start = warc.find(b"\r\n\r\n", m.start()) + 4
        at = start if marker is None else warc.lower().find(marker, start, start + int(m.group(1)))
        if at >= 0:
            at = at if marker is None else warc.find(b">", at) + 1
            size = str(int(m.group(1)) + len(insert)).encode()
            return warc[: m.start(1)] + size + warc[m.end(1) : at] + insert + warc[at:]
    raise AssertionError(f"no {marker!r} in the WARC seed")


def long_line(target: Target) -> dict[str, bytes] | None:
    """A line of 20 MB: in a text, a CSV field, a record's text, a page, a WARC record's block."""
    if target.reader == "records" and not target.name.endswith("parquet"):
        return _content(target, lambda d: b'{"text": "' + LONG_LINE + b'"}\n' + d)
    if target.reader == "warc":
        return _content(target, lambda d: _in_block(d, LONG_LINE, None if target.name == "wet" else b"<body"))
    if _is_page(target):
        return _in_page(target, lambda page: _middle(page, LONG_LINE, b"<body"))
    if target.name.startswith("page_urls") or target.name.endswith("parquet"):
        return None
    return _insert(LONG_LINE)(target)


def _xml_attack(dtd: bytes, use: bytes) -> Callable[[Target], dict[str, bytes] | None]:
    """`dtd` before the root (after any XML declaration), `use` (its entity) in a page's text or an item."""

    def kind(target: Target) -> dict[str, bytes] | None:
        if _is_page(target):
            return _in_page(target, lambda page: dtd + _middle(page, use, b"<body"))
        if target.reader not in ("mediawiki", "feed"):
            return None

        def change(d: bytes) -> bytes:
            decl = re.match(rb"<\?xml[^>]*\?>\s*", d)
            head = decl.group(0) if decl else b""
            spot = b'xml:space="preserve">' if target.reader == "mediawiki" else b"<description>"
            return head + dtd + d[len(head) :].replace(spot, spot + use, 1)

        return _content(target, change)

    return kind


# ------------------------------------------------------------------------------------------------ bombs
@cache
def gzip_bomb(size: int = GiB) -> bytes:
    """`size` zero bytes as concatenated gzip members of 16 MiB each (~1 MB in all: a ~1000x bomb)."""
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    return member * (size // (16 << 20))


@cache
def bz2_bomb(size: int = GiB) -> bytes:
    """`size` zero bytes as concatenated bz2 streams of 16 MiB each (~3 KB in all)."""
    return bz2.compress(bytes(16 << 20)) * (size // (16 << 20))


@cache
def zip_bomb(size: int = 256 << 20) -> bytes:
    """A zip whose one CSV member holds a header and `size` zero bytes (deflated ~1000x)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("NewsArticles.csv", (2017, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            f.write(b"article_id,text\n1,")
            chunk = bytes(16 << 20)
            for _ in range(size // len(chunk)):
                f.write(chunk)
    return buf.getvalue()


def bomb(kind: str) -> Callable[[Target], dict[str, bytes] | None]:
    """The target's main file replaced by a bomb of its compression (a `.gz` or `.bz2` suffix added if it has
    none; a zip for zip targets). Readers of one-document files cut it at their document limit."""

    def make(target: Target) -> dict[str, bytes] | None:
        main = _main(target)
        if target.reader == "usenet_pickle" or main.endswith(".parquet") or target.name.endswith("-raw") or \
                _index(target):  # a pickle and Parquet are not streams; an index is read as is
            return None
        files = {k: v for k, v in target.files(target.seed()).items() if k != main}
        if main.endswith(".zip"):
            return {main: zip_bomb(), **files} if kind == "gzip" else None
        base = main.removesuffix(".gz").removesuffix(".bz2")
        return {base + (".gz" if kind == "gzip" else ".bz2"): gzip_bomb() if kind == "gzip" else bz2_bomb(), **files}

    return make


# ------------------------------------------------------------------------------------------------ the kinds
KINDS: dict[str, Callable[[Target], dict[str, bytes] | None]] = {
    "truncated at half": truncated,
    "byte flipped": flipped,
    "bytes inserted": _insert(b"\x8f\x00\xc0\x7f\xfe"),
    "invalid UTF-8": _insert(b" caf\xc3 \xff\xfe \xed\xa0\xbd "),
    "NUL and controls": _insert(b" \x00\x01\x1b[31m\x0b\x0c\x7f "),
    "BOM": lambda t: _content(t, lambda d: b"\xef\xbb\xbf" + d),
    "CRLF": _replace_lines(b"\n", b"\r\n"),
    "lone CR": _replace_lines(b"\n", b"\r"),
    "mixed encodings": _insert(" café “quoted” — naïve ".encode("cp1252") + " 日本語 ".encode("shift_jis")),
    "20 MB line": long_line,
    "lone surrogate escapes": _json_only(_lone_surrogates),
    "deeply nested JSON": _json_only(_deep_json),
    "wrong types": _json_only(_wrong_types),
    "Content-Length past the end": content_length_past_end,
    "100k nested tags": nested_tags,
    "billion laughs": _xml_attack(BILLION_LAUGHS, b"&lol9;"),
    "external entity": _xml_attack(EXTERNAL_ENTITY, b"&xxe;"),
    "gzip bomb": bomb("gzip"),
    "bz2 bomb": bomb("bz2"),
}


# ------------------------------------------------------------------------------------------------ the table
# The README's table: a column per reader (and file kind), a row per input kind. `python -m tests.sources.hostile`
# reads every case and prints it; tests/sources/test_hostile_inputs.py holds the expected cells.
COLUMNS: dict[str, str] = {
    "mediawiki-xml": "wiki", "gutenberg": "gutenberg", "text_lines": "lines", "labelled_lines": "labelled",
    "news_csv-zip": "news csv", "dialog_csv": "dialog csv", "usenet_pickle": "pickle", "usenet_files": "usenet",
    "warc": "warc", "wet": "wet", "html_dir": "html", "feed-utf8": "feed", "records-jsonl": "jsonl",
    "records-parquet": "parquet", "page_urls-json_index": "url index", "page_urls-python_dict": "url dict",
    "page_urls-sidecar_json": "url sidecar",
}


def outcome(target: Target, kind: str) -> str | None:
    """The cell for one case (None: the kind does not apply), read through the sources stage's function."""
    import tempfile
    from dataclasses import replace
    from pathlib import Path

    from tests.sources.fuzz_rule import lay_out, through_sources_stage

    files = KINDS[kind](target)
    if files is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = lay_out(folder / "in", files)
        spec = replace(target.spec(folder / "in"), paths=(str(folder / "in" / next(iter(files))),))
        return through_sources_stage(spec, paths, folder / "out").cell


def table(cells: dict[str, dict[str, str]]) -> str:
    """The markdown table of `cells` (target -> kind -> cell): codes in the grid, reasons listed below it."""
    names = [n for n in COLUMNS if n in cells]
    lines = ["| input | " + " | ".join(COLUMNS[n] for n in names) + " |",
             "|---|" + "|".join(":-:" for _ in names) + "|"]
    for kind in KINDS:
        row = [cells[n].get(kind, "·").split(" ")[0] for n in names]
        lines.append(f"| {kind} | " + " | ".join(row) + " |")
    lines.append("")
    for kind in KINDS:
        reasons: dict[str, list[str]] = {}
        for n in names:
            for reason in cells[n].get(kind, "").split(" ")[1:]:
                reasons.setdefault(reason, []).append(COLUMNS[n])
        if reasons:
            lines.append(f"- {kind}: " + "; ".join(f"`{r}` ({', '.join(cols)})" for r, cols in sorted(reasons.items())))
    return "\n".join(lines)


def main() -> None:
    from tests.sources.fuzz_inputs import TARGETS

    cells: dict[str, dict[str, str]] = {}
    for target in TARGETS:
        if target.name in COLUMNS:
            cells[target.name] = {k: c for k in KINDS if (c := outcome(target, k)) is not None}
    print(table(cells))


if __name__ == "__main__":
    main()
