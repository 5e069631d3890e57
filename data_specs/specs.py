"""Every spec glamkit reads, as frozen dataclasses. Each knob is documented once, here, next to its default.

YAML files live in one folder per kind (`data_specs/<kind>/<name>.yaml`); `load(kind, name_or_path)` finds and
checks them. Cross-references between specs are by name (a mixture names sources; a study names a mixture).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from data_specs import SPEC_ROOT
from data_specs.errors import SpecError
from data_specs.loader import load_spec
from data_specs.records import COMPONENTS

Component = Literal["web", "wikipedia", "books", "news", "forums", "conversations"]


# ------------------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class PackageRef:
    """Real text shipped inside a registry package: fetched by name, verified, cached, never copied into the repo."""

    name: str
    version: str
    registry: Literal["pypi-wheel", "pypi-sdist", "debian", "npm"]
    files: tuple[str, ...]  # globs inside the unpacked package, e.g. "gensim/test/test_data/lee_background.cor"
    sha256: str | None = None  # of the downloaded archive; `sources fetch` refuses a mismatch


@dataclass(frozen=True)
class SourceSpec:
    """Where one source's documents come from, how to read them, and which mixture component they feed."""

    name: str
    component: Component
    reader: str  # a reader registered in pipelines' reader table (mediawiki, gutenberg, warc, html_dir, ...)
    package: PackageRef | None = None  # a packaged sample ...
    paths: tuple[str, ...] = ()  # ... or the user's own files and globs (local, gs://, any Beam filesystem)
    options: Mapping[str, Any] = field(default_factory=dict)  # reader-specific settings
    language: str = "en"  # expected language; the language filter compares against language ID
    sample_fraction: float = 1.0  # read only this fraction of the files, each kept iff uniform(its path relative to
    # the glob root, 0, "source-sample") < fraction: thins a source that is one big site (no host over 5% of web)
    description: str = ""

    def __post_init__(self) -> None:
        if (self.package is None) == (not self.paths):
            raise ValueError("give exactly one of 'package' (packaged sample) or 'paths' (your own files)")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction must be in (0, 1], got {self.sample_fraction}")


# ----------------------------------------------------------------------------------------------------- mixtures
@dataclass(frozen=True)
class RulesSpec:
    """Heuristic document rules (Gopher / C4 style). A document is dropped by the first rule it fails."""

    languages: tuple[str, ...] = ("en",)  # keep documents whose language ID is one of these
    min_language_score: float = 0.5  # ... with at least this confidence
    min_words: int = 50  # Gopher: 50
    max_words: int = 100_000  # Gopher: 100k; raise it for books
    min_mean_word_length: float = 3.0  # Gopher: 3
    max_mean_word_length: float = 10.0  # Gopher: 10
    max_symbol_word_ratio: float = 0.1  # '#' and '...' per word; Gopher: 0.1
    min_alpha_word_fraction: float = 0.8  # words holding a letter; Gopher: 0.8
    max_ellipsis_line_fraction: float = 0.3  # lines ending in an ellipsis; Gopher: 0.3
    max_bullet_line_fraction: float = 0.9  # lines starting with a bullet; Gopher: 0.9
    max_duplicate_line_fraction: float = 0.3  # characters in repeated lines (plays repeat short speaker lines)
    max_top_ngram_fraction: float = 0.2  # characters in the most frequent word 2-gram; Gopher: 0.2
    max_duplicate_ngram_fraction: float = 0.15  # characters in repeats of word 5-grams, first occurrence not
    # counted (as Gopher and datatrove); Gopher: 0.15
    min_stop_words: int = 2  # English stop words present; Gopher: 2


@dataclass(frozen=True)
class ComponentSpec:
    weight: float  # sampling rate in the mixture (GLaM table 3); weights sum to 1
    sources: tuple[str, ...] = ()  # source spec names feeding this component
    tokens_b: float | None = None  # the paper's component size in billions of tokens (for `report --plan`)
    quality_filter: bool = False  # score with the quality classifier and apply the keep rule (GLaM: web only)


