"""lm-evaluation-harness style `doc_to_*` fields: a field name, or a template with `{{field}}` placeholders."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def _lookup(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        else:
            raise KeyError(f"no field {path!r} in document (fields: {', '.join(doc)})")
    return value


def render(spec: str | None, doc: Mapping[str, Any]) -> Any:
    """A bare field name returns the field's value (any type); a template returns a string."""
    if spec is None:
        return None
    if _PLACEHOLDER.search(spec) is None:
        return _lookup(doc, spec) if spec in doc or "." in spec else spec
    whole = _PLACEHOLDER.fullmatch(spec.strip())
    if whole:
        return _lookup(doc, whole.group(1))
    return _PLACEHOLDER.sub(lambda m: str(_lookup(doc, m.group(1))), spec)
