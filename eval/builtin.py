"""Built-in tasks made from held-out real text, so a study can evaluate without downloading benchmarks.

Documents are held out at the source level, before curation (`is_eval_holdout`: uniform(doc_id, seed,
"eval-holdout") < fraction), so they reach no training mixture whatever the filter; the curate job drops them with
reason `eval_holdout` and its decontamination stage runs against these tasks. Each task has a `test` split and a
`train` split for few-shot demonstrations, split by document, never by example.

- `heldout`: whole documents, per component (loglikelihood_rolling: bits per byte, perplexity).
- `lambada-books`: a book passage without its last word; generate the word (LAMBADA-style cloze, exact match).
- `next-sentence`: a news/Wikipedia passage; pick its true next sentence among sentences of other documents
  (HellaSwag-style rank classification).
- `wiki-cloze`: a Wikipedia sentence cut before a content word; pick the word among words from other articles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from data_specs import io as fileio
from data_specs.hashing import uniform
from data_specs.records import Document
from filters.dedup import document_frequencies, example_text, ngram_hashes, word_hashes, words

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")
_WORD = re.compile(r"^[A-Za-z]{3,}$")
PER_DOC = 3  # examples taken from one news/Wikipedia document at most, so no document dominates a task
PER_BOOK = 40  # a held-out book is long: more passages from each
FEWSHOT_FRACTION = 0.2
Tasks = dict[str, dict[str, list[dict[str, Any]]]]  # task -> split -> examples


def _split_of(doc_id: str, seed: int) -> str:
    return "train" if uniform(doc_id, seed, "eval-fewshot") < FEWSHOT_FRACTION else "test"


def _sentences(text: str) -> list[str]:
    flat = " ".join(text.split())
    return [s.strip() for s in _SENTENCE.split(flat) if len(s.split()) >= 4]


def heldout_examples(doc: Document, seed: int, max_chars: int = 20_000) -> list[dict[str, Any]]:
    return [{"text": doc.text[:max_chars], "component": doc.component, "doc_id": doc.id}]


def lambada_examples(doc: Document, seed: int, words: int = 80) -> list[dict[str, Any]]:
    """Passages of about `words` words ending a sentence; the target is the passage's last word."""
    sentences = _sentences(doc.text)
    out, passage = [], []
    for sentence in sentences:
        passage.append(sentence)
        text = " ".join(passage)
        if len(text.split()) < words:
            continue
        head, _, last = text.rstrip(".!?\"' ").rpartition(" ")
        if _WORD.match(last) and len(head.split()) >= words // 2:
            out.append({"context": head, "target": last, "doc_id": doc.id})
        passage = []
    out.sort(key=lambda ex: uniform(ex["context"][-60:], seed, "lambada-pick"))
    return out[:PER_BOOK]


def _pick(pool: Sequence[str], k: int, key: str, seed: int, purpose: str, exclude: str) -> list[str]:
    ranked = sorted((p for p in pool if p != exclude), key=lambda p: uniform(f"{key}|{p}", seed, purpose))
    return ranked[:k]


def next_sentence_examples(doc: Document, seed: int, distractor_pool: Sequence[str],
                           context_sentences: int = 3, choices: int = 4) -> list[dict[str, Any]]:
    sentences = _sentences(doc.text)
    out = []
    for start in range(0, len(sentences) - context_sentences, context_sentences + 1):
        context = " ".join(sentences[start : start + context_sentences])
        true = sentences[start + context_sentences]
        others = _pick(distractor_pool, choices - 1, f"{doc.id}:{start}", seed, "next-sentence", true)
        label = int(uniform(f"{doc.id}:{start}", seed, "next-sentence-label") * choices)
        options = others[:label] + [true] + others[label:]
        out.append({"context": context, "choices": options, "label": label, "doc_id": doc.id})
        if len(out) == PER_DOC:
            break
    return out


