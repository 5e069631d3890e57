"""Errors a user can act on. The CLI prints them as one line; anything else is a bug and gets a traceback."""


class GlamkitError(Exception):
    """A failure caused by input, configuration or environment, with a message that says what to fix."""


class SpecError(GlamkitError):
    """A spec file that does not match its dataclass; the message names the file and the key."""
