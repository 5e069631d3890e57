"""The project's one file I/O module: open a local or Beam-filesystem path, and write files atomically.

Readers open inputs with `open_read` (a local path, `file://`, or any filesystem Apache Beam supports: gs://, s3://,
hdfs://); Beam is imported only when a remote path is met, so `data_specs` still loads without it. Every writer of a
file that others read publishes it with the same protocol: write a hidden temporary sibling with a unique name
(`.NAME.tmp-PID-RANDOM.SUFFIX`: two threads or processes never share it, and the suffix is kept for writers that
infer the format from it), flush, fsync, rename onto the final name, fsync the folder; on any error the temporary
file is removed, so a reader sees the old file or the complete new one, never a part. Checkpoints are Orbax's.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from data_specs.errors import GlamkitError

PathLike = str | os.PathLike[str]


# ------------------------------------------------------------------------------------------------------ reading
def is_remote(path: PathLike) -> bool:
    """True for a path only Beam can open (gs://, s3://, ...); `file://` and plain paths are local."""
    path = os.fspath(path)
    return "://" in path and not path.startswith("file://")


def local(path: PathLike) -> str:
    """A local path without its `file://` prefix."""
    return os.fspath(path).removeprefix("file://")


def open_read(path: PathLike) -> IO[bytes]:
    """Open a file for binary reading, bytes as stored (no decompression: callers decompress and report where it
    breaks). A missing file, a folder or a remote error is a GlamkitError of one line naming the path."""
    path = os.fspath(path)
    if is_remote(path):
        from apache_beam.io.filesystem import CompressionTypes
        from apache_beam.io.filesystems import FileSystems

        try:
            return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
        except Exception as exc:
            raise GlamkitError(f"{path}: cannot open: {exc}") from exc
    path = local(path)
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise GlamkitError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise GlamkitError(f"{path}: is a directory, expected a file") from None


def exists(path: PathLike) -> bool:
    """Whether a file is at `path` (local: a regular file; remote: whatever the filesystem says)."""
    path = os.fspath(path)
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        return bool(FileSystems.exists(path))
    return os.path.isfile(local(path))


def size(path: PathLike) -> int | None:
    """Size in bytes; None when a remote filesystem cannot tell. A missing local file is a GlamkitError."""
    path = os.fspath(path)
    if is_remote(path):
        from apache_beam.io.filesystems import FileSystems

        try:
            return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
        except Exception:
            return None
    try:
        return os.path.getsize(local(path))
    except FileNotFoundError:
        raise GlamkitError(f"{path}: file not found") from None


def match(pattern: str) -> list[str]:
    """Files matching a glob (`**` recursive), sorted; remote patterns through Beam's FileSystems.match."""
    if is_remote(pattern):
        from apache_beam.io.filesystems import FileSystems

        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
    return sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))


# ------------------------------------------------------------------------------------------------------ writing
def temp_sibling(path: Path) -> Path:
    """The hidden, unique temporary name a writer fills before renaming it onto `path` (suffix kept)."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}{path.suffix}")


def fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: Path, path: Path) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_folder(path.parent)


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary local file name to write `path` through (for writers that need a name: ParquetWriter, fastText,
    np.savez, savefig); published when the block ends without error, removed otherwise."""
    path = Path(local(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    try:
        yield tmp
        _publish(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: PathLike) -> Iterator[IO[bytes]]:
    """A binary file to write `path` through, local or remote. Remote: Beam creates the temporary file, then the
    target is deleted and the temporary one renamed (object stores have no atomic replace)."""
    path = os.fspath(path)
    if not is_remote(path):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            yield f
        return
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    head, name = path.rsplit("/", 1)
    tmp = f"{head}/.{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        with FileSystems.create(tmp, compression_type=CompressionTypes.UNCOMPRESSED) as f:
            yield f
    except BaseException:
        if FileSystems.exists(tmp):
            FileSystems.delete([tmp])
        raise
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_bytes(path: PathLike, data: bytes) -> None:
    with atomic_output(path) as f:
        f.write(data)


def write_text(path: PathLike, text: str) -> None:
    """Write UTF-8 text as is (no newline translation)."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path: PathLike, value: Any, **dumps: Any) -> None:
    """`json.dumps(value, **dumps)` and a newline; callers pass their own settings (indent, sort_keys, ...), which
    fix the file's bytes."""
    write_text(path, json.dumps(value, **dumps) + "\n")


def jsonl_gz_bytes(rows: Iterable[Mapping[str, Any]]) -> tuple[bytes, int]:
    """(gzip'd JSONL of `rows`, row count): sorted keys, UTF-8, no name or timestamp in the gzip header, one write
    into the compressor per row (deflate's bytes depend on where its input is cut), so the same rows give the same
    bytes."""
    out = io.BytesIO()
    n = _write_jsonl_gz(out, rows)
    return out.getvalue(), n


def write_jsonl_gz(path: PathLike, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write rows as deterministic gzip'd JSONL (see `jsonl_gz_bytes`), streamed; returns the number written."""
    with atomic_output(path) as f:
        return _write_jsonl_gz(f, rows)


def _write_jsonl_gz(raw: IO[bytes], rows: Iterable[Mapping[str, Any]]) -> int:
    n = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            n += 1
    return n


def replace_symlink(target: str, link: PathLike) -> None:
    """Point `link` at `target` (relative or absolute), replacing what was there in one rename."""
    link = Path(link)
    tmp = temp_sibling(link)
    try:
        tmp.symlink_to(target)
        os.replace(tmp, link)
    finally:
        tmp.unlink(missing_ok=True)