def wiki_cloze_examples(doc: Document, seed: int, word_pool: Sequence[str], choices: int = 4
                        ) -> list[dict[str, Any]]:
    out = []
    for i, sentence in enumerate(_sentences(doc.text)):
        words = sentence.split()
        cut = len(words) // 2 + int(uniform(f"{doc.id}:{i}", seed, "cloze-cut") * (len(words) // 2))
        if cut >= len(words) or not _WORD.match(words[cut]) or len(words[cut]) < 5 or cut < 4:
            continue
        answer = words[cut]
        others = _pick(word_pool, choices - 1, f"{doc.id}:{i}", seed, "cloze", answer)
        label = int(uniform(f"{doc.id}:{i}", seed, "cloze-label") * choices)
        out.append({"context": " ".join(words[:cut]), "choices": others[:label] + [answer] + others[label:],
                    "label": label, "doc_id": doc.id})
        if len(out) == PER_DOC:
            break
    return out


def build_tasks(docs: Iterable[Document], seed: int) -> Tasks:
    """task -> split -> examples, from held-out documents (already selected by is_eval_holdout).

    Documents come in a seeded random order, not by id: ids start with the source's name, so an id order puts one
    source first, and an evaluation of a task's first N examples (`--limit`, the recipe's `eval_limit`) would score
    that source alone (in the demo, the first 60 held-out documents were all one forum feed).
    """
    docs = sorted(docs, key=lambda d: (uniform(d.id, seed, "task-order"), d.id))
    sentences = sorted({s for d in docs if d.component in ("news", "wikipedia") for s in _sentences(d.text)})
    words = sorted({w for d in docs if d.component == "wikipedia" for w in d.text.split()
                    if _WORD.match(w) and len(w) >= 5})
    tasks: Tasks = {
        name: {"test": [], "train": []} for name in ("heldout", "lambada-books", "next-sentence", "wiki-cloze")
    }
    for doc in docs:
        split = _split_of(doc.id, seed)
        tasks["heldout"][split] += heldout_examples(doc, seed)
        if doc.component == "books":
            tasks["lambada-books"][split] += lambada_examples(doc, seed)
        if doc.component in ("news", "wikipedia"):
            tasks["next-sentence"][split] += next_sentence_examples(doc, seed, sentences)
        if doc.component == "wikipedia":
            tasks["wiki-cloze"][split] += wiki_cloze_examples(doc, seed, words)
    return tasks


def drop_common_phrase_examples(tasks: Tasks, pool_texts: Iterable[str], n: int, max_documents: int
                                ) -> tuple[Tasks, dict[str, int]]:
    """Leave out every example holding an n-gram that more than `max_documents` training-pool texts hold.

    The curate job's decontamination drops training documents that share an n-gram with a task, except n-grams in
    more than `decontaminate_common_documents` documents (boilerplate and stock phrases: dropping every document
    holding one would gut a component). Those n-grams stay in training, so an example holding one is not clean; the
    pool (every non-held-out source document) is a superset of any mixture's training text, so counting there is
    conservative whatever the filter. Returns the kept tasks and, per task, how many examples were left out.
    """
    grams = {(name, split, i): np.unique(ngram_hashes(word_hashes(words(example_text(ex))), n, short=False))
             for name, splits in tasks.items() for split, examples in splits.items()
             for i, ex in enumerate(examples)}
    found = [g for g in grams.values() if len(g)]
    universe = np.unique(np.concatenate(found)) if found else np.empty(0, np.uint64)
    common = universe[document_frequencies(universe, pool_texts, n) > max_documents]
    kept: Tasks = {}
    dropped: dict[str, int] = {}
    for name, splits in tasks.items():
        kept[name] = {}
        for split, examples in splits.items():
            kept[name][split] = [ex for i, ex in enumerate(examples)
                                 if not np.isin(grams[(name, split, i)], common).any()]
            dropped[name] = dropped.get(name, 0) + len(examples) - len(kept[name][split])
    return kept, dropped


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """One JSON object per line, sorted keys, no timestamps: byte-stable. Returns the number of rows."""
    n = 0
    with fileio.atomic_output(path) as f:
        for row in rows:
            f.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            n += 1
    return n


def write_tasks(tasks: Mapping[str, Mapping[str, list[dict[str, Any]]]], root: Path) -> dict[str, dict[str, int]]:
    """One folder per task with `<split>.jsonl`."""
    return {name: {split: write_jsonl(root / name / f"{split}.jsonl", examples) for split, examples in splits.items()}
            for name, splits in tasks.items()}
