"""Main-text extraction quality and speed on the Python documentation (real pages, heavy navigation boilerplate).

Gold: the text of each page's `role="main"` element (the documentation body, marked by Sphinx). Extractors run on
the whole page, in two conditions: `fair`, with the role="main" attribute removed (so no extractor can simply
select the gold element: trafilatura's XPaths look for it), and `intact`, the page as published. Scores are
token-level (lower-cased \\w+ tokens, as multisets) precision, recall and F1 per page, averaged over pages; speed is
pages per second on one core over pages already in memory. Ratios are against `baseline` (all visible text),
measured in the same run. Pick by fair F1 first.

    python bench/extract.py                 # fetches python3.11-doc into the cache if needed
    python bench/extract.py --limit 100     # a quicker look
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from filters.extract import EXTRACTORS

_TOKEN = re.compile(r"\w+")
_ROLE_MAIN = re.compile(r"""\s+role\s*=\s*["']?main["']?""", re.I)


def tokens(text: str) -> Counter[str]:
    return Counter(_TOKEN.findall(text.lower()))


def prf(pred: Counter[str], gold: Counter[str]) -> tuple[float, float, float]:
    overlap = sum((pred & gold).values())
    p = overlap / sum(pred.values()) if pred else 0.0
    r = overlap / sum(gold.values()) if gold else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def gold_text(html: str) -> str | None:
    """The text of the role="main" element (scripts and styles removed), or None if the page has none."""
    import lxml.html

    tree = lxml.html.fromstring(html)
    found = tree.xpath('//*[@role="main"]')
    if not found:
        return None
    for bad in found[0].xpath(".//script|.//style"):
        bad.drop_tree()
    return found[0].text_content()


def load_pages(root: Path, limit: int | None) -> list[tuple[str, str, str]]:
    """(name, html, gold) for every page with a role="main" element, in name order."""
    pages = []
    for path in sorted(root.rglob("*.html")):
        html = path.read_text(encoding="utf-8", errors="replace")
        gold = gold_text(html)
        if gold and _TOKEN.search(gold):
            pages.append((path.relative_to(root).as_posix(), html, gold))
        if limit and len(pages) >= limit:
            break
    return pages


def docs_root() -> Path:
    from data_specs.specs import load
    from sources.fetch import fetch_package

    spec = load("sources", "python-docs")
    return fetch_package(spec.package).root / "usr/share/doc/python3.11/html"


def run(pages: list[tuple[str, str, str]], names: list[str]) -> list[dict]:
    rows = []
    golds = [tokens(g) for _, _, g in pages]
    for condition in ("fair", "intact"):
        htmls = [_ROLE_MAIN.sub("", h) if condition == "fair" else h for _, h, _ in pages]
        for name in names:
            fn = EXTRACTORS[name]
            scores = []
            start = time.perf_counter()
            outs = [fn(h, None) for h in htmls]
            seconds = time.perf_counter() - start
            for out, gold in zip(outs, golds, strict=True):
                scores.append(prf(tokens(out or ""), gold))
            n = len(scores)
            rows.append({
                "condition": condition, "extractor": name,
                "precision": sum(s[0] for s in scores) / n, "recall": sum(s[1] for s in scores) / n,
                "f1": sum(s[2] for s in scores) / n, "pages_per_s": n / seconds,
            })
    return rows


def table(rows: list[dict], pages: int) -> str:
    base = {r["condition"]: r for r in rows if r["extractor"] == "baseline"}
    lines = [
        f"Main-text extraction on {pages} Python documentation pages (gold: the role=\"main\" element)",
        "",
        "| condition | extractor | precision | recall | F1 | F1 / baseline | pages/s | speed / baseline |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        b = base[r["condition"]]
        lines.append(
            f"| {r['condition']} | {r['extractor']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
            f"{r['f1'] / b['f1']:.2f}x | {r['pages_per_s']:.1f} | {r['pages_per_s'] / b['pages_per_s']:.2f}x |"
        )
    fair = [r for r in rows if r["condition"] == "fair" and r["extractor"] != "baseline"]
    best = max(fair, key=lambda r: (round(r["f1"], 3), r["pages_per_s"]))
    lines += ["", f"best by fair F1: {best['extractor']} (F1 {best['f1']:.3f})"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=Path, help="folder of Sphinx HTML pages (default: the cached python3.11-doc)")
    parser.add_argument("--limit", type=int, help="use only the first N pages (by name)")
    parser.add_argument("--extractors", nargs="*", default=list(EXTRACTORS), help="default: all")
    args = parser.parse_args()
    names = list(dict.fromkeys([*args.extractors, "baseline"]))
    pages = load_pages(args.pages or docs_root(), args.limit)
    print(table(run(pages, names), len(pages)))


if __name__ == "__main__":
    main()
