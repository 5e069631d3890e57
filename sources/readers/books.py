"""Plain-text books: one document per file, Project Gutenberg header, footer and licence removed.

Two editions of one work (Shakespeare's `hamlet_gut` and the First Folio `hamlet_gut_f`) stay two documents, but
share `meta.work` and `meta.group`, so a train/held-out split keyed on the group never puts a work on both sides.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from data_specs.records import Document
from sources.readers.base import MiB, ReadContext, read_whole, stem

# Marker lines, as used across Gutenberg's history (the `gutenberg` package's lists, trimmed to what is distinct).
_START = re.compile(
    r"^\s*(\*{3}\s*START OF (THIS|THE) PROJECT GUTENBERG|\*END\*THE SMALL PRINT|\*{3}\s*START OF THE COPYRIGHTED"
    r"|This etext was prepared by|This Etext was prepared by|\*{5}\s*This file should be named)",
    re.I,
)
_END = re.compile(
    r"^\s*(\*{3}\s*END OF (THIS|THE) PROJECT GUTENBERG|End of (the |this )?Project Gutenberg|"
    r"End of Project Gutenberg's|\*{3}\s*START: FULL LICENSE|\*\*\*END OF THE PROJECT GUTENBERG|"
    r"End of The Project Gutenberg)",
    re.I,
)
_PRODUCED = re.compile(r"^\s*(Produced by|This e-?text was produced by|E-text prepared by|Transcribed by)", re.I)
_TITLE = re.compile(r"^\s*Title:\s*(.+?)\s*$", re.M)
_EDITION = re.compile(r"_gut(_f)?$")


def strip_gutenberg(text: str) -> str:
    """The body of a Gutenberg text: after the START marker, before the END marker (licence and all after it)."""
    lines = text.splitlines()
    start, end = 0, len(lines)
    for i, line in enumerate(lines):
        if _START.match(line):
            start = i + 1
            break
    for i in range(start, len(lines)):
        if _END.match(lines[i]):
            end = i
            break
    body = lines[start:end]
    # the producer credit right after the START marker (within the first few non-blank lines)
    for i, line in enumerate(body[:12]):
        if _PRODUCED.match(line):
            j = i + 1  # a credit may wrap onto a second line or two, up to a blank line
            while j < min(len(body), i + 3) and body[j].strip() and not body[j].isupper():
                j += 1
            body = body[:i] + body[j:]
            break
    return "\n".join(body).strip("\n\ufeff ").strip()


def work_key(path: str, aliases: dict[str, str]) -> tuple[str, str]:
    """(work, edition) from a file name: `hamlet_gut_f` -> ('hamlet', 'gut_f'); aliases map folio spellings."""
    name = stem(path)
    m = _EDITION.search(name)
    edition = m.group(0)[1:] if m else ""
    work = name[: m.start()] if m else name
    return aliases.get(work, work), edition


@lru_cache(maxsize=64)
def _metadata(folder: str, filename: str) -> dict[str, dict[str, str]]:
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read(Path(folder) / filename, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return {}
    return {s: dict(ini[s]) for s in ini.sections()}


def read_gutenberg(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One document per book file. Options: `work_aliases` (file-stem work -> canonical work), `metadata_file`
    (an INI next to the texts with `[stem] title = ..., url = ...`, as the shakespeare package ships),
    `max_doc_bytes` (default 256 MiB)."""
    data = read_whole(path, ctx, int(ctx.opt("max_doc_bytes", 256 * MiB)))
    if data is None:
        return
    raw_text = ctx.decode(data, path).replace("\r\n", "\n")
    text = strip_gutenberg(raw_text)
    if not text.strip():
        ctx.error("no_text", path, "nothing left after removing the Gutenberg header and footer")
        return
    work, edition = work_key(path, dict(ctx.opt("work_aliases", {})))
    meta_file = ctx.opt("metadata_file")
    info = _metadata(str(Path(path).parent), meta_file).get(stem(path), {}) if meta_file and "://" not in path else {}
    m = _TITLE.search(raw_text[:5000])
    title = info.get("title") or (m.group(1) if m else work.replace("_", " "))
    yield ctx.document(
        ctx.relative(path), text, info.get("url"), title=title, work=work, group=work, edition=edition,
        author=info.get("creator"),
    )
