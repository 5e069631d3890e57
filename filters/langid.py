"""Language identification with py3langid, whose model ships inside the package (no download at run time).

Scoring a whole 50 MB book is wasted work: a few windows spread across the text decide its language as well.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

WINDOW = 700  # characters per window (3 x 700 characters decide a language as well as 50 MB do)
WINDOWS = 3  # windows from the start, middle and end of the text


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def sample(text: str, window: int = WINDOW, windows: int = WINDOWS) -> str:
    if len(text) <= window * windows:
        return text
    step = (len(text) - window) // (windows - 1)
    return "\n".join(text[i * step : i * step + window] for i in range(windows))


def detect_language(text: str) -> tuple[str, float]:
    """(ISO 639-1 code, probability in [0, 1]); ('und', 0.0) for text without letters."""
    probe = sample(text)
    if not any(ch.isalpha() for ch in probe):
        return "und", 0.0
    lang, prob = _identifier().classify(probe)
    return str(lang), float(prob)


def language_meta(text: str) -> dict[str, str]:
    """The `meta` entries every reader's documents carry: language and its score (4 decimals, so byte-stable)."""
    lang, prob = detect_language(text)
    return {"language": lang, "language_score": f"{prob:.4f}"}
