"""The rule every fuzzed input is held to, through the reader and the sources stage's writer:

  read (documents counted), or counted as an error with a reason, or one line `GlamkitError` naming the file and
  where in it; no other exception escapes; no stage output left half-written; every document written can be
  written again by the other record writer (Parquet, what curation writes).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_specs.errors import GlamkitError
from data_specs.records import Document, read_jsonl_gz, write_jsonl_gz, write_parquet
from data_specs.specs import SourceSpec
from sources.read import SourceStats
from sources.stage import output_path, read_one

REASON = re.compile(r"[a-z][a-z0-9_]*")
WHERE = re.compile(r"(byte|line|row group) \d+")


@dataclass
class Outcome:
    """What one input came to: documents written, errors and skips by reason, or the one-line failure."""

    documents: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    failure: str | None = None

    @property
    def cell(self) -> str:
        """What the input got, for tables and expectations: F (one-line failure), D (documents), D+E (documents
        and counted errors), E (counted errors, no document), S (skipped by design), each with its reasons."""
        if self.failure is not None:
            return "F"
        if self.errors:
            return f"{'D+E' if self.documents else 'E'} {' '.join(sorted(self.errors))}"
        if self.documents:
            return "D"
        return f"S {' '.join(sorted(self.skipped))}".strip()


def check_failure(exc: GlamkitError, files: Iterable[str | Path]) -> str:
    """A GlamkitError as the CLI prints it: one line, naming one of the input files and where in it."""
    msg = str(exc)
    assert msg.strip() and "\n" not in msg.strip(), f"not one line: {msg!r}"
    assert any(Path(f).name in msg for f in files), f"names no input file: {msg}"
    assert WHERE.search(msg), f"says not where in the file: {msg}"
    return msg


def check_published(out_dir: Path, expected: Path | None) -> None:
    """Only complete outputs are visible: the expected file (or none) and no temporary or partial file."""
    visible = sorted(p.name for p in out_dir.iterdir()) if out_dir.exists() else []
    assert visible == ([expected.name] if expected else []), f"left behind: {visible}"


def check_counts(errors: Counter[str], skipped: Counter[str]) -> None:
    for reason, n in (*errors.items(), *skipped.items()):
        assert REASON.fullmatch(reason) and n > 0, f"bad reason {reason!r}: {n}"


def check_documents(path: Path, n: int, scratch: Path) -> list[Document]:
    """The stage's file holds exactly the `n` documents counted, and the Parquet writer accepts each of them."""
    docs = list(read_jsonl_gz(path))
    assert len(docs) == n, f"{path} holds {len(docs)} documents, {n} counted"
    write_parquet(scratch, docs)
    scratch.unlink()
    return docs


def through_sources_stage(spec: SourceSpec, files: Iterable[str | Path], out_dir: Path) -> Outcome:
    """`spec` read by the sources stage's own function (reader + JSONL.gz writer), held to the rule."""
    files = list(files)
    try:
        stats, _ = read_one(spec, out_dir)
    except GlamkitError as exc:
        msg = check_failure(exc, files)
        check_published(out_dir, None)
        return Outcome(failure=msg)
    out = output_path(out_dir, spec.name)
    check_published(out_dir, out)
    errors, skipped = Counter(stats["errors"]), Counter(stats["skipped"])
    check_counts(errors, skipped)
    check_documents(out, stats["documents"], out_dir.parent / "check.parquet")
    return Outcome(stats["documents"], errors, skipped)


def through_writer(docs: Iterator[Document], stats: SourceStats, files: Iterable[str | Path], out_dir: Path
                   ) -> Outcome:
    """Documents from a reader called directly (a multistream range), written as the sources stage writes them."""
    files = list(files)
    out = out_dir / "docs.jsonl.gz"
    out_dir.mkdir(parents=True, exist_ok=True)

    def counted() -> Iterator[Document]:
        for doc in docs:
            stats.add(doc)
            yield doc

    try:
        n = write_jsonl_gz(out, counted())
    except GlamkitError as exc:
        msg = check_failure(exc, files)
        check_published(out_dir, None)
        return Outcome(failure=msg)
    check_published(out_dir, out)
    check_counts(stats.errors, stats.skipped)
    assert n == stats.documents
    check_documents(out, n, out_dir.parent / "check.parquet")
    return Outcome(n, stats.errors, stats.skipped)


def lay_out(folder: Path, files: dict[str, bytes]) -> list[Path]:
    paths = []
    for rel, data in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths
