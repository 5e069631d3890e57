"""Errors a user can act on. The CLI prints them as one line; anything else is a bug and gets a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GlamkitError(Exception):
    """A failure caused by input, configuration or environment, with a message that says what to fix."""


class SpecError(GlamkitError):
    """A spec file that does not match its dataclass; the message names the file and the key."""


class UnknownNameError(GlamkitError, ValueError):
    """A name (preset, stage, spec, task) that is not one of the valid ones: one line naming them all, plus the
    closest match, so a typo is fixed without reading the docs. A ValueError too, for callers that catch that."""

    def __init__(self, what: str, name: str, valid: Iterable[str]) -> None:
        valid = list(valid)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown {what} {name!r} (one of {', '.join(valid)}){hint}")
