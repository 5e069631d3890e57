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
from ftfy import chardata
from ftfy.badness import is_bad

# Control characters except tab and newline (C0, DEL, C1); zero-width and BOM characters.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200c\u200d\u2060\ufeff]")
_BLANK_LINES = re.compile(r"\n\s*\n\s*\n+")  # three or more newlines (with blanks between) -> one empty line
_FTFY = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False, explain=False)  # repair, never restyle


def _char_class(codepoints: set[int]) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(chr(c)) for c in sorted(codepoints)) + "]")


# Every character one of _FTFY's character-level fixes rewrites: C1 controls, Latin ligatures, full/half width forms,
# line breaks, surrogates, escapes and the control characters it removes. A line with none of them, that ftfy's
# mojibake detector (`is_bad`) passes and that is already NFC, is one ftfy returns unchanged.
_FTFY_TOUCHES = _char_class({*range(0x80, 0xA0), *chardata.LIGATURES, *chardata.WIDTH_MAP, *chardata.CONTROL_CHARS,
                             *range(0xD800, 0xE000), ord("\r"), 0x2028, 0x2029, 0x1B})


def repair_text(text: str) -> str:
    """`ftfy.fix_text` with _FTFY, the same result, faster: ftfy fixes each line on its own, and most lines (every
    ASCII line, and most others) are ones it would return unchanged, which a few C-level checks can tell."""
    out, pos, end = [], 0, len(text)
    while pos < end:
        brk = text.find("\n", pos) + 1 or end
        line = text[pos:brk]
        if (_FTFY_TOUCHES.search(line) or len(line) > _FTFY.max_decode_length
                or (not line.isascii() and (is_bad(line) or not unicodedata.is_normalized("NFC", line)))):
            line = ftfy.fix_text(line, _FTFY)
        out.append(line)
        pos = brk
    return "".join(out)


def normalize_document(text: str) -> str:
    """Curation's canonical form of a document's text; idempotent."""
    if not text.isascii() or "\x1b" in text:  # ASCII text has no mojibake to repair: skip ftfy, the slow part
        text = repair_text(text)
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))  # runs of other whitespace -> one space
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def model_text(text: str, max_chars: int = 20_000) -> str:
    """The classifier's view of a text: its first `max_chars` characters, lowercased, on one line. Only newlines
    are replaced (fastText reads one example per line); both backends split on the remaining whitespace
    themselves, so a costlier pass would only slow scoring down."""
    return text[:max_chars].lower().replace("\n", " ")
