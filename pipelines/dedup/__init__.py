"""Dedup and decontamination as Beam transforms (see transforms.py for the flow). Imports nothing, so reading its
config (pipelines.dedup.config) loads no Beam."""
