"""Console logging for the CLI, and the library warnings it drops: the one place glamkit configures logging.

Each entry of KNOWN_NOISE says why the record is harmless; everything else still reaches stderr. With -v nothing is
dropped (a user chasing a problem sees it all).
"""

from __future__ import annotations

import logging
import sys
import warnings

# (logger name prefix, message prefix) -> why the record is harmless here
KNOWN_NOISE: dict[tuple[str, str], str] = {
    ("root", "apitools not found"): "Beam's BigQuery client probe at import; glamkit never uses BigQuery",
    ("trafilatura", "discarding data"): "a page with no extractable text; the web reader counts it (not_html/empty)",
    ("trafilatura", "empty HTML tree"): "the same, as trafilatura's parser reports it",
    ("trafilatura", "parsed tree length"): "the same, as trafilatura's utils report it",
    ("absl", "CheckpointManagerOptions.read_only=True"): "Orbax reading a checkpoint for eval: nothing is saved",
}

# (category, module regex) of Python warnings that say nothing a glamkit user can act on
KNOWN_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    (DeprecationWarning, r"apache_beam\..*"),  # Beam's deprecations of its own internals (as setup.cfg for pytest)
)

FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class KnownNoise(logging.Filter):
    """Drops the records listed in KNOWN_NOISE."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any((record.name == name or record.name.startswith(f"{name}.")) and message.startswith(prefix)
                       for name, prefix in KNOWN_NOISE)


def configure(verbose: bool = False) -> None:
    """Root logging to stderr (INFO with -v, else WARNING), the known noise filtered unless verbose."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:
        handler.addFilter(KnownNoise())
        for category, module in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", category=category, module=module)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_glamkit", False)]:
        root.removeHandler(old)  # main() may run several times in one process (tests)
    handler._glamkit = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
