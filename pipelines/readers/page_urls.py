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

from data_specs.errors import GlamkitError
from pipelines.readers.base import ReadContext, open_raw

KINDS = ("json_index", "python_dict", "sidecar_json", "page")


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
    with open_raw(path) as f:
        data = f.read()
    if kind == "json_index":
        try:
            index = json.loads(data)
        except ValueError as exc:
            raise GlamkitError(f"{path}: not JSON ({exc})") from None
        return {os.path.basename(k): v["url"] for k, v in index.items() if isinstance(v, dict) and v.get("url")}
    name = opt.get("name", "MOCK_PAGES")
    try:
        tree = ast.parse(data, path)
    except SyntaxError as exc:
        raise GlamkitError(f"{path}: cannot parse as Python ({exc.msg}, line {exc.lineno})") from None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            try:
                mapping = ast.literal_eval(node.value)
            except ValueError:
                raise GlamkitError(f"{path}: {name} is not a literal dict") from None
            return {os.path.basename(str(file)): str(url) for url, file in mapping.items()}
    raise GlamkitError(f"{path}: no `{name} = {{...}}` assignment")


def _sidecar(path: str, field: str, ctx: ReadContext) -> str | None:
    stem = path.removesuffix(".gz").rsplit(".", 1)[0]
    try:
        with open_raw(stem + ".json") as f:
            value = json.loads(f.read()).get(field)
    except (GlamkitError, ValueError, AttributeError):
        ctx.skip("no_url_sidecar")
        return None
    return value if isinstance(value, str) and value else None
