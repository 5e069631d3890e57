"""Pure-Python document filters (no Beam): extraction, normalisation, heuristic rules, the quality classifier,
the keep rules and dedup signatures. The Beam jobs in `pipelines` and users' notebooks share these functions."""
