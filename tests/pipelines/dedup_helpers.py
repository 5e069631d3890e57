"""Helpers for the dedup tests and bench/dedup.py: deterministic perturbed copies of real documents."""

from __future__ import annotations

from data_specs.hashing import uniform

# Replacement words for edits: ordinary English words, so an edited copy still reads as text and passes the rules.
VOCAB = ("river", "window", "copper", "seven", "quietly", "garden", "market", "yellow", "winter", "paper", "silver",
         "engine", "letter", "island", "honest", "basket")
SPACES = (" ", "  ", "\n", " \t ", "   ")


def perturb(text: str, rate: float, key: str) -> str:
    """`text` with about `rate` of its words replaced by other words and its whitespace shuffled, as a pure
    function of (text, rate, key)."""
    out = []
    for i, word in enumerate(text.split()):
        if uniform(f"{key}:{i}", 0, "perturb") < rate:
            word = VOCAB[int(uniform(f"{key}:{i}", 0, "perturb-word") * len(VOCAB))]
        out.append(word + SPACES[int(uniform(f"{key}:{i}", 0, "perturb-space") * len(SPACES))])
    return "".join(out).strip()
