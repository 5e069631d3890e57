"""Packs (pipelines.dedup.packs): rows survive packing and unpacking whole, each in the partition of its key, and a
Packer run through Beam emits one pack per partition however many elements fed it."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
from apache_beam.testing.util import assert_that

from pipelines.beam.options import pipeline_options
from pipelines.dedup import packs


def test_rows_come_back_whole_in_their_partition() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(-(2**62), 2**62, 500)
    other = rng.integers(0, 2**62, 500)
    texts = [("ünï" * (i % 4) + str(i)).encode() if i % 7 else b"" for i in range(500)]
    out = list(packs.split(keys, [keys, other], [texts], 8))
    assert len({p for p, _ in out}) == len(out)  # one pack per partition
    rows = set()
    for part, cols in out:
        (k, o), (t,) = packs.columns([cols], 2, 1)
        assert set((k % 8).tolist()) == {part}
        rows |= set(zip(k.tolist(), o.tolist(), t, strict=True))
    assert rows == set(zip(keys.tolist(), other.tolist(), texts, strict=True))


def _rows(n: int) -> list[packs.Rows]:
    a = np.arange(n, dtype=np.int64) * 7919
    return [packs.pair_rows(a, a + 1)]


def test_packer_buffers_across_elements() -> None:
    def check(out: list) -> None:
        parts = [p for p, _ in out]
        assert sorted(parts) == sorted(set(parts)), "more than one pack for a partition"
        a, b = packs.pairs(cols for _, cols in out)
        assert sorted(a.tolist()) == sorted(x * 7919 for n in range(1, 40) for x in range(n))
        assert (b == a + 1).all()

    with beam.Pipeline(options=pipeline_options()) as p:
        out = p | beam.Create(list(range(1, 40))) | beam.ParDo(packs.Packer(_rows, partitions=16))
        assert_that(out, check)
