import numpy as np
import pyarrow as pa
import pytest

from train.data import BatchOrder, BatchStream, ShardSplit, make_batch, unigram_entropy, validation_batches


@pytest.mark.slow  # the real demo shards take minutes to build once per session
def test_split_is_memory_mapped_and_rows_follow_the_schema(demo_shards):
    before = pa.total_allocated_bytes()
    split = ShardSplit(demo_shards, "train")
    assert pa.total_allocated_bytes() - before < 1 << 20  # opening reads no shard into memory
    size = sum((demo_shards / f).stat().st_size for f in split.manifest.split_files("train"))
    assert size > 4 << 20
    batch = split.read(np.array([0, len(split) - 1, 5]))
    assert batch["tokens"].shape == (3, split.manifest.seq_len)
    seg, pos = batch["segment_ids"], batch["positions"]
    inside = (seg[:, 1:] == seg[:, :-1]) & (seg[:, 1:] > 0)  # positions count up by one inside a document
    assert inside.any() and np.all(np.diff(pos, axis=1)[inside] == 1)
    for row in seg:  # documents numbered 1, 2, ... in order; padding (0) only at the end
        real = row[row > 0]
        assert real[0] == 1 and np.all(np.diff(real) >= 0) and np.all(row[len(real):] == 0)
        assert np.array_equal(np.unique(real), np.arange(1, real[-1] + 1))


def test_weights_never_cross_documents_or_padding():
    tokens = np.array([[5, 6, 1, 7, 8, 1, 0, 0]])
    segs = np.array([[1, 1, 1, 2, 2, 2, 0, 0]])
    batch = make_batch(tokens, segs, np.array([[0, 1, 2, 0, 1, 2, 0, 0]]), np.array([[0, 0, 0, 1, 1, 1, -1, -1]]))
    # 5->6, 6->EOS, 7->8, 8->EOS are learned; EOS->7 (next document) and padding are not.
    assert batch["weights"].tolist() == [[1, 1, 0, 1, 1, 0, 0, 0]]
    assert batch["targets"][0, :5].tolist() == [6, 1, 7, 8, 1]
    assert batch["components"].tolist() == [[0, 0, -1, 1, 1, -1, -1, -1]]


def test_order_is_seeded_split_across_processes_and_covers_each_epoch_once():
    order = BatchOrder(100, 8, seed=0)
    epoch = np.concatenate([order.rows(k) for k in range(order.batches_per_epoch)])
    assert len(set(epoch.tolist())) == len(epoch) == 96
    assert not np.array_equal(order.rows(0), BatchOrder(100, 8, seed=1).rows(0))
    assert not np.array_equal(order.rows(0), order.rows(order.batches_per_epoch))  # reshuffled next epoch
    halves = [BatchOrder(100, 8, seed=0, process_index=p, process_count=2).rows(7) for p in (0, 1)]
    np.testing.assert_array_equal(np.concatenate(halves), order.rows(7))


@pytest.mark.slow  # the real demo shards take minutes to build once per session
def test_stream_resumes_with_exactly_the_next_batch(demo_shards):
    split = ShardSplit(demo_shards, "train", seq_len=32)
    order = BatchOrder(len(split), 4, seed=3)
    with BatchStream(split, order, start=0, prefetch=3) as stream:
        first = [next(stream) for _ in range(5)]
        assert stream.position == 5
    with BatchStream(split, order, start=3, prefetch=1) as resumed:
        k, batch = next(resumed)
    assert k == 3
    for key in first[3][1]:
        np.testing.assert_array_equal(batch[key], first[3][1][key])


@pytest.mark.slow  # the real demo shards take minutes to build once per session
def test_validation_batches_cover_every_component(demo_shards):
    split = ShardSplit(demo_shards, "validation", seq_len=32)
    batches = validation_batches(split, 8, 4)
    seen = {int(c) for b in batches for c in np.unique(b["components"]) if c >= 0}
    present = {int(c) for c in np.unique(split.read(np.arange(len(split)))["components"]) if c >= 0}
    assert len(present) >= 2 and seen == present
    assert validation_batches(split, 8, 4)[1]["tokens"].tolist() == batches[1]["tokens"].tolist()


@pytest.mark.slow  # the real demo shards take minutes to build once per session
def test_unigram_entropy_is_below_uniform(demo_shards):
    split = ShardSplit(demo_shards, "train")
    h = unigram_entropy(split)
    assert 4.0 < h < np.log(8000)


def test_epoch_order_is_a_bijection_of_a_glam_sized_row_space_in_constant_memory():
    """1.56B rows (1.6T tokens of 1,024): a million sampled indices map to distinct rows and back, and neither
    building the order nor a batch's rows allocates a permutation (tracemalloc: under 10 MB)."""
    import tracemalloc

    from train.order import RowPermutation

    n = 1_560_000_000
    tracemalloc.start()
    order = BatchOrder(n, 1024, seed=0, process_index=1, process_count=4)
    rows = order.rows(3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * 2**20 and rows.shape == (256,) and rows.min() >= 0 and rows.max() < n
    perm = RowPermutation(n, seed=0, purpose="epoch-order/0")
    indices = np.unique(np.random.default_rng(0).integers(0, n, 1_000_000))
    mapped = perm(indices)
    assert mapped.min() >= 0 and mapped.max() < n and len(np.unique(mapped)) == len(indices)
    np.testing.assert_array_equal(perm.inverse(mapped), indices)
    np.testing.assert_array_equal(order.rows(3), rows)  # a pure function of (seed, k)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 4097])
def test_row_permutation_is_a_permutation(n):
    from train.order import RowPermutation

    perm = RowPermutation(n, seed=7, purpose="x")
    np.testing.assert_array_equal(np.sort(perm(np.arange(n))), np.arange(n))
    np.testing.assert_array_equal(perm.inverse(perm(np.arange(n))), np.arange(n))
