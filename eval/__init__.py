"""Evaluation with lm-evaluation-harness: the `glamkit` model backend, the built-in tasks as lm-eval YAMLs, the eval
stage, and the filtered-vs-unfiltered data-quality study."""
