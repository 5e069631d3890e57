"""The backend's numbers against a plain, unbatched forward pass of the same checkpoint; shared by the single-device
tests (test_backend.py) and the 8-device mesh test, which runs them in a child process."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np

Pair = tuple[str, str]


class Direct:
    """The checkpoint's forward pass on one row at a time: no batching, buckets or segment ids. The row is padded on
    the right to the full context so that one program serves every length: attention is causal and scoring is
    dropless, so nothing after a position reaches it."""

    def __init__(self, run: Path) -> None:
        import jax

        from data_specs.tokenizer import load_tokenizer
        from eval.model_loader import load_trained

        self.forward, self.params, spec = load_trained(run / "train")
        self.context = spec.seq_len
        self.sp = load_tokenizer(run / "tokenizer").processor()
        self.eos = self.sp.eos_id()
        self._jit = jax.jit(self.forward)

    def logprobs(self, tokens: list[int]) -> np.ndarray:
        """log p(next token) at every position of one row, [len, vocab] in float64."""
        import jax

        row = np.zeros((1, self.context), np.int32)
        row[0, : len(tokens)] = tokens
        logits = self._jit(self.params, row)[0, : len(tokens)]
        return np.asarray(jax.nn.log_softmax(logits.astype("float32"), axis=-1), np.float64)

    def loglikelihood(self, context: str, continuation: str) -> tuple[float, bool]:
        """lm-eval's split (a context's trailing spaces move to the continuation; an empty context is EOS)."""
        if context:
            spaces = len(context) - len(context.rstrip())
            if spaces:
                context, continuation = context[:-spaces], context[-spaces:] + continuation
            ctx = self.sp.encode(context)
            cont = self.sp.encode(context + continuation)[len(ctx) :]
        else:
            ctx, cont = [self.eos], self.sp.encode(continuation)
        row = (ctx + cont)[-(self.context + 1) :]
        logp = self.logprobs(row[:-1])[-len(cont) :]
        picked = logp[np.arange(len(cont)), cont]
        return float(picked.sum()), bool((logp.argmax(-1) == cont).all())

    def rolling(self, text: str) -> tuple[float, int]:
        """Every token scored once, in windows of the context length: window [a, b) is predicted from the (at most
        context) tokens before b of EOS + tokens. Returns the total and the number of windows."""
        tokens = self.sp.encode(text)
        stream = [self.eos, *tokens]
        total, windows = 0.0, 0
        for a in range(0, len(tokens), self.context):
            b = min(a + self.context, len(tokens))
            start = max(0, b - self.context)
            logp = self.logprobs(stream[start:b])
            total += float(sum(logp[j - start, tokens[j]] for j in range(a, b)))
            windows += 1
        return total, windows

    def greedy(self, context: str, until: list[str], max_tokens: int) -> tuple[str, int]:
        """A token at a time on the growing row; returns the text cut at the first stop string, and the number of
        tokens generated before stopping (at a stop string, EOS or the cap)."""
        row = self.sp.encode(context)[-(self.context - max_tokens) :]
        out: list[int] = []
        while len(out) < max_tokens:
            token = int(self.logprobs(row)[-1].argmax())
            if token == self.eos:
                break
            out.append(token)
            row.append(token)
            if any(u in self.sp.decode(out) for u in until):
                break
        text = self.sp.decode(out)
        for u in until:
            text = text.split(u)[0]
        return text, len(out)


def requests(run: Path, n: int = 12) -> tuple[list[Pair], list[tuple[str, list[str], int]]]:
    """Loglikelihood pairs (multiple-choice requests of wiki-cloze, short and long, and an empty context) and
    generation requests (lambada-books contexts), from the built-in tasks' held-out text."""
    cloze = [json.loads(line) for line in (run / "tasks" / "wiki-cloze" / "test.jsonl").read_text().splitlines()]
    books = [json.loads(line) for line in (run / "tasks" / "lambada-books" / "test.jsonl").read_text().splitlines()]
    pairs = [(ex["context"], f" {choice}") for ex in cloze[: n // 4] for choice in ex["choices"]]
    pairs += [("", books[0]["target"]), (books[1]["context"] + " ", books[1]["target"])]
    gens = [(ex["context"], ["\n", "."], 6) for ex in books[:4]]
    return pairs, gens


def instances(kind: str, args: list[Any]) -> list[Any]:
    from lm_eval.api.instance import Instance

    return [Instance(request_type=kind, doc={}, arguments=a, idx=i) for i, a in enumerate(args)]


def backend_answers(lm: Any, pairs: list[Pair], gens: list[tuple[str, list[str], int]], seed: int | None = None
                    ) -> tuple[list[tuple[float, bool]], list[str]]:
    """The backend's loglikelihoods and generations, asked in a shuffled order (seed) and put back in order."""
    order = list(range(len(pairs)))
    gen_order = list(range(len(gens)))
    if seed is not None:
        random.Random(seed).shuffle(order)
        random.Random(seed).shuffle(gen_order)
    ll = lm.loglikelihood(instances("loglikelihood", [pairs[i] for i in order]))
    out = lm.generate_until(instances("generate_until", [
        (gens[i][0], {"until": gens[i][1], "max_gen_toks": gens[i][2], "do_sample": False}) for i in gen_order]))
    ll_back: list[tuple[float, bool]] = [None] * len(pairs)  # type: ignore[list-item]
    out_back: list[str] = [""] * len(gens)
    for pos, i in enumerate(order):
        ll_back[i] = ll[pos]
    for pos, i in enumerate(gen_order):
        out_back[i] = out[pos]
    return ll_back, out_back
