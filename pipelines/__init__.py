"""The Beam jobs: read sources, curate, dedup, tokenize, mix into Arrow shards, stats. Thin glue over `filters`.
Import the submodules you need; this file imports nothing, so `import pipelines` does not load Beam."""
