"""Connected components in Beam (pipelines.dedup.components.ConnectedComponents, on packed integer edges): every node
of a component gets the component's smallest node, whether the large-star / small-star rounds converge or the residual
union-find has to finish, and whatever the number of partitions."""

from __future__ import annotations

import itertools
import random

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from pipelines.beam.options import pipeline_options
from pipelines.dedup.components import ConnectedComponents, PackEdges
from pipelines.dedup.packs import pairs_of


def _graph() -> tuple[list[tuple[int, int]], dict[int, int]]:
    rng = random.Random(0)
    edges, expected = [], {}
    names = [rng.getrandbits(63) for _ in range(600)]
    rng.shuffle(names)
    chain = names[:200]  # a path of 200 nodes in random label order: diameter 199
    edges += list(itertools.pairwise(chain))
    clique = names[200:230]
    edges += [(a, b) for i, a in enumerate(clique) for b in clique[i + 1 :]]
    tree = names[230:400]  # a random tree
    edges += [(tree[i], tree[rng.randrange(i)]) for i in range(1, len(tree))]
    pairs = names[400:600]
    edges += list(zip(pairs[::2], pairs[1::2], strict=True))
    for comp in [chain, clique, tree, *zip(pairs[::2], pairs[1::2], strict=True)]:
        for node in comp:
            expected[node] = min(comp)
    rng.shuffle(edges)
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in edges], expected


@pytest.mark.parametrize(("rounds", "partitions"), [(0, 64), (1, 7), (4, 64), (4, 1)])
def test_components_are_labelled_by_their_smallest_node(rounds: int, partitions: int) -> None:
    edges, expected = _graph()
    with beam.Pipeline(options=pipeline_options()) as p:
        labels = (
            p
            | beam.Create(edges)
            | beam.ParDo(PackEdges(partitions, flush_at=100))
            | ConnectedComponents("CC", rounds=rounds, partitions=partitions)
            | beam.FlatMap(pairs_of)
        )
        assert_that(labels, equal_to(sorted(expected.items())))
