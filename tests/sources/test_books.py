"""Books: Gutenberg boilerplate gone, one document per work, editions of one work grouped."""

from __future__ import annotations

from collections import defaultdict

from sources.readers.books import strip_gutenberg


def test_botchan_has_no_gutenberg_header_footer_or_licence(read) -> None:
    got = read("botchan")
    assert len(got.docs) == 1 and not got.stats.errors
    doc = got.docs[0]
    text = doc.text
    for gone in ("*** START OF", "*** END OF", "Project Gutenberg", "PROJECT GUTENBERG", "gutenberg.org", "LICENSE",
                 "Produced by", "This file should be named", "\ufeff"):
        assert gone not in text, gone
    assert text.startswith("BOTCHAN (MASTER DARLING)")
    assert 45_000 < len(text.split()) < 50_000  # the novel, whole: not cut short, not padded with the licence
    assert doc.meta["title"] == "Botchan (Master Darling)" and doc.meta["language"] == "en"


def test_every_folio_edition_groups_with_its_modern_edition(read) -> None:
    got = read("shakespeare")
    assert len(got.docs) == 77 and len({d.id for d in got.docs}) == 77
    editions: dict[str, set[str]] = defaultdict(set)
    for doc in got.docs:
        assert doc.meta["group"] == doc.meta["work"]
        editions[doc.meta["work"]].add(doc.meta["edition"])
    folio_works = [w for w, e in editions.items() if "gut_f" in e]
    assert len(folio_works) == 35  # every _gut_f file; 7 of them spelled differently from their _gut twin
    assert all(editions[w] == {"gut", "gut_f"} for w in folio_works), {w: editions[w] for w in folio_works}
    hamlet = sorted((d for d in got.docs if d.meta["work"] == "hamlet"), key=lambda d: d.meta["edition"])
    assert hamlet[0].id != hamlet[1].id and hamlet[0].text != hamlet[1].text
    assert hamlet[0].meta["title"] == "Hamlet" and hamlet[0].url.startswith("http://www.gutenberg.org/")


def test_milton_reads_the_gutenberg_texts_once_each(read) -> None:
    got = read("milton")
    assert sorted(d.meta["work"] for d in got.docs) == [
        "areopagitica", "comus", "lallegro_il_penseroso_comus_and_lycidas", "paradise_lost_(no_introduction)",
        "paradise_regained", "poemata", "poetical_works",
    ]
    assert all(d.meta["title"] for d in got.docs)


def test_strip_keeps_text_without_markers_whole() -> None:
    body = "ACT I\n\nEnter two gentlemen.\n\nFirst Gentleman. Good morrow."
    assert strip_gutenberg(body) == body
    marked = f"header\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n{body}\n*** END OF THE PROJECT GUTENBERG"
    assert strip_gutenberg(marked + " EBOOK X ***\nlicence text") == body