@dataclass(frozen=True)
class KeepRuleSpec:
    """How a quality score becomes keep/drop. `pareto` is GPT-3's rule that GLaM follows."""

    kind: Literal["pareto", "threshold", "top_fraction"] = "pareto"
    alpha: float | Literal["auto"] = 9.0  # pareto: keep iff pareto_draw(alpha) > 1 - score; P(keep) =
    # (2 - score)^-alpha. "auto": fitted by curation on the pages that reach the score (filters/calibrate.py)
    target_keep: float | None = None  # alpha auto: the expected fraction of pages to keep; None: the alpha whose
    # kept pages' scores match the classifier's held-out positives (minimal KS distance), as GPT-3 meant it
    threshold: float = 0.5  # threshold: keep iff score >= threshold
    fraction: float = 0.5  # top_fraction: keep the best-scoring fraction of each component
    seed: int = 0  # keys the per-document Pareto draw (uniform(doc_id, seed, "pareto"))

    def __post_init__(self) -> None:
        if self.alpha != "auto" and not self.alpha > 0:
            raise ValueError(f"alpha must be a positive number or 'auto', got {self.alpha}")
        if self.target_keep is not None and not 0.0 < self.target_keep < 1.0:
            raise ValueError(f"target_keep must be in (0, 1), got {self.target_keep}")
        if self.target_keep is not None and self.alpha != "auto":
            raise ValueError("target_keep is what alpha 'auto' is fitted to: set alpha: auto, or drop target_keep")

    @property
    def auto(self) -> bool:
        return self.kind == "pareto" and self.alpha == "auto"

    def describe(self) -> str:
        """The rule in words, e.g. 'pareto alpha 3' or 'pareto alpha auto (match held-out positives)'."""
        if self.kind == "threshold":
            return f"threshold score >= {self.threshold:g}"
        if self.kind == "top_fraction":
            return f"top_fraction {self.fraction:g}"
        if self.auto:
            how = f"keep {self.target_keep:.0%}" if self.target_keep else "match held-out positives"
            return f"pareto alpha auto ({how})"
        return f"pareto alpha {self.alpha:g}"


@dataclass(frozen=True)
class QualitySpec:
    classifier: str  # classifier spec name (data_specs/classifier/<name>.yaml) or a trained model directory
    keep: KeepRuleSpec = field(default_factory=KeepRuleSpec)


@dataclass(frozen=True)
class TaskFileSpec:
    """An eval task file (JSONL) that training text must not overlap: the fields holding its text, any names."""

    path: str
    fields: tuple[str, ...] = ("text",)  # string fields (or lists of strings) joined into the compared text
    name: str | None = None  # the task's name in stats.json; default: the file name without extensions


@dataclass(frozen=True)
class DedupSpec:
    """Exact dedup, MinHash LSH near-dedup and n-gram decontamination (the curate job, after the rules)."""

    exact: bool = True  # drop exact duplicates of normalised text (whitespace collapsed), across components
    near: bool = True  # MinHash LSH near-duplicate removal, across components
    ngram: int = 5  # word n-gram shingles (a text shorter than n words is one shingle)
    num_perm: int = 128  # MinHash permutations; must equal bands x rows
    bands: int = 16
    rows: int = 8  # implied threshold (1/bands)^(1/rows): 16 x 8 -> 0.707
    fold_spelling: bool = False  # shingle spelling-folded words (u/v, i/j/y, doubled letters, final e): catches
    # an early-modern edition and a modernised one of the same text
    min_similarity: float | None = None  # keep an LSH candidate pair only if its estimated Jaccard (16-bit MinHash
    # signatures) reaches this; None: every candidate pair counts (plain LSH, as datatrove)
    priority: tuple[str, ...] = ("wikipedia", "books", "news", "forums", "conversations", "web")  # survivor order:
    # a cluster keeps its highest-priority component's smallest id (components not listed come last)
    decontaminate: bool = True  # drop training documents sharing an n-gram with an eval task's text
    decontaminate_ngram: int = 13
    builtin_tasks: bool = True  # compare with RUN/tasks (the built-in tasks made from held-out documents)
    tasks: tuple[TaskFileSpec, ...] = ()  # and with these JSONL task files
    decontaminate_common_documents: int | None = 10  # a task n-gram found in more than this many distinct training
    # documents (dedup clusters) is a common phrase or boilerplate, not a leak: ignored. None: never ignored

    def __post_init__(self) -> None:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(f"bands x rows = {self.bands * self.rows}, must equal num_perm = {self.num_perm}")
        unknown = [c for c in self.priority if c not in COMPONENTS]
        if unknown:
            raise ValueError(f"priority: unknown component {unknown[0]!r} (one of {', '.join(COMPONENTS)})")
        if self.ngram < 1 or self.decontaminate_ngram < 1:
            raise ValueError("ngram and decontaminate_ngram must be at least 1")
        if self.min_similarity is not None and not 0.0 < self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in (0, 1], got {self.min_similarity}")


