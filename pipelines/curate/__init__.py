"""The curate job: read source documents, decode, hold out, normalise, filter, dedup and decontaminate, score,
sample by the keep rule, write kept and dropped documents with stats. Modules: schema (layout and reasons, no
Beam), core (per-document work, no Beam), stats, checks, plan (no Beam), job (the Beam pipeline), stage."""
