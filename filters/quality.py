"""The quality classifier: a linear model on hashed features, as in GLaM, with two backends behind one interface.

- `fasttext`: supervised fastText, word n-grams hashed into buckets; trained single-threaded with a fixed seed so the
  model file is byte-identical across retrains.
- `sklearn`: HashingVectorizer + logistic regression, GPT-3's recipe. Saved as plain arrays (no pickle).

Both score raw text through `filters.normalize.model_text` and return P(high quality) as float32 in [0, 1].
A saved model is a folder: the backend's file plus `classifier.json` (backend, features, spec hash, library versions,
training metrics).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.specs import FastTextParams, SklearnParams
from filters.normalize import model_text

SIDECAR = "classifier.json"
REFERENCE = "reference_scores.json"  # the held-out positives' scores: what `alpha: auto` matches kept pages to
POSITIVE, NEGATIVE = "__label__hq", "__label__lq"

SCORE_BINS = 20  # score histograms (curated stats, classifier eval): equal bins over [0, 1]


class QualityClassifier:
    """Common behaviour; subclasses implement `_fit`, `_score_normalised`, `_save`, `_load`."""

    backend: ClassVar[str]

    def __init__(self, params: Any, max_chars: int = 20_000, seed: int = 0) -> None:
        self.params = params
        self.max_chars = max_chars
        self.seed = seed
        self.metadata: dict[str, Any] = {}

    # -- public interface
    def fit(self, texts: Sequence[str], labels: Sequence[int]) -> QualityClassifier:
        """Train on raw texts with labels 1 (high quality) / 0. Order matters (SGD): pass a deterministic order."""
        if len(texts) != len(labels) or not texts:
            raise ValueError("fit needs as many labels as texts, and at least one of each")
        if set(labels) != {0, 1}:
            raise ValueError("fit needs both classes (labels 0 and 1)")
        self._fit([self.prepare(t) for t in texts], np.asarray(labels, dtype=np.int64))
        return self

    def prepare(self, text: str) -> str:
        return _scrub(model_text(text, self.max_chars))

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(high quality) for each raw text, float32 in [0, 1]. Batched: pass many texts per call."""
        if not len(texts):
            return np.zeros(0, dtype=np.float32)
        prepared = [model_text(t, self.max_chars) for t in texts]
        try:
            raw = self._score_normalised(prepared)
        except (UnicodeError, TypeError):  # lone surrogates (from undecodable bytes) can't be encoded: replace them
            raw = self._score_normalised([_scrub(t) for t in prepared])
        return np.clip(raw, 0.0, 1.0).astype(np.float32)

    def save(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save(directory)
        self.metadata = {
            **self.metadata,
            **(metadata or {}),
            "backend": self.backend,
            "features": self.features(),
            "max_chars": self.max_chars,
            "seed": self.seed,
            "params": asdict(self.params),
            "libraries": library_versions(self.backend),
        }
        fileio.write_json(directory / SIDECAR, self.metadata, sort_keys=True, indent=2)
        return directory

    # -- backend hooks
    def features(self) -> str:
        raise NotImplementedError

    def _fit(self, prepared: list[str], labels: np.ndarray) -> None:
        raise NotImplementedError

    def _score_normalised(self, prepared: list[str]) -> np.ndarray:
        raise NotImplementedError

    def _save(self, directory: Path) -> None:
        raise NotImplementedError

    def _load(self, directory: Path) -> None:
        raise NotImplementedError


class FastTextClassifier(QualityClassifier):
    backend = "fasttext"
    MODEL_FILE = "model.bin"

    def __init__(self, params: FastTextParams | None = None, max_chars: int = 20_000, seed: int = 0) -> None:
        super().__init__(params or FastTextParams(), max_chars, seed)
        self.model: Any = None
        self._positive_index = 0

    def features(self) -> str:
        p = self.params
        return f"fastText word 1..{p.word_ngrams}-grams hashed into {p.bucket} buckets, dim {p.dim}"

    def _fit(self, prepared: list[str], labels: np.ndarray) -> None:
        import fasttext

        p = self.params
        with tempfile.TemporaryDirectory() as tmp:
            train_file = Path(tmp) / "train.txt"
            with open(train_file, "w", encoding="utf-8", errors="replace") as f:
                for text, label in zip(prepared, labels, strict=True):
                    f.write(f"{POSITIVE if label else NEGATIVE} {text}\n")
            self.model = fasttext.train_supervised(
                input=str(train_file), dim=p.dim, epoch=p.epoch, lr=p.lr, wordNgrams=p.word_ngrams, bucket=p.bucket,
                minCount=p.min_count, minn=p.minn, maxn=p.maxn, loss="softmax", thread=1, seed=self.seed, verbose=0,
            )
        self._index_labels()

    def _index_labels(self) -> None:
        labels = list(self.model.get_labels())
        if POSITIVE not in labels:
            raise GlamkitError(f"fastText model has no {POSITIVE} label (labels: {labels})")
        self._positive_index = labels.index(POSITIVE)

    def _score_normalised(self, prepared: list[str]) -> np.ndarray:
        return fasttext_positive_probability(self.model, prepared)

    def _save(self, directory: Path) -> None:
        with fileio.atomic_path(directory / self.MODEL_FILE) as tmp:
            self.model.save_model(str(tmp))

    def _load(self, directory: Path) -> None:
        import fasttext

        self.model = fasttext.load_model(str(directory / self.MODEL_FILE))
        self._index_labels()


def fasttext_positive_probability(model: Any, prepared: list[str]) -> np.ndarray:
    """P(__label__hq) from fastText's batched prediction: with two softmax labels, the top label's probability says
    both. Calls the C++ batch entry point the `predict(list)` wrapper uses, minus the wrapper's per-text newline scan
    (model_text already guarantees one line)."""
    labels, probs = model.f.multilinePredict([t + "\n" for t in prepared], 1, 0.0, "strict")
    top = np.fromiter((p[0] for p in probs), dtype=np.float64, count=len(prepared))
    positive = np.fromiter((labs[0] == POSITIVE for labs in labels), dtype=bool, count=len(prepared))
    return np.where(positive, top, 1.0 - top)


class SklearnClassifier(QualityClassifier):
    backend = "sklearn"
    MODEL_FILE = "model.npz"

    def __init__(self, params: SklearnParams | None = None, max_chars: int = 20_000, seed: int = 0) -> None:
        super().__init__(params or SklearnParams(), max_chars, seed)
        self.vectorizer = make_vectorizer(self.params)
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def features(self) -> str:
        p = self.params
        return f"HashingVectorizer word 1..{p.ngram_max}-grams into {p.n_features} features, l2-normalised"

    def _fit(self, prepared: list[str], labels: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        p = self.params
        clf = LogisticRegression(C=p.c, max_iter=p.max_iter, solver="liblinear", random_state=self.seed)
        clf.fit(self.vectorizer.transform(prepared), labels)
        self.coef = clf.coef_.ravel().astype(np.float64)
        self.intercept = float(clf.intercept_[0])

    def _score_normalised(self, prepared: list[str]) -> np.ndarray:
        logits = self.vectorizer.transform(prepared) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-logits))

    def _save(self, directory: Path) -> None:
        with fileio.atomic_path(directory / self.MODEL_FILE) as tmp:  # the temp name ends .npz: savez keeps it
            np.savez_compressed(tmp, coef=self.coef, intercept=np.array([self.intercept]))

    def _load(self, directory: Path) -> None:
        with np.load(directory / self.MODEL_FILE) as arrays:
            self.coef = arrays["coef"]
            self.intercept = float(arrays["intercept"][0])


