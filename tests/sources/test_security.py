"""Hostile files: entity expansion ("billion laughs") and external entities refused unexpanded, with a message that
says what they are; gzip, bz2 and zip bombs cut at the cap with a counted error; no pickle opened but the known one.
Time and memory are measured in a fresh process (tests/sources/security_probe.py)."""

from __future__ import annotations

import json
import logging
import pickle
import subprocess
import zlib
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from sources.readers import ReadContext, read_feed, read_mediawiki, read_text_lines, read_usenet_pickle
from sources.readers.base import BOMB_FLOOR
from tests.conftest import PYTHON, REPO
from tests.sources.fuzz_inputs import TARGETS
from tests.sources.hostile import KINDS, gzip_bomb
from tests.sources.security_probe import standard_cases

pytestmark = [pytest.mark.fuzz]
BY_NAME = {t.name: t for t in TARGETS}
GiB = 1 << 30


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Every standard case read in its own fresh process: file name -> documents, errors, seconds, peak MB."""
    folder = tmp_path_factory.mktemp("hostile")
    out = {}
    for reader, path in standard_cases(folder):
        proc = subprocess.run([PYTHON, "-m", "tests.sources.security_probe", f"{reader}={path}"], cwd=REPO,
                              capture_output=True, text=True, check=True, env={"PYTHONPATH": str(REPO)})
        got = json.loads(proc.stdout.splitlines()[-1])
        out[got["file"]] = got
    return out


@pytest.mark.parametrize("name", ["billion-laughs.xml", "billion-laughs.xml.bz2", "external-entity.xml",
                                  "feed.xml"])
def test_entity_attacks_are_refused_in_under_a_second_and_100_mb(probed: dict[str, dict], name: str) -> None:
    got = probed[name]
    assert got["errors"] == {"xml_entities_refused": 1} and got["documents"] == 0
    assert got["seconds"] < 1.0 and got["peak_mb_above_baseline"] < 100, got


def test_the_refusal_says_what_it_is(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "dump.xml"
    path.write_bytes(KINDS["billion laughs"](BY_NAME["mediawiki-xml"])["dump.xml"])
    with caplog.at_level(logging.WARNING, "glamkit.readers"):
        assert list(read_mediawiki(str(path), ReadContext("wiki", "wikipedia"))) == []
    message = caplog.records[-1].getMessage()
    assert "declares a DTD or XML entities" in message and "billion-laughs" in message
    assert "truncated" not in message and f"{path} near byte" in message


def test_a_feed_that_only_declares_entities_is_read_without_expanding_them(tmp_path: Path) -> None:
    """Real feeds declare XHTML entity sets (4 of chardet's, this one among them): read, nothing fetched."""
    seed = BY_NAME["feed-utf8"].seed()
    assert b'<!ENTITY % HTMLlat1 PUBLIC "-//W3C//ENTITIES Latin 1 for XHTML//EN"' in seed
    folder = tmp_path / "utf-8"
    folder.mkdir()
    (folder / "feed.xml").write_bytes(seed)
    ctx = ReadContext("feeds", "forums", {"encoding_from_folder": True})
    assert len(list(read_feed(str(folder / "feed.xml"), ctx))) == 15 and not ctx.errors


@pytest.mark.parametrize("name", ["bomb.txt.gz", "bomb.jsonl.gz", "bomb.warc.gz", "bomb.xml.bz2", "bomb.txt.bz2",
                                  "bomb.zip"])
def test_a_bomb_is_cut_at_the_cap_with_a_counted_error(probed: dict[str, dict], name: str) -> None:
    got = probed[name]
    assert got["errors"].get("decompression_bomb") == 1 and got["documents"] == 0
    assert got["seconds"] < 5 and got["peak_mb_above_baseline"] < 2 * BOMB_FLOOR / (1 << 20), got


def test_the_gzip_bomb_expands_to_1_gb_and_is_cut_near_the_floor(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    import gzip

    bomb = gzip_bomb()
    member = gzip.compress(bytes(16 << 20), compresslevel=9, mtime=0)
    assert bomb == member * 64 and len(bomb) < 2 << 20  # 64 members of 16 MiB of zeros: 1 GiB from ~1 MB
    path = tmp_path / "bomb.txt.gz"
    path.write_bytes(bomb)
    ctx = ReadContext("lines", "news")
    with caplog.at_level(logging.WARNING, "glamkit.readers"):
        assert list(read_text_lines(str(path), ctx)) == []
    assert ctx.errors == {"decompression_bomb": 1}
    cut = int(caplog.records[-1].getMessage().split("cut after ")[1].split()[0])
    assert BOMB_FLOOR < cut < BOMB_FLOOR + (4 << 20) < GiB


def test_no_pickle_but_the_known_one_is_opened(tmp_path: Path) -> None:
    """Whatever the file holds, an unknown pickle is refused before unpickling: no code runs."""
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (Path.touch, (marker,))

    for name, blob in (("mini_newsgroup", zlib.compress(pickle.dumps({"data": [Evil()]}, protocol=2))),
                       ("posts.pkl", pickle.dumps(Evil(), protocol=4)),
                       ("plain", pickle.dumps({"data": ["Subject: hi\n\nA harmless post."]}))):
        path = tmp_path / name
        path.write_bytes(blob)
        with pytest.raises(GlamkitError, match=f"{name}: byte 0: refusing to unpickle"):
            list(read_usenet_pickle(str(path), ReadContext("x", "forums")))
    assert not marker.exists()
