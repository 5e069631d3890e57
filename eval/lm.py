"""Scoring primitives on a language model, with lm-evaluation-harness semantics so numbers are comparable:

- `loglikelihood(context, continuation) -> (logprob, is_greedy)`: the continuation's tokens are those of
  encode(context + continuation) after encode(context) (a context's trailing space moves to the continuation);
  an empty context is prefixed with EOS; inputs longer than `max_len` keep their right end.
- `loglikelihood_rolling(text) -> (logprob, tokens)`: every token scored, in disjoint windows of `max_len`,
  each window conditioned on the previous token (EOS for the first), as the harness does with context_len 1.
- `generate_until(context, until, max_gen_toks)`: greedy decoding, cut at the first stop string.

`TokenLM` needs only a tokenizer and `forward(tokens[B, T]) -> logits[B, T, V]`, so tests can plug in a hand-built
model and the Flax model plugs in the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...
    def decode(self, ids: list[int]) -> str: ...
    def eos_id(self) -> int: ...
    def vocab_size(self) -> int: ...


@dataclass
class SentencePieceTokenizer:
    """A SentencePiece model as the harness sees it (no BOS/EOS added by encode)."""

    path: str

    def __post_init__(self) -> None:
        import sentencepiece as spm

        self.sp = spm.SentencePieceProcessor(model_file=str(self.path))

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids)

    def eos_id(self) -> int:
        return self.sp.eos_id()

    def vocab_size(self) -> int:
        return self.sp.get_piece_size()


def _bucket(n: int, smallest: int = 64) -> int:
    """Pad lengths to powers of two: a few compiled shapes, at most 2x wasted work on the shortest rows."""
    width = smallest
    while width < n:
        width *= 2
    return width


class TokenLM:
    """Batched scoring over `forward(tokens) -> logits`. Shapes are padded to power-of-two lengths and a fixed
    batch, so a jitted forward compiles a handful of times, not once per request."""

    def __init__(self, tokenizer: Tokenizer, forward: Callable[..., Any], max_len: int, batch_size: int = 8,
                 params: Any = None) -> None:
        """`forward(tokens)`, or `forward(params, tokens)` when `params` is given (so weights are jit arguments,
        not constants baked into the compiled program)."""
        import jax
        import jax.numpy as jnp

        self.tok = tokenizer
        self.max_len = max_len
        self.batch_size = batch_size
        call = forward if params is None else (lambda p, tokens: forward(p, tokens))

        def score(p, tokens, targets):
            logits = call(p, tokens) if params is not None else forward(tokens)
            logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
            picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
            return picked, jnp.argmax(logp, axis=-1)

        def last(p, tokens, index):
            logits = (call(p, tokens) if params is not None else forward(tokens)).astype(jnp.float32)
            return jnp.take_along_axis(logits, index[:, None, None], axis=1)[:, 0]

        score_jit, last_jit = jax.jit(score), jax.jit(last)
        self._score = lambda tokens, targets: score_jit(params, tokens, targets)
        self._last = lambda tokens, index: last_jit(params, tokens, index)

    # ---------------------------------------------------------------------------------------------- helpers
    def _run(self, rows: list[tuple[list[int], list[int]]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """rows of (inputs, targets) of equal length -> per row (target logprobs, argmax) over that length."""
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(rows)  # type: ignore[list-item]
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = _bucket(max(len(rows[i][0]) for i in chunk))
            tokens = np.zeros((self.batch_size, width), np.int32)
            targets = np.zeros((self.batch_size, width), np.int32)
            for r, i in enumerate(chunk):
                inp, tgt = rows[i]
                tokens[r, : len(inp)], targets[r, : len(tgt)] = inp, tgt
            logp, greedy = (np.asarray(a) for a in self._score(tokens, targets))
            for r, i in enumerate(chunk):
                n = len(rows[i][0])
                out[i] = (logp[r, :n], greedy[r, :n])
        return out

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        spaces = len(context) - len(context.rstrip())
        if spaces:
            context, continuation = context[:-spaces], context[-spaces:] + continuation
        whole = self.tok.encode(context + continuation)
        ctx = self.tok.encode(context)
        return ctx, whole[len(ctx) :]

    # ------------------------------------------------------------------------------------------- requests
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[tuple[float, bool]]:
        rows, spans = [], []
        for context, continuation in requests:
            ctx, cont = self._encode_pair(context, continuation) if context else ([], self.tok.encode(continuation))
            if not cont:
                raise ValueError(f"empty continuation for context {context[-40:]!r}")
            whole = ([self.tok.eos_id(), *ctx, *cont])[-(self.max_len + 1) :]
            rows.append((whole[:-1], whole[1:]))
            spans.append(len(cont))
        results = []
        for (logp, greedy), (_, targets), n in zip(self._run(rows), rows, spans, strict=True):
            results.append((float(logp[-n:].sum()), bool(np.array_equal(greedy[-n:], targets[-n:]))))
        return results

    def loglikelihood_rolling(self, texts: Sequence[str]) -> list[tuple[float, int]]:
        rows, owner = [], []
        counts = []
        for k, text in enumerate(texts):
            tokens = self.tok.encode(text)
            counts.append(len(tokens))
            prev = self.tok.eos_id()
            for i in range(0, len(tokens), self.max_len):
                window = tokens[i : i + self.max_len]
                rows.append(([prev, *window[:-1]], window))
                owner.append(k)
                prev = window[-1]
        sums = [0.0] * len(texts)
        for (logp, _), k in zip(self._run(rows), owner, strict=True):
            sums[k] += float(logp.sum())
        return list(zip(sums, counts, strict=True))

    def generate_until(self, requests: Sequence[tuple[str, Sequence[str], int]]) -> list[str]:
        """Greedy continuation of each context until a stop string or `max_gen_toks` tokens."""
        outputs = []
        for start in range(0, len(requests), self.batch_size):
            chunk = requests[start : start + self.batch_size]
            seqs = [([self.tok.eos_id(), *self.tok.encode(c)])[-self.max_len :] for c, _, _ in chunk]
            generated: list[list[int]] = [[] for _ in chunk]
            done = [False] * len(chunk)
            for _ in range(max(m for _, _, m in chunk)):
                width = _bucket(max(len(s) for s in seqs))
                tokens = np.zeros((self.batch_size, width), np.int32)
                index = np.zeros(self.batch_size, np.int32)
                for r, s in enumerate(seqs):
                    tokens[r, : len(s)], index[r] = s, len(s) - 1
                nxt = np.asarray(self._last(tokens, index)).argmax(-1)
                for r, (_, until, max_toks) in enumerate(chunk):
                    if done[r]:
                        continue
                    generated[r].append(int(nxt[r]))
                    seqs[r] = (seqs[r] + [int(nxt[r])])[-self.max_len :]
                    text = self.tok.decode(generated[r])
                    stop = int(nxt[r]) == self.tok.eos_id() or any(u in text for u in until)
                    done[r] = stop or len(generated[r]) >= max_toks
                if all(done):
                    break
            for r, (_, until, _) in enumerate(chunk):
                text = self.tok.decode([t for t in generated[r] if t != self.tok.eos_id()])
                for u in until:
                    if u and u in text:
                        text = text.split(u, 1)[0]
                outputs.append(text)
        return outputs