def make_vectorizer(params: SklearnParams) -> Any:
    """GPT-3's HashingTF: the whitespace tokens of model_text (already lowercased), hashed, no sign flipping."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=params.n_features, ngram_range=(1, params.ngram_max), lowercase=False,
        token_pattern=None, tokenizer=str.split, alternate_sign=False, norm="l2", dtype=np.float64,
    )


BACKENDS: dict[str, type[QualityClassifier]] = {"fasttext": FastTextClassifier, "sklearn": SklearnClassifier}


def new_classifier(backend: str, fasttext: FastTextParams, sklearn: SklearnParams, max_chars: int,
                   seed: int) -> QualityClassifier:
    if backend == "fasttext":
        return FastTextClassifier(fasttext, max_chars, seed)
    if backend == "sklearn":
        return SklearnClassifier(sklearn, max_chars, seed)
    raise GlamkitError(f"unknown classifier backend {backend!r} (one of {', '.join(BACKENDS)})")


def load_classifier(directory: str | Path) -> QualityClassifier:
    """Load a saved classifier folder (either backend)."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / SIDECAR).read_text())
    except FileNotFoundError:
        raise GlamkitError(f"{directory}: not a quality classifier folder (no {SIDECAR})") from None
    backend = meta.get("backend")
    if backend not in BACKENDS:
        raise GlamkitError(f"{directory / SIDECAR}: unknown backend {backend!r}")
    params_cls = FastTextParams if backend == "fasttext" else SklearnParams
    clf = BACKENDS[backend](params_cls(**meta["params"]), meta["max_chars"], meta["seed"])
    clf._load(directory)
    clf.metadata = meta
    return clf


def save_reference_scores(directory: str | Path, scores: Sequence[float], what: str) -> Path:
    """Scores of curated text the model never trained on (sorted), for calibrating the keep rule's alpha."""
    path = Path(directory) / REFERENCE
    data = {"what": what, "scores": sorted(round(float(s), 6) for s in scores)}
    fileio.write_json(path, data, sort_keys=True)
    return path


def load_reference_scores(directory: str | Path) -> list[float]:
    path = Path(directory) / REFERENCE
    try:
        scores = json.loads(path.read_text())["scores"]
    except (FileNotFoundError, KeyError, ValueError):
        raise GlamkitError(f"{path}: no held-out reference scores (retrain the classifier with this glamkit, or set "
                           f"keep.target_keep, or give alpha a number)") from None
    if not scores:
        raise GlamkitError(f"{path}: the reference holds no scores")
    return [float(s) for s in scores]


def library_versions(backend: str) -> dict[str, str]:
    names = ["numpy"] + (["fasttext-community"] if backend == "fasttext" else ["scikit-learn", "scipy"])
    return {name: version(name) for name in names}


def _scrub(text: str) -> str:
    return text.encode("utf-8", "replace").decode("utf-8")


