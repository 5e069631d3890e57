"""Reads hostile files in a fresh process and reports, per file, the seconds and the peak memory the read took above
the process's baseline (imports done), with what was counted. Used by tests/sources/test_security.py; to see the
figures (the README quotes them):

    .venv/bin/python -m tests.sources.security_probe

Each argument (when given) is `reader=path`; without arguments the standard cases are built in a temporary folder.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path


def current_mb() -> float:
    """The process's resident memory now (MB)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / (1 << 20)


def probe(reader: str, path: str) -> dict:
    """One read in this process: documents, errors, seconds, and the peak of its resident memory (sampled every
    millisecond) above what it held before the read, in MB."""
    from sources.readers import READERS, ReadContext

    base, peak, done = current_mb(), [0.0], threading.Event()

    def sample() -> None:
        while not done.wait(0.001):
            peak[0] = max(peak[0], current_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    ctx = ReadContext("probe", "web")
    start = time.perf_counter()
    docs = sum(1 for _ in READERS[reader](path, ctx))
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"reader": reader, "file": Path(path).name, "documents": docs, "errors": dict(ctx.errors),
            "seconds": round(seconds, 3), "peak_mb_above_baseline": round(max(peak[0], current_mb()) - base, 1)}


def standard_cases(folder: Path) -> list[tuple[str, str]]:
    """The security cases, written under `folder`: (reader, path)."""
    from tests.sources.fuzz_inputs import TARGETS
    from tests.sources.hostile import KINDS, bz2_bomb, gzip_bomb, zip_bomb

    by = {t.name: t for t in TARGETS}
    cases = []
    for name, target, kind in (("billion-laughs.xml", "mediawiki-xml", "billion laughs"),
                               ("billion-laughs.xml.bz2", "mediawiki-bz2", "billion laughs"),
                               ("external-entity.xml", "mediawiki-xml", "external entity"),
                               ("billion-laughs-feed/utf-8/feed.xml", "feed-utf8", "billion laughs")):
        files = KINDS[kind](by[target])
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(next(iter(files.values())))
        cases.append((by[target].reader, str(path)))
    for name, reader, data in (("bomb.txt.gz", "text_lines", gzip_bomb()), ("bomb.jsonl.gz", "records", gzip_bomb()),
                               ("bomb.warc.gz", "warc", gzip_bomb()), ("bomb.xml.bz2", "mediawiki", bz2_bomb()),
                               ("bomb.txt.bz2", "text_lines", bz2_bomb()), ("bomb.zip", "news_csv", zip_bomb())):
        (folder / name).write_bytes(data)
        cases.append((reader, str(folder / name)))
    return cases


def main(argv: list[str]) -> int:
    import sources.readers  # noqa: F401 - the baseline includes every reader's imports

    if argv:
        cases = [tuple(a.split("=", 1)) for a in argv]
        for reader, path in cases:
            print(json.dumps(probe(reader, path)), flush=True)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        import subprocess

        for reader, path in standard_cases(Path(tmp)):  # each in its own process: its own peak
            subprocess.run([sys.executable, "-m", "tests.sources.security_probe", f"{reader}={path}"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
