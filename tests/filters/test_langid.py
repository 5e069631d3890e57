"""Language ID: packaged model, right answers on real text, a sampled probe for huge documents."""

from __future__ import annotations

import time

from filters.langid import WINDOW, WINDOWS, detect_language, language_meta, sample


def test_languages_and_scores() -> None:
    en = "The Senate voted on the nomination this afternoon, and the tally was split evenly between the parties."
    fr = "Le Sénat a voté cet après-midi sur la nomination, et le décompte était partagé entre les deux partis."
    de = "Der Senat hat heute Nachmittag über die Nominierung abgestimmt, und das Ergebnis war unentschieden."
    assert detect_language(en)[0] == "en" and detect_language(fr)[0] == "fr" and detect_language(de)[0] == "de"
    _lang, score = detect_language(en)
    assert 0.9 < score <= 1.0


def test_no_letters_is_undetermined() -> None:
    assert detect_language("") == ("und", 0.0) and detect_language("1234 5678 --- !!!") == ("und", 0.0)


def test_meta_is_strings_with_fixed_decimals() -> None:
    meta = language_meta("This is plainly an English sentence about the weather today.")
    assert meta["language"] == "en" and len(meta["language_score"].split(".")[1]) == 4


def test_a_huge_document_costs_a_few_windows() -> None:
    text = "English prose about the sea and ships. " * 1_500_000  # ~58 MB
    probe = sample(text)
    assert len(probe) <= WINDOW * WINDOWS + WINDOWS
    start = time.perf_counter()
    assert detect_language(text)[0] == "en"
    assert time.perf_counter() - start < 1.0


def test_model_ships_in_the_package() -> None:
    from pathlib import Path

    import py3langid
    from py3langid.langid import MODEL_FILE

    assert (Path(py3langid.__file__).parent / MODEL_FILE).is_file()
