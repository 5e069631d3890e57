"""The one PNG helper of every figure glamkit draws (mixture report, classifier eval, keep-rule calibration,
study report): matplotlib on the Agg backend, PNG without the Software/date metadata, so the same data gives the
same bytes. Each caller keeps its own figure size and dpi (the bytes depend on them)."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

from data_specs import io as fileio


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed); imported on first use, matplotlib being heavy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig: Any, dpi: float | None = None) -> bytes:
    """The figure as PNG bytes (at `dpi`, else the figure's own), then closed."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", metadata={"Software": None}, **({} if dpi is None else {"dpi": dpi}))
    finally:
        pyplot().close(fig)
    return buf.getvalue()


def png_base64(fig: Any, dpi: float | None = None) -> str:
    """The figure as a base64 PNG, for a data URI."""
    return base64.b64encode(png_bytes(fig, dpi)).decode()


def save_png(fig: Any, path: Path, dpi: float | None = None) -> None:
    """Write the figure to `path` atomically (data_specs.io)."""
    fileio.write_bytes(path, png_bytes(fig, dpi))
