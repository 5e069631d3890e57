"""Text normalisation, shared by the curate job (documents) and the quality classifier (features).

`normalize_document` is what curation stores: NFC, repaired mojibake, no control characters, tidy whitespace.
`model_text` is what the classifier sees, the same for training and scoring, for both backends: GPT-3's recipe
(Spark's standard tokenizer: lowercase, split on whitespace) on one line. It is deliberately cheap, because the
classifier's score runs on every web page and its throughput is measured against the bare library call.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy

# Control characters except tab and newline (C0, DEL, C1); zero-width and BOM characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[^\S\n]+")  # runs of whitespace other than newline
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")  # three or more newlines (with blanks between) -> one empty line
_FTFY = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, explain=False)  # repair, never restyle


def normalize_document(text: str) -> str:
    """Curation's canonical form of a document's text; idempotent."""
    if not text.isascii() or "\x1b" in text:  # ASCII text has no mojibake to repair: skip ftfy, the slow part
        text = ftfy.fix_text(text, _FTFY)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def model_text(text: str, max_chars: int = 20_000) -> str:
    """The classifier's view of a text: its first `max_chars` characters, lowercased, on one line. Only newlines
    are replaced (fastText reads one example per line); both backends split on the remaining whitespace
    themselves, so a costlier pass would only slow scoring down."""
    return text[:max_chars].lower().replace("\n", " ")