@dataclass(frozen=True)
class TokenizerSpec:
    kind: Literal["train", "pretrained"] = "train"
    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = 256_000  # the paper's; small in the demo
    pretrained: str | None = None  # kind=pretrained: a SentencePiece .model path or a source name
    sample_documents: int = 100_000  # text pieces sampled (by mixture weight) to train on; long documents are
    # cut into pieces of `piece_chars` on line boundaries, so a whole book is many pieces, not one
    piece_chars: int = 2000
    character_coverage: float = 0.9999
    byte_fallback: bool = True  # unknown characters become bytes, never <unk>
    hard_vocab_limit: bool = True  # false: a sample too small for vocab_size gives a smaller vocabulary, no error


@dataclass(frozen=True)
class MixingSpec:
    seq_len: int = 1024  # tokens per training sequence (the paper's)
    budget_tokens: int = 1_600_000_000_000  # training tokens the shards hold; with the weights, sets epochs
    sequences_per_shard: int = 1024
    validation_fraction: float = 0.01  # documents split off by uniform(doc_id, seed, "split")
    exact_tokens: bool = True  # calibrate each component's keep threshold on token counts (target hit within half
    # a document); false: the plain rule, threshold = frac(rate)


@dataclass(frozen=True)
class MixtureSpec:
    """A training mixture: components and their weights, and every curation and mixing setting."""

    name: str
    seed: int
    components: Mapping[str, ComponentSpec]
    rules: Mapping[str, RulesSpec] = field(default_factory=dict)  # per component; missing keys take defaults
    quality: QualitySpec | None = None
    dedup: DedupSpec = field(default_factory=DedupSpec)
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    mixing: MixingSpec = field(default_factory=MixingSpec)
    eval_holdout_fraction: float = 0.0  # documents held out before curation for eval tasks ("eval-holdout")
    description: str = ""

    def __post_init__(self) -> None:
        for name in list(self.components) + list(self.rules):
            if name not in COMPONENTS:
                raise ValueError(f"unknown component {name!r} (one of {', '.join(COMPONENTS)})")
        total = sum(c.weight for c in self.components.values())
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"component weights sum to {total:.6f}, must sum to 1")
        if any(c.quality_filter for c in self.components.values()) and self.quality is None:
            raise ValueError("a component sets quality_filter but the mixture has no 'quality' section")

    def rules_for(self, component: str) -> RulesSpec:
        return self.rules.get(component, RulesSpec())


# --------------------------------------------------------------------------------------------------- classifier
@dataclass(frozen=True)
class SampleSpec:
    source: str  # source spec name
    max_docs: int | None = None  # cap per source (sampled by uniform(doc_id, seed, "classifier-sample"))


@dataclass(frozen=True)
class FastTextParams:
    dim: int = 32
    epoch: int = 10
    lr: float = 0.5
    word_ngrams: int = 2
    bucket: int = 1_000_000  # hashed n-gram buckets: the "feature hash" of the paper
    min_count: int = 1
    minn: int = 0  # character n-grams off: word n-grams are the hashed features
    maxn: int = 0


@dataclass(frozen=True)
class SklearnParams:
    n_features: int = 1 << 20  # HashingVectorizer buckets
    ngram_max: int = 2
    c: float = 1.0  # inverse L2 regularisation of the logistic regression
    max_iter: int = 1000


@dataclass(frozen=True)
class ClassifierSpec:
    """The quality classifier: curated text (positives) vs other web pages (negatives)."""

    name: str
    positives: tuple[SampleSpec, ...]
    negatives: tuple[SampleSpec, ...]
    backend: Literal["fasttext", "sklearn"] = "fasttext"
    seed: int = 0
    heldout_fraction: float = 0.2  # of groups, by uniform(group, seed, "classifier-split")
    balance: bool = True  # subsample the larger class to the smaller one's size
    group_key: str = "host"  # what a split never cuts: "host" (a web page's host, across sources; other
    # documents' meta["group"]: work, newsgroup, debate, outlet), "url_directory" (a web page's host + folder), or
    # any meta key. Keep rates are not the classifier's: curation applies the mixture's keep rule (the report)
    max_chars: int = 20_000  # characters of each document fed to the model
    fasttext: FastTextParams = field(default_factory=FastTextParams)
    sklearn: SklearnParams = field(default_factory=SklearnParams)


# -------------------------------------------------------------------------------------------------------- train
@dataclass(frozen=True)
class OptimizerSpec:
    kind: Literal["adafactor", "adamw"] = "adafactor"
    learning_rate: float = 0.01
    constant_steps: int = 10_000  # lr constant, then lr * sqrt(constant_steps / step)
    warmup_steps: int = 0  # linear warm-up before the constant phase (the paper uses none)
    schedule: Literal["rsqrt", "constant", "cosine"] = "rsqrt"
    momentum: float | None = None  # Adafactor first-moment decay; GLaM: none
    decay_rate: float = 0.8  # Adafactor beta2_t = min(beta2_cap, 1 - t^-decay_rate)
    beta2_cap: float = 0.99
    clipping_threshold: float = 1.0  # Adafactor update clipping
    factored: bool = True  # factored second moments
    multiply_by_parameter_scale: bool = True  # Adafactor step relative to each parameter block's RMS
    weight_decay: float = 0.0
    adam_b1: float = 0.9  # adamw only
    adam_b2: float = 0.95  # adamw only
    max_grad_norm: float | None = None  # global-norm gradient clipping (off in the paper)


