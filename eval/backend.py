"""`glamkit`: an lm-evaluation-harness model backend for a train stage's checkpoint and the run's tokenizer.

    lm_eval --model glamkit --model_args run=runs/demo --tasks wiki-cloze --include_path runs/demo/tasks
    glamkit lm-eval --model_args run=runs/demo,data=2,expert=4 --tasks heldout-bpb --include_path runs/demo/tasks

The request semantics are lm-eval's own (TemplateLM): a continuation's tokens are those of encode(context +
continuation) after encode(context), an empty context is the EOS token, rolling log-likelihoods use lm-eval's
`get_rolling_token_windows` (disjoint windows of the model's context, the last one with full context). Scoring runs
the MoE layers dropless (no token is ever dropped) through `eval.scorer.Scorer`: jitted, length-bucketed, on one
device or a (data, expert) mesh; a continuation longer than the model's context is scored in windows, every token
from the (at most max_length) tokens before it. `generate_until` decodes greedily to a stop string, EOS or
`max_gen_toks`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import normalize_gen_kwargs, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

from data_specs.errors import GlamkitError
from data_specs.tokenizer import load_tokenizer
from eval.model_loader import load_trained, scoring_config
from eval.scorer import Scorer, bucket
from train.config import model_config

Request = tuple[Any, list[int], list[int]]  # (cache key, context tokens, continuation tokens)


@register_model("glamkit")
class GlamkitLM(TemplateLM):
    """A glamkit checkpoint as an lm-eval LM. `run` names a run folder (RUN/train, RUN/tokenizer); `train` and
    `tokenizer` override either folder; `data` x `expert` > 1 shards the model over that many devices. lm-eval's
    `device` is not used: JAX runs on its default backend (an accelerator when there is one)."""

    def __init__(self, run: str | None = None, train: str | None = None, tokenizer: str | None = None,
                 batch_size: int | str | None = 8, max_length: int | None = None, max_gen_toks: int = 256,
                 data: int = 1, expert: int = 1, min_width: int = 32, **unused: Any) -> None:
        super().__init__()

        if run is None and (train is None or tokenizer is None):
            raise GlamkitError("glamkit backend: give model_args run=RUN (or both train=DIR and tokenizer=DIR)")
        if batch_size in (None, "auto"):
            batch_size = 8
        train_dir = Path(train) if train else Path(run) / "train"
        self.tok = load_tokenizer(Path(tokenizer) if tokenizer else Path(run) / "tokenizer").processor()
        forward, params, spec = load_trained(train_dir)
        config = scoring_config(model_config(spec))
        if self.tok.get_piece_size() > config.vocab_size:
            raise GlamkitError(f"tokenizer has {self.tok.get_piece_size()} pieces, the model {config.vocab_size}")
        self._max_length = int(max_length or spec.seq_len)
        self.max_gen_toks = int(max_gen_toks)
        mesh = None
        if int(data) * int(expert) > 1:
            from model.sharding import make_mesh

            mesh = make_mesh(data=int(data), expert=int(expert))
        self.scorer = Scorer(forward, params, self._max_length, int(batch_size), int(min_width), mesh, config.rules)

    # ------------------------------------------------------------------------------------------ tokenizer
    @property
    def eot_token_id(self) -> int:
        return int(self.tok.eos_id())

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        """Plain pieces: glamkit's tokenizers add no BOS (EOS separates documents)."""
        return list(self.tok.encode(string))

    def tok_decode(self, tokens: Sequence[int], **kwargs: Any) -> str:
        return self.tok.decode([int(t) for t in tokens])

    # -------------------------------------------------------------------------------------------- scoring
    def windows(self, context: Sequence[int], continuation: Sequence[int]) -> list[tuple[list[int], list[int], int]]:
        """(inputs, targets, scored) rows predicting each continuation token once, from the (at most max_length)
        tokens before it: one row when context + continuation fit, else consecutive windows of max_length
        predictions, as lm-eval's rolling windows. `scored`: how many of the row's last targets belong to the
        continuation."""
        whole, size = [*context, *continuation], self.max_length
        rows, start = [], len(context)
        while start < len(whole):
            end = min(start + size, len(whole))
            first = max(0, end - 1 - size)
            rows.append((whole[first : end - 1], whole[first + 1 : end], end - start))
            start = end
        return rows

    def _loglikelihood_tokens(self, requests: Sequence[Request], disable_tqdm: bool = False, **kwargs: Any
                              ) -> list[tuple[float, bool]]:
        """(sum of the continuation's log-probabilities, whether greedy decoding gives it) per request. Every
        continuation token is scored: the input keeps the right end of context + continuation, and a continuation
        longer than the model's context is scored in windows (`windows`)."""
        rows, owner = [], []
        for k, (_, context, continuation) in enumerate(requests):
            if not continuation or not context:
                raise GlamkitError("glamkit backend: a request needs a context token and a continuation")
            for inputs, targets, scored in self.windows(context, continuation):
                rows.append((inputs, targets))
                owner.append((k, scored))
        sums, greedy = [0.0] * len(requests), [True] * len(requests)
        for (logp, hits), (k, scored) in zip(self.scorer.score(rows), owner, strict=True):
            sums[k] += float(logp[-scored:].sum(dtype=np.float64))
            greedy[k] = greedy[k] and bool(hits[-scored:].all())
        results = list(zip(sums, greedy, strict=True))
        for request, answer in zip(requests, results, strict=True):
            if request[0] is not None:
                self.cache_hook.add_partial("loglikelihood", request[0], answer)
        return results

    def rolling_windows(self, text: str) -> list[tuple[list[int], list[int]]]:
        """lm-eval's windows for a whole document: (context, continuation) token pairs that predict every token
        once, the first after EOS, each window at most the model's context."""
        windows = get_rolling_token_windows(token_list=self.tok_encode(text), prefix_token=self.prefix_token_id,
                                            max_seq_len=self.max_length, context_len=1)
        return [make_disjoint_window(w) for w in windows]

    def loglikelihood_rolling(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[float]:
        """Each document's total log-likelihood. Identical documents (one held-out document in an overall task and
        in its component's task) are scored once."""
        texts = [req.args[0] for req in requests]
        unique = sorted(set(texts))
        windows = [(text, w) for text in unique for w in self.rolling_windows(text)]
        scored = self._loglikelihood_tokens([(None, ctx, cont) for _, (ctx, cont) in windows])
        totals = dict.fromkeys(unique, 0.0)
        for (text, _), (logp, _) in zip(windows, scored, strict=True):
            totals[text] += logp
        for text in texts:
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), totals[text])
        return [totals[text] for text in texts]

    # ----------------------------------------------------------------------------------------- generation
    def generate_until(self, requests: Sequence[Any], disable_tqdm: bool = False) -> list[str]:
        """Greedy continuations, each cut at its first stop string; at most `max_gen_toks` tokens, ending at EOS."""
        jobs, keys = [], []
        for req in requests:
            context, gen_kwargs = req.args
            kwargs = normalize_gen_kwargs(dict(gen_kwargs), self.max_gen_toks)
            if kwargs.get("do_sample") or float(kwargs.get("temperature") or 0.0) > 0.0:
                raise GlamkitError("glamkit backend: generate_until decodes greedily; do_sample/temperature > 0 "
                                   "is not supported")
            until = [u for u in kwargs.get("until", []) if u]
            budget = int(kwargs["max_gen_toks"])
            if budget >= self.max_length:
                raise GlamkitError(f"glamkit backend: max_gen_toks {budget} must be below the model's context "
                                   f"({self.max_length})")
            prompt = (self.tok_encode(context) if context else [self.prefix_token_id])[-(self.max_length - budget):]
            jobs.append((prompt, until, budget))
            keys.append(req.args)
        outputs = self.greedy(jobs, bucket_fn=lambda n: bucket(n, self.scorer.min_width, self.max_length))
        for key, text in zip(keys, outputs, strict=True):
            self.cache_hook.add_partial("generate_until", key, text)
        return outputs

    def greedy(self, jobs: Sequence[tuple[list[int], list[str], int]], bucket_fn: Any) -> list[str]:
        """Decode every job (prompt tokens, stop strings, token budget) a token at a time, all unfinished jobs
        batched at each step; a job's padded width is fixed by its prompt and budget, so it never re-buckets."""
        seqs = [list(prompt) for prompt, _, _ in jobs]
        generated: list[list[int]] = [[] for _ in jobs]
        widths = [bucket_fn(len(prompt) + budget) for prompt, _, budget in jobs]
        active = [i for i, (_, _, budget) in enumerate(jobs) if budget > 0]
        while active:
            nxt = self.scorer.next_tokens([seqs[i] for i in active], [widths[i] for i in active])
            still = []
            for i, token in zip(active, nxt, strict=True):
                if token == self.eot_token_id:
                    continue
                generated[i].append(token)
                seqs[i].append(token)
                until, budget = jobs[i][1], jobs[i][2]
                text = self.tok_decode(generated[i])
                if len(generated[i]) < budget and not any(u in text for u in until):
                    still.append(i)
            active = still
        return [postprocess_generated_text(self.tok_decode(tokens), until, None)
                for (_, until, _), tokens in zip(jobs, generated, strict=True)]

    def get_model_info(self) -> dict[str, Any]:
        """Shown in lm-eval's results `config`: nothing run-dependent (no paths, no dates)."""
        return {"max_length": self.max_length, "batch_size": self.scorer.batch_size}
