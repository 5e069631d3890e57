"""Readers: plain generators `read_x(path, ctx) -> Iterator[Document]`, one per input format.

Source specs name a reader by its key in `READERS`. Every reader streams (memory bounded by one document), works
on local paths and on any filesystem Beam supports, and counts what it cannot read in `ctx.errors` / `ctx.skipped`.

    from sources.readers import READERS, ReadContext
    ctx = ReadContext(source="my-wiki", component="wikipedia")
    for doc in READERS["mediawiki"]("enwiki-pages-articles.xml.bz2", ctx):
        ...
    print(ctx.errors, ctx.skipped)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from data_specs.records import Document
from sources.readers.base import ReadContext
from sources.readers.books import read_gutenberg
from sources.readers.feeds import read_feed
from sources.readers.mediawiki import multistream_ranges, read_mediawiki
from sources.readers.records import read_records
from sources.readers.tabular import read_dialog_csv, read_labelled_lines, read_news_csv, read_text_lines
from sources.readers.usenet import read_usenet_files, read_usenet_pickle
from sources.readers.web import read_html_file, read_warc

Reader = Callable[[str, ReadContext], Iterator[Document]]

READERS: dict[str, Reader] = {
    "mediawiki": read_mediawiki,
    "gutenberg": read_gutenberg,
    "text_lines": read_text_lines,
    "labelled_lines": read_labelled_lines,
    "news_csv": read_news_csv,
    "dialog_csv": read_dialog_csv,
    "usenet_pickle": read_usenet_pickle,
    "usenet_files": read_usenet_files,
    "warc": read_warc,
    "html_dir": read_html_file,
    "feed": read_feed,
    "records": read_records,
}

__all__ = ["READERS", "ReadContext", "Reader", "multistream_ranges", *sorted(f.__name__ for f in READERS.values())]
