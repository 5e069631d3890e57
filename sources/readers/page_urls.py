"""Where saved pages came from: packaged page collections keep each page's URL beside it, not in it. A page's URL
names its host, the unit a train/held-out split must not cut (`meta.group`), so the readers look it up here.

The `urls` option of `html_dir` says where, by `kind`:
    json_index    a JSON object {"<path>/<file>": {"url": ...}} (formasaurus' index.json); `file`: its glob
    python_dict   a dict literal {url: file name} assigned to `name` in a Python file (test suites' MOCK_PAGES);
                  `file`: its glob. The file is parsed with `ast`, never imported or run
    sidecar_json  `<page stem>.json` next to each page, holding the URL under `field` (default "url")
    page          no index: the page's own canonical link / og:url (also the fallback for the kinds above)
Globs are taken under the source's glob roots (inside the unpacked package). Indexes are keyed by file name.
`prefer_page: true` puts the page's own canonical URL first (an index that holds placeholders such as foo.bar).
"""

from __future__ import annotations

import ast
import glob
import json
import os
from collections.abc import Mapping
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.records import json_value
from sources.readers.base import MiB, ReadContext

KINDS = ("json_index", "python_dict", "sidecar_json", "page")
MAX_INDEX_BYTES = 256 * MiB  # a URL index (formasaurus' is 0.6 MB)
MAX_SIDECAR_BYTES = 1 * MiB  # one page's JSON


def page_url(path: str, ctx: ReadContext) -> str | None:
    """The URL of the page saved at `path` from the source's `urls` index, or None (unknown, or kind `page`)."""
    opt: Mapping[str, Any] = ctx.opt("urls") or {}
    kind = opt.get("kind", "page")
    if kind not in KINDS:
        raise GlamkitError(f"source {ctx.source}: urls.kind {kind!r} is not one of {', '.join(KINDS)}")
    if kind == "sidecar_json":
        return _sidecar(path, opt.get("field", "url"), ctx)
    if kind == "page":
        return None
    if "urls" not in ctx.memo:
        ctx.memo["urls"] = _load_index(kind, opt, ctx)
    return ctx.memo["urls"].get(os.path.basename(path))


def _index_file(opt: Mapping[str, Any], ctx: ReadContext) -> str:
    pattern = opt.get("file")
    if not pattern:
        raise GlamkitError(f"source {ctx.source}: urls.kind {opt.get('kind')} needs urls.file (a glob)")
    for root in ctx.roots or ("",):
        matches = sorted(glob.glob(os.path.join(root, pattern)))
        if matches:
            return matches[0]
    raise GlamkitError(f"source {ctx.source}: urls.file {pattern!r} matches no file under {', '.join(ctx.roots)}")


def _load_index(kind: str, opt: Mapping[str, Any], ctx: ReadContext) -> dict[str, str]:
    path = _index_file(opt, ctx)
    with fileio.open_read(path) as f:
        data = f.read(MAX_INDEX_BYTES + 1)
    if len(data) > MAX_INDEX_BYTES:
        raise GlamkitError(f"{path}: byte {MAX_INDEX_BYTES}: a URL index over {MAX_INDEX_BYTES} bytes")
    if kind == "json_index":
        index = _json(data, path)
        if not isinstance(index, dict):
            raise GlamkitError(f"{path}: byte 0: not a JSON object of pages, but a {type(index).__name__}")
        return {os.path.basename(k): v["url"] for k, v in index.items()
                if isinstance(v, dict) and isinstance(v.get("url"), str) and v["url"]}
    name = opt.get("name", "MOCK_PAGES")
    try:
        tree = ast.parse(data, path)
    except (SyntaxError, ValueError, UnicodeError, LookupError, RecursionError, MemoryError) as exc:
        where = f"line {exc.lineno}" if isinstance(exc, SyntaxError) and exc.lineno else "byte 0"
        msg = exc.msg if isinstance(exc, SyntaxError) else str(exc) or type(exc).__name__
        raise GlamkitError(f"{path}: {where}: cannot parse as Python ({msg})".splitlines()[0]) from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                mapping = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
                mapping = None
            if not isinstance(mapping, dict):
                raise GlamkitError(f"{path}: line {node.lineno}: {name} is not a literal dict")
            return {os.path.basename(str(file)): str(url) for url, file in mapping.items()}
    raise GlamkitError(f"{path}: byte 0: no `{name} = {{...}}` assignment")


def _json(data: bytes, path: str) -> Any:
    """A JSON document, or a one-line GlamkitError naming the file and the byte where it breaks."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise GlamkitError(f"{path}: byte {exc.start}: not UTF-8 JSON ({exc.reason})") from None
    try:
        return json_value(text)
    except json.JSONDecodeError as exc:
        where = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
        raise GlamkitError(f"{path}: byte {where}: not JSON ({exc.msg})") from None


def _sidecar(path: str, field: str, ctx: ReadContext) -> str | None:
    stem = path.removesuffix(".gz").rsplit(".", 1)[0]
    try:
        with fileio.open_read(stem + ".json") as f:
            value = json_value(f.read(MAX_SIDECAR_BYTES)).get(field)
    except (GlamkitError, ValueError, AttributeError):  # missing, not JSON (or cut at the cap), not an object
        ctx.skip("no_url_sidecar")
        return None
    return value if isinstance(value, str) and value else None