@dataclass(frozen=True)
class LossSpec:
    """The one place the training objective's weights live (the model returns its losses unweighted)."""

    load_balance: float = 0.01  # GShard auxiliary loss coefficient (the paper's)
    router_z: float = 0.0  # ST-MoE's router z-loss; GLaM has none (e.g. 0.001 to turn it on)
    logit_z: float = 1e-4  # z-loss on the output logits (Praxis GLaM)
    chunk: int = 128  # sequence positions per chunk of the cross-entropy: [b, chunk, vocab] float32 logits at a time


@dataclass(frozen=True)
class MeshSpec:
    """Device mesh axes. -1 on one axis takes the remaining devices. The paper's 2D sharding: expert x model."""

    data: int = -1
    expert: int = 1
    model: int = 1


@dataclass(frozen=True)
class CheckpointSpec:
    every: int = 100  # steps between checkpoints (and one on SIGTERM)
    keep: int = 3  # last K kept
    verify: Literal["sha256", "size"] = "sha256"  # how a restore checks each file against the save's record


@dataclass(frozen=True)
class TrainSpec:
    name: str
    model: str  # a model preset (`glamkit model info --list`)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)  # e.g. {vocab_size: 8000}
    shards: str | None = None  # a shard folder with manifest.json; default: the run's mixing output
    batch_size: int = 8  # sequences per step (across all data-parallel devices)
    seq_len: int = 1024
    steps: int = 1000
    grad_accum: int = 1  # micro-batches per step
    seed: int = 0
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    loss: LossSpec = field(default_factory=LossSpec)
    mesh: MeshSpec = field(default_factory=MeshSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)
    log_every: int = 10
    eval_every: int = 100  # validation loss per component every N steps
    eval_batches: int = 8
    prefetch: int = 2  # batches prepared ahead in a background thread
    skip_nonfinite: bool = True  # skip (and count) steps whose gradients hold NaN/Inf
    rollback_spike_factor: float | None = None  # restore the last checkpoint if loss > factor x its recent mean
    activation_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    peak_flops_per_device: float | None = None  # for MFU; None: a table of known GPUs/TPUs (CPU: estimated)


# ------------------------------------------------------------------------------------------------------ studies
@dataclass(frozen=True)
class ArmSpec:
    name: str
    quality_filter_web: bool  # the one thing the arms differ in


@dataclass(frozen=True)
class StudySpec:
    """Filtered vs unfiltered web: same budget, weights, tokenizer, preset, steps and tasks; N seeds per arm."""

    name: str
    mixture: str  # mixture spec name
    train: str  # train spec name
    tasks: tuple[str, ...]  # lm-eval task or tag names of the built-in tasks (data_specs/tasks/, RUN/tasks/)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[ArmSpec, ...] = (ArmSpec("filtered", True), ArmSpec("unfiltered", False))
    confidence: float = 0.95
    eval_limit: int | None = None  # evaluate the first N test examples of each task (None: all); same for every run


# ------------------------------------------------------------------------------------------------------ loading
SPEC_KINDS: dict[str, type] = {
    "sources": SourceSpec,
    "mixtures": MixtureSpec,
    "classifier": ClassifierSpec,
    "train": TrainSpec,
    "studies": StudySpec,
}


def spec_path(kind: str, name_or_path: str | Path) -> Path:
    """A spec name (e.g. 'demo') resolves to data_specs/<kind>/<name>.yaml; anything with a slash or .yaml is a path."""
    if kind not in SPEC_KINDS:
        raise SpecError(f"unknown spec kind {kind!r} (one of {', '.join(SPEC_KINDS)})")
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    path = SPEC_ROOT / kind / f"{text}.yaml"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in (SPEC_ROOT / kind).glob("*.yaml")))
        raise SpecError(f"no {kind} spec named {text!r} (have: {names})")
    return path


def load(kind: str, name_or_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Any:
    return load_spec(SPEC_KINDS[kind], spec_path(kind, name_or_path), overrides)


def spec_names(kind: str) -> list[str]:
    return sorted(p.stem for p in (SPEC_ROOT / kind).glob("*.yaml"))
