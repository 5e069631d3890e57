"""The evaluation harness: prompts, rank classification, metrics and the scoring primitives' semantics."""

import math
from pathlib import Path

import numpy as np
import pytest

from data_specs.records import read_documents
from data_specs.specs import GenerationSpec, MetricSpec, TaskSpec
from eval import metrics as M
from eval.lm import SentencePieceTokenizer, TokenLM
from eval.tasks import build_prompt, evaluate_task


class PreferringScorer:
    """A hand-built scorer: log-likelihood is high for continuations containing a preferred word."""

    def __init__(self, preferred: str) -> None:
        self.preferred = preferred
        self.requests: list[tuple[str, str]] = []

    def loglikelihood(self, requests):
        self.requests += list(requests)
        return [(0.0 if self.preferred in cont else -5.0 - len(cont), False) for _, cont in requests]


MC = TaskSpec(task="mc", output_type="multiple_choice", dataset_path="unused", doc_to_text="Q: {{q}}\nA:",
              doc_to_choice="choices", doc_to_target="label", metric_list=(MetricSpec("acc"), MetricSpec("acc_norm")),
              fewshot_split="train", num_fewshot=2)
DOCS = {
    "test": [{"q": f"question {i}", "choices": ["red", "green", "blue"], "label": i % 3} for i in range(6)],
    "train": [{"q": f"demo {j}", "choices": ["yes", "no"], "label": j % 2} for j in range(10)],
}


def test_rank_classification_picks_the_preferred_choice() -> None:
    scorer = PreferringScorer("green")
    result = evaluate_task(MC, DOCS, scorer)
    # the scorer always prefers "green" (index 1): exactly the docs whose label is 1 are right
    assert result["acc"]["value"] == pytest.approx(2 / 6)
    assert result["n"] == 6 and len(scorer.requests) == 18
    assert all(cont.startswith(" ") for _, cont in scorer.requests)  # target_delimiter precedes each choice


def test_fewshot_prompt_layout_and_no_leak() -> None:
    prompt = build_prompt(MC, 0, DOCS["test"][0], DOCS["train"], seed=0)
    blocks = prompt.split("\n\n")
    assert len(blocks) == 3 and blocks[-1] == "Q: question 0\nA:"
    for block in blocks[:2]:
        q, answer = block.rsplit(" ", 1)
        demo = next(d for d in DOCS["train"] if f"Q: {d['q']}\nA:" == q)
        assert answer == demo["choices"][demo["label"]]
    assert build_prompt(MC, 0, DOCS["test"][0], DOCS["train"], seed=0) == prompt  # deterministic
    assert build_prompt(MC, 1, DOCS["test"][1], DOCS["train"], seed=0) != prompt.replace("question 0", "question 1")
    # the same split as pool: never the evaluated example itself
    same = TaskSpec(**{**MC.__dict__, "fewshot_split": "train", "num_fewshot": 9})
    for i, doc in enumerate(DOCS["train"]):
        p = build_prompt(same, i, doc, DOCS["train"], seed=0)
        assert p.count(f"Q: {doc['q']}\n") == 1 and p.endswith(f"Q: {doc['q']}\nA:")


def test_exact_match_and_f1_by_hand() -> None:
    assert M.exact_match("The Cat!", "cat") == 1.0
    assert M.exact_match("a dog", "cat") == 0.0
    # pred tokens [cat, sat, on, mat], ref [cat, sat]: precision 2/4, recall 2/2 -> F1 = 2/3
    assert M.f1("the cat sat on the mat", "cat sat") == pytest.approx(2 / 3)
    assert M.f1("", "") == 1.0 and M.f1("x", "") == 0.0


@pytest.fixture(scope="module")
def tokenizer(demo_sources_run: Path, tmp_path_factory) -> SentencePieceTokenizer:
    import sentencepiece as spm

    text = "\n".join(d.text for d in read_documents(demo_sources_run / "sources" / "gensim-enwiki.jsonl.gz"))
    prefix = tmp_path_factory.mktemp("sp") / "sp"
    spm.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()[:20000]), model_prefix=str(prefix),
                                   vocab_size=600, byte_fallback=True, num_threads=1, pad_id=0, eos_id=1, unk_id=2,
                                   bos_id=-1, minloglevel=2)
    return SentencePieceTokenizer(f"{prefix}.model")


def test_uniform_model_perplexity_is_the_vocabulary_size(tokenizer: SentencePieceTokenizer) -> None:
    import jax.numpy as jnp

    vocab = tokenizer.vocab_size()
    lm = TokenLM(tokenizer, lambda tokens: jnp.zeros((*tokens.shape, vocab)), max_len=64, batch_size=4)
    texts = ["Anarchism is a political philosophy.", "Albedo is the fraction of sunlight " * 20]
    task = TaskSpec(task="ppl", output_type="loglikelihood_rolling", dataset_path="unused",
                    metric_list=(MetricSpec("perplexity"), MetricSpec("bits_per_byte")))
    result = evaluate_task(task, {"test": [{"text": t} for t in texts]}, lm)
    assert result["perplexity"]["value"] == pytest.approx(vocab, rel=1e-4)
    tokens = sum(len(tokenizer.encode(t)) for t in texts)
    nbytes = sum(len(t.encode()) for t in texts)
    assert result["bits_per_byte"]["value"] == pytest.approx(tokens * math.log2(vocab) / nbytes, rel=1e-4)


def test_loglikelihood_scores_exactly_the_continuation_tokens(tokenizer: SentencePieceTokenizer) -> None:
    import jax.numpy as jnp

    vocab = tokenizer.vocab_size()
    favourite = tokenizer.encode(" the")[-1]

    def forward(tokens):  # a model that always predicts `favourite` with log-prob 0 (others -inf-ish)
        return jnp.where(jnp.arange(vocab) == favourite, 0.0, -30.0)[None, None, :] + jnp.zeros((*tokens.shape, 1))

    lm = TokenLM(tokenizer, forward, max_len=32, batch_size=2)
    (ll_hit, greedy_hit), (ll_miss, greedy_miss) = lm.loglikelihood([("Once upon a time", " the"),
                                                                     ("Once upon a time", " zebra crossing")])
    assert greedy_hit and ll_hit == pytest.approx(0.0, abs=1e-4)
    assert not greedy_miss and ll_miss < -25
    out = lm.generate_until([("Hello", [" the the"], 5)])
    assert out == [""] or set(out[0].split()) <= {"the"}


def test_generation_stops_at_the_stop_string(tokenizer: SentencePieceTokenizer) -> None:
    import jax.numpy as jnp

    vocab = tokenizer.vocab_size()
    word = tokenizer.encode(" cat.")

    def forward(tokens):  # cycles through the pieces of " cat." regardless of input
        nxt = jnp.asarray(word)[(jnp.arange(tokens.shape[1]) + 1) % len(word)]
        return jnp.where(jnp.arange(vocab)[None, None] == nxt[None, :, None], 0.0, -30.0) * jnp.ones_like(
            tokens)[..., None]

    lm = TokenLM(tokenizer, forward, max_len=32, batch_size=2)
    task = TaskSpec(task="gen", output_type="generate_until", dataset_path="unused", doc_to_text="{{context}}",
                    doc_to_target="{{target}}", generation_kwargs=GenerationSpec(until=("."), max_gen_toks=12),
                    metric_list=(MetricSpec("exact_match"),))
    result = evaluate_task(task, {"test": [{"context": "x" * 7, "target": "anything"}]}, lm)
    assert "." not in result["samples"][0]["output"]
    assert np.isfinite(result["exact_match"]["value"])
