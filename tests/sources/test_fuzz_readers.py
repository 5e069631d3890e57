"""Property-based fuzzing of every reader: real packaged files, mutated by hypothesis, read by the sources stage's
own function (reader + writer) and held to the rule in `fuzz_rule.py`.

`make test` runs each target's examples with a fixed seed (`derandomize`); `make fuzz` runs 20 times as many with
a seed of your choice (FUZZ_SEED). A failure prints the shrunk input's mutations and a `@reproduce_failure` blob.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_specs.errors import GlamkitError
from data_specs.records import write_jsonl_gz
from sources.read import SourceStats
from sources.readers import READERS, ReadContext, multistream_ranges, read_mediawiki
from tests.conftest import FUZZ_MULTIPLIER
from tests.sources.fuzz_inputs import TARGETS, Target, multistream, mutations, wiki_xml
from tests.sources.fuzz_rule import Outcome, check_failure, lay_out, through_sources_stage, through_writer

pytestmark = [pytest.mark.fuzz]
BY_NAME = {t.name: t for t in TARGETS}


def read_target(target: Target, data: bytes, folder: Path) -> Outcome:
    files = lay_out(folder / "in", target.files(data))
    return through_sources_stage(target.spec(folder / "in"), files, folder / "out")


def test_every_reader_is_fuzzed() -> None:
    assert {t.reader for t in TARGETS} == set(READERS)


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_each_seed_reads_clean(name: str) -> None:
    """The unmutated seed is real, readable data: documents and no error (so a mutation's effect is its own)."""
    target = BY_NAME[name]
    with tempfile.TemporaryDirectory() as tmp:
        got = read_target(target, target.seed(), Path(tmp))
    assert got.failure is None and got.documents >= 1 and not got.errors, got


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_mutated_input_is_read_counted_or_refused_in_one_line(name: str) -> None:
    target = BY_NAME[name]
    seed = target.seed()

    @settings(max_examples=target.examples * FUZZ_MULTIPLIER)
    @given(data=mutations(seed))
    def case(data: bytes) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            read_target(target, data, Path(tmp))

    case()


# ------------------------------------------------------------------------------------------------ multistream
def _read_ranges(dump: Path, index: Path, out: Path) -> Outcome:
    """A multistream dump read range by range, as a Beam job splits it, through the sources stage's writer."""
    stats = SourceStats("wikipedia")
    ctx = ReadContext("fuzz-multistream", "wikipedia", {}, (str(dump.parent),), stats.errors, stats.skipped)
    try:
        ranges = multistream_ranges(str(index))
    except GlamkitError as exc:
        return Outcome(failure=check_failure(exc, [index]))
    docs = (doc for start, end in ranges for doc in read_mediawiki(str(dump), ctx, start, end))
    return through_writer(docs, stats, [dump, index], out)


@pytest.mark.slow
def test_mutated_multistream_dump_and_index() -> None:
    dump, index = multistream(wiki_xml(), pages_per_stream=1)

    @settings(max_examples=100 * FUZZ_MULTIPLIER)
    @given(which=st.booleans(), data=st.data())
    def case(which: bool, data: st.DataObject) -> None:
        mutated = data.draw(mutations(dump if which else index))
        with tempfile.TemporaryDirectory() as tmp:
            d, i = lay_out(Path(tmp) / "in", {"dump.xml.bz2": mutated if which else dump,
                                               "index.txt": index if which else mutated})
            _read_ranges(d, i, Path(tmp) / "out")

    case()


def test_multistream_seed_reads_as_the_whole_dump(tmp_path: Path) -> None:
    dump, index = multistream(wiki_xml(), pages_per_stream=1)
    d, i = lay_out(tmp_path / "in", {"dump.xml.bz2": dump, "index.txt": index})
    got = _read_ranges(d, i, tmp_path / "out")
    whole = list(read_mediawiki(str(d), ReadContext("fuzz-multistream", "wikipedia")))
    assert got.failure is None and got.documents == len(whole) >= 1 and not got.errors


# ------------------------------------------------------------------------------------------------ the unpickler
@pytest.mark.slow
def test_mutated_pickles_never_reach_past_the_allow_list() -> None:
    """The reader unpickles only the known file; its allow-listed Unpickler, fed mutated copies of that file (as
    if the check were gone), gives a dict or a one-line GlamkitError, and calls nothing outside its list."""
    import zlib

    from sources.readers.usenet import load_bunch
    from tests.sources.fuzz_inputs import package_file

    blob = zlib.decompress(package_file("mini-newsgroup").read_bytes())

    @settings(max_examples=150 * FUZZ_MULTIPLIER)
    @given(data=mutations(blob))
    def case(data: bytes) -> None:
        try:
            assert isinstance(load_bunch(data, "mini_newsgroup"), dict)
        except GlamkitError as exc:
            assert "\n" not in str(exc) and "mini_newsgroup: byte 0" in str(exc)

    case()


@pytest.mark.parametrize("data", [b"\x95\x00", b"J\x00"], ids=["frame-cut", "binint-cut"])
def test_a_pickle_cut_inside_an_opcode_argument_fails_in_one_line(data: bytes) -> None:
    """Found by the fuzzer once the suite moved (new derandomized inputs): struct.error escaped the Unpickler."""
    from sources.readers.usenet import load_bunch

    with pytest.raises(GlamkitError, match=r"^mini_newsgroup: byte 0: not a pickled Bunch of posts: error: unpack"):
        load_bunch(data, "mini_newsgroup")


def test_writer_takes_what_a_reader_yields(tmp_path: Path) -> None:
    """Surrogates never reach a writer: the reader repairs them and counts the document."""
    path = tmp_path / "scraped.jsonl"
    path.write_bytes(b'{"text": "half an emoji \\ud83d here", "url": "https://example.org/\\udc00"}\n')
    ctx = ReadContext("mine", "web")
    docs = list(READERS["records"](str(path), ctx))
    assert write_jsonl_gz(tmp_path / "out.jsonl.gz", docs) == 1
    assert docs[0].text == "half an emoji \ufffd here" and docs[0].url == "https://example.org/\ufffd"
    assert ctx.errors == {"lone_surrogate_replaced": 1}
