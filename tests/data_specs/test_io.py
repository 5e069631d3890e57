"""data_specs.io: atomic writes (no partial file, no temp left, unique temp names, fsync), one-line open errors,
deterministic gzip'd JSONL, and no Beam import for local paths."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from data_specs import io as fileio
from data_specs.errors import GlamkitError


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp-" in p.name)


def test_write_publishes_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.json"
    fileio.write_json(path, {"b": 1, "a": "é"}, sort_keys=True, indent=2, ensure_ascii=False)
    assert path.read_bytes() == (json.dumps({"a": "é", "b": 1}, indent=2, ensure_ascii=False) + "\n").encode()
    assert _leftovers(path.parent) == []


def test_error_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    fileio.write_bytes(path, b"old")
    with pytest.raises(RuntimeError), fileio.atomic_output(path) as f:
        f.write(b"partial")
        raise RuntimeError("writer failed")
    assert path.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_temp_names_are_unique_and_keep_the_suffix(tmp_path: Path) -> None:
    names: list[str] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        with fileio.atomic_path(tmp_path / "model.npz") as tmp:
            with lock:
                names.append(tmp.name)
            tmp.write_bytes(str(i).encode())

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(names)) == 8
    assert all(n.startswith(".model.npz.tmp-") and n.endswith(".npz") for n in names)
    assert (tmp_path / "model.npz").read_text() in {str(i) for i in range(8)}
    assert _leftovers(tmp_path) == []


def test_fsync_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    fileio.write_text(tmp_path / "a.txt", "x")
    assert len(calls) == 2  # the file, then its folder


def test_jsonl_gz_is_deterministic(tmp_path: Path) -> None:
    rows = [{"b": 2, "a": "ü"}, {"a": 1}]
    n = fileio.write_jsonl_gz(tmp_path / "a.jsonl.gz", rows)
    data, m = fileio.jsonl_gz_bytes(rows)
    assert n == m == 2
    assert (tmp_path / "a.jsonl.gz").read_bytes() == data
    assert gzip.decompress(data).decode() == '{"a": "ü", "b": 2}\n{"a": 1}\n'


def test_open_read_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(GlamkitError, match="file not found"):
        fileio.open_read(tmp_path / "nosuch")
    with pytest.raises(GlamkitError, match="is a directory"):
        fileio.open_read(tmp_path)
    (tmp_path / "f").write_bytes(b"abc")
    with fileio.open_read(f"file://{tmp_path / 'f'}") as f:
        assert f.read() == b"abc"
    assert fileio.size(tmp_path / "f") == 3 and fileio.exists(tmp_path / "f") and not fileio.exists(tmp_path)
    assert fileio.match(str(tmp_path / "**" / "f")) == [str(tmp_path / "f")]


def test_replace_symlink(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    fileio.replace_symlink("a", tmp_path / "link")
    fileio.replace_symlink("b", tmp_path / "link")
    assert os.readlink(tmp_path / "link") == "b" and _leftovers(tmp_path) == []


def test_local_io_loads_no_beam() -> None:
    code = "import sys; from data_specs import io; print('apache_beam' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
