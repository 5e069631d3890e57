"""The shared normalisation: canonical document text for curation, one-line lowercase text for the classifier."""

import unicodedata

from filters.normalize import model_text, normalize_document


def test_document_normalisation_repairs_and_tidies() -> None:
    raw = "Caf\u0065\u0301 \u00e2\u0080\u0099quoted\u00e2\u0080\u0099\r\n\x00tab\there   \u200b\n\n\n\n end  "
    text = normalize_document(raw)
    assert text == unicodedata.normalize("NFC", text)
    assert "\x00" not in text and "\u200b" not in text and "\r" not in text
    assert "Café" in text
    assert "’quoted’" in text  # mojibake of a curly quote repaired
    assert "tab here" in text
    assert "\n\n\n" not in text and text.endswith("end")
    assert normalize_document(text) == text  # idempotent


def test_model_text_is_one_lowercase_line() -> None:
    assert model_text("Hello\nWorld\tAGAIN\r\n", 100) == "hello world\tagain\r "
    assert model_text("x" * 50, 10) == "x" * 10


def test_repair_text_is_ftfy_on_real_and_crafted_text(demo_sources_run) -> None:
    import ftfy

    from data_specs.records import read_documents
    from filters.normalize import _FTFY, repair_text

    texts = [d.text for p in sorted((demo_sources_run / "sources").glob("*.jsonl.gz")) for d in read_documents(p)
             if not d.text.isascii()]
    assert len(texts) > 500
    crafted = ["caf\u00c3\u00a9 \u00e2\u0080\u0099x\r\nline \x85 two", "\ufb01ne \uff21\uff22\u2028y\u2029",
               "e\u0301 combining\n", "lone \udcff surrogate", "a\x1b[31mred\x1b[0m", "ascii\rwith\x07bell\n\n",
               "\u0080\u009f c1", "", "\n", "x" * 10 + "\u00e9"]
    for text in texts + crafted:
        assert repair_text(text) == ftfy.fix_text(text, _FTFY)
