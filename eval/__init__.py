"""Evaluation: perplexity, zero/one/few-shot tasks, and the filtered-vs-unfiltered data-quality study."""
