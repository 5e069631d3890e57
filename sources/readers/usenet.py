"""Usenet posts: headers into `meta`, the body as text, the newsgroup as the group.

gensim ships 200 posts as a zlib-compressed Python 2 pickle of a scikit-learn `Bunch`. Pickles run code, so only
that one file (known by its sha256) is ever unpickled, and with an Unpickler that knows exactly the names it uses
and maps each to an inert stand-in. Raw posts (a 20 Newsgroups-style folder of files) go through `read_usenet_files`;
posts of your own, as JSONL, through `records`.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import struct
import zlib
from collections.abc import Iterator
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.records import Document
from sources.readers.base import MiB, ReadContext, check_size, read_whole

# The only pickles glamkit opens: sha256 of the file -> what it is.
KNOWN_PICKLES = {
    "be0084ee9aded5eeefabea86bd23f0e5e3a743d9c1875aa1e47bc0728d6a5311": "gensim 4.4.0 test_data/mini_newsgroup",
}
MAX_PICKLE_BYTES = 16 * MiB

# Headers copied into meta (as usenet_<name>); Path, Xref, References and the like are routing noise.
KEEP_HEADERS = ("newsgroups", "from", "subject", "date", "organization", "message-id", "lines", "keywords")


class Bunch(dict):
    """Stand-in for sklearn.utils.Bunch: a plain dict, nothing more."""


class _Inert:
    """Stand-in for the numpy arrays in the pickle (targets, file names): accepts its arguments, does nothing."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _reconstruct(cls: type, base: type, state: Any) -> Any:
    """copy_reg._reconstructor, limited to the two stand-in classes above."""
    if cls is Bunch:
        obj = Bunch()
        if isinstance(state, dict):
            obj.update(state)
        return obj
    if cls is _Inert:
        return _Inert()
    raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")


_ALLOWED = {
    ("copy_reg", "_reconstructor"): _reconstruct,
    ("copyreg", "_reconstructor"): _reconstruct,
    ("sklearn.datasets.base", "Bunch"): Bunch,
    ("sklearn.utils", "Bunch"): Bunch,
    ("sklearn.utils._bunch", "Bunch"): Bunch,
    ("__builtin__", "dict"): dict,
    ("builtins", "dict"): dict,
    ("numpy.core.multiarray", "_reconstruct"): _Inert,
    ("numpy", "ndarray"): _Inert,
    ("numpy", "dtype"): _Inert,
}


class BunchUnpickler(pickle._Unpickler):
    """The allow-listed Unpickler, in pure Python: the C one trusts the sizes a pickle states (a mutated LONG_BINPUT
    index makes it zero gigabytes of memo, uninterruptibly); this one keeps its memo in a dict and fails fast."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a pickle") from None


def parse_post(raw: str) -> tuple[dict[str, str], str]:
    """(headers lowercased, body) of one post: headers up to the first blank line, continuation lines joined."""
    head, sep, body = raw.replace("\r\n", "\n").partition("\n\n")
    if not sep:
        return {}, raw.strip()
    headers: dict[str, str] = {}
    last = None
    for line in head.split("\n"):
        if line[:1] in (" ", "\t") and last:
            headers[last] += " " + line.strip()
        elif ":" in line:
            k, v = line.split(":", 1)
            last = k.strip().lower()
            headers[last] = v.strip()
    if not headers:
        return {}, raw.strip()
    return headers, body.strip()


def _post_document(
    ctx: ReadContext, locator: str, raw: str, fallback_group: str, known: tuple[str, ...] = ()
) -> Document | None:
    """`known`: the collection's newsgroups; a cross-posted post is grouped under the first of them it lists."""
    headers, body = parse_post(raw)
    if not body:
        ctx.skip("empty_text")
        return None
    listed = [g.strip() for g in headers.get("newsgroups", "").split(",") if g.strip()]
    group = next((g for g in listed if g in known), listed[0] if listed else fallback_group)
    meta = {f"usenet_{k.replace('-', '_')}": headers[k] for k in KEEP_HEADERS if headers.get(k)}
    return ctx.document(locator, body, None, title=headers.get("subject"), group=group, **meta)


def read_usenet_pickle(path: str, ctx: ReadContext) -> Iterator[Document]:
    """The posts of gensim's mini_newsgroup (a zlib-compressed pickled Bunch with `data` and `target_names`). Any
    other file fails naming it, unopened: a pickle runs code."""
    if not check_size(path, ctx, MAX_PICKLE_BYTES):
        return
    with fileio.open_read(path) as raw:
        blob = raw.read(MAX_PICKLE_BYTES + 1)
    digest = hashlib.sha256(blob).hexdigest()
    if digest not in KNOWN_PICKLES:
        known = ", ".join(KNOWN_PICKLES.values())
        raise GlamkitError(f"{path}: byte 0: refusing to unpickle a file that is not {known} (sha256 {digest[:16]}"
                           f"...): a pickle runs code; give posts as JSONL (reader records) or files (usenet_files)")
    bunch = load_bunch(blob, path)
    name = ctx.relative(path)
    names = bunch.get("target_names")
    known = tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()
    for i, post in enumerate(bunch["data"]):
        if not isinstance(post, str):
            ctx.error("bad_post", f"{path} post {i}", type(post).__name__)
            continue
        doc = _post_document(ctx, f"{name}:{i}", post, ctx.source, known)
        if doc is not None:
            yield doc


def load_bunch(blob: bytes, path: str) -> dict[str, Any]:
    """A (zlib-compressed) pickled Bunch of posts, through the allow-listed Unpickler; anything else fails naming
    `path`. Only ever called on a file in KNOWN_PICKLES."""
    try:
        blob = zlib.decompressobj().decompress(blob, MAX_PICKLE_BYTES * 16)
    except zlib.error:
        pass  # an uncompressed pickle
    try:
        bunch = BunchUnpickler(io.BytesIO(blob), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
            OverflowError, RecursionError, MemoryError, struct.error) as exc:  # struct.error: an opcode's argument cut
        raise GlamkitError(f"{path}: byte 0: not a pickled Bunch of posts: {type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(bunch, dict) or not isinstance(bunch.get("data"), list):
        raise GlamkitError(f"{path}: byte 0: the pickle holds no list of posts under 'data'")
    return bunch


def read_usenet_files(path: str, ctx: ReadContext) -> Iterator[Document]:
    """One raw post per file (headers, blank line, body), as in the 20 Newsgroups tarball."""
    data = read_whole(path, ctx, int(ctx.opt("max_doc_bytes", 64 * MiB)))
    if data is None:
        return
    rel = ctx.relative(path)
    folder = rel.rsplit("/", 2)[-2] if rel.count("/") else ctx.source
    doc = _post_document(ctx, rel, ctx.decode(data, path, ctx.opt("encoding", "utf-8")), folder, (folder,))
    if doc is not None:
        yield doc
