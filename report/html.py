"""report.json -> one self-contained report.html: tables, plots as embedded PNG (data: URIs), no scripts, no network.

Every plot draws its data in colour and its frame in grey, so a plot without data is visibly (and, for
scripts/check_report.py, measurably) empty. A section without data says so in words instead of drawing an empty plot.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from data_specs.records import COMPONENTS
from report.png import png_base64, pyplot

# One colour per component (data_specs.records.COMPONENTS order).
COLOURS = dict(zip(COMPONENTS, ("#1f77b4", "#2ca02c", "#d62728", "#17becf", "#9467bd", "#ff7f0e"), strict=True))
KEPT, DROPPED, CURVE = "#2ca02c", "#d62728", "#1f3fbf"

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1150px;color:#222;
background:#fff}
h1{font-size:26px}h2{font-size:20px;margin-top:34px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:10px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:right}th{background:#f4f4f4}
td.l,th.l{text-align:left}
figure.plot{display:inline-block;margin:8px 12px 8px 0;vertical-align:top}
figure.plot img{width:540px;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555;max-width:540px}
.note{color:#555;font-size:13px}.warn{color:#a33}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
pre{white-space:pre-wrap;background:#fafafa;border:1px solid #eee;padding:6px;font-size:12px;max-height:220px;
overflow:auto}
"""


def _png(draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 3.6)) -> str:
    """Render a figure with `draw(ax)` into a base64 PNG (report.png: same data, same bytes)."""
    plt = pyplot()
    with plt.rc_context({"font.size": 9, "axes.edgecolor": "#888", "axes.labelcolor": "#333",
                         "xtick.color": "#555", "ytick.color": "#555", "svg.hashsalt": "glamkit"}):
        fig, ax = plt.subplots(figsize=size, dpi=90)
        try:
            draw(ax)
            fig.tight_layout()
        except BaseException:
            plt.close(fig)
            raise
        return png_base64(fig)


def _figure(name: str, caption: str, draw: Callable[[Any], None], size: tuple[float, float] = (6.0, 3.6)) -> str:
    data = _png(draw, size)
    return (f'<figure class="plot" data-plot="{name}"><img alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>')


def _bars(ax: Any, names: Sequence[str], series: Mapping[str, Sequence[float]], colours: Sequence[str] | None = None,
          log: bool = False) -> None:
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    for i, (label, values) in enumerate(series.items()):
        kw = {"color": colours[i]} if colours else {}
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=label, **kw)
    ax.set_xticks(x, names, rotation=20)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=8)


# ------------------------------------------------------------------------------------------------ plots
def _plot_weights(r: Mapping[str, Any]) -> str:
    comps = r["components"]
    names = list(comps)

    def draw(ax: Any) -> None:
        _bars(ax, names, {"target": [comps[c]["target_weight"] for c in names],
                          "realised": [comps[c]["realised_weight"] for c in names]}, ["#9ecae1", "#08519c"])
        ax.set_ylabel("share of training tokens")
        ax.set_title("Target vs realised weight")

    return _figure("weights", "Target weight (the spec's sampling rate) vs realised share of training tokens.", draw)


def _plot_epochs(r: Mapping[str, Any]) -> str:
    comps = r["components"]
    names = list(comps)

    def draw(ax: Any) -> None:
        values = [max(comps[c]["epochs"], 1e-4) for c in names]
        ax.bar(names, values, color=[COLOURS.get(c, "#555") for c in names])
        ax.axhline(1.0, color="#444", lw=1, ls="--")
        ax.set_yscale("log")
        ax.set_ylabel("epochs (log)")
        ax.set_title("Epochs: >1 repeated, <1 subsampled")
        ax.tick_params(axis="x", rotation=20)
        for i, v in enumerate(values):
            ax.annotate(f"{v:.3g}", (i, v), ha="center", va="bottom", fontsize=8)

    return _figure("epochs", "Times each token of a component is seen in training (tokens sampled / available).", draw)


def _plot_funnel(r: Mapping[str, Any]) -> str:
    comps = r["components"]
    names = list(comps)

    def draw(ax: Any) -> None:
        _bars(ax, names, {"read": [max(comps[c]["documents_read"], 0.5) for c in names],
                          "kept by curation": [max(comps[c]["documents_kept"], 0.5) for c in names],
                          "sampled (train)": [max(comps[c]["documents_sampled"], 0.5) for c in names]},
              ["#bdbdbd", "#74c476", "#fd8d3c"], log=True)
        ax.set_ylabel("documents (log)")
        ax.set_title("Documents: read, kept by curation, sampled")

    return _figure("documents", "Documents per component at each step.", draw)


def _plot_tokens(r: Mapping[str, Any]) -> str:
    comps = r["components"]
    names = list(comps)

    def draw(ax: Any) -> None:
        _bars(ax, names, {"available (train split)": [max(comps[c]["tokens_available"], 0.5) for c in names],
                          "sampled into shards": [max(comps[c]["tokens_sampled"], 0.5) for c in names]},
              ["#9e9ac8", "#54278f"], log=True)
        ax.set_ylabel("tokens (log)")
        ax.set_title("Tokens: available vs sampled")

    return _figure("tokens", "Tokens available after curation vs tokens sampled into the training shards.", draw)


def _plot_lengths(r: Mapping[str, Any]) -> str:
    comps = r["components"]
    edges = r["length_bins"] + [r["length_bins"][-1] * 2] if r["length_bins"] else [1, 2]

    def draw(ax: Any) -> None:
        for c, v in comps.items():
            hist = v["length_histogram"]
            if sum(hist):
                share = [n / sum(hist) for n in hist]
                ax.stairs(share, edges, label=f"{c} ({sum(hist):,} docs)", color=COLOURS.get(c, "#555"), lw=1.8)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("document length (tokens, log2 bins)")
        ax.set_ylabel("share of the component's documents")
        ax.set_title("Document lengths (curated, both splits)")
        ax.legend(fontsize=8)

    return _figure("lengths", "Distribution of curated document lengths in tokens, per component.", draw)


def _plot_quality(r: Mapping[str, Any], component: str) -> str:
    q = r["components"][component]["quality"]
    bins = r["score_bins"]
    centres = [(i + 0.5) / bins for i in range(bins)]
    curve = r.get("keep_curve")

    def draw(ax: Any) -> None:
        width = 1.0 / bins
        ax.bar([c - width / 4 for c in centres], q["dropped"], width / 2, color=DROPPED, label="dropped")
        ax.bar([c + width / 4 for c in centres], q["kept"], width / 2, color=KEPT, label="kept")
        ax.set_yscale("symlog", linthresh=1)
        ax.set_xlabel("quality score")
        ax.set_ylabel("documents (symlog)")
        ax.set_xlim(0, 1)
        ax2 = ax.twinx()
        rule = r.get("keep_rule") or {}
        if rule.get("kind") == "pareto" and isinstance(rule.get("alpha"), (int, float)):  # not an unfitted "auto"
            xs = [i / 200 for i in range(201)]
            ax2.plot(xs, [(2 - x) ** -rule["alpha"] for x in xs], color=CURVE, lw=1.8,
                     label=f"keep rule (2 - s)^-{rule['alpha']:.3g}")
        elif curve:
            ax2.plot(centres, curve, color=CURVE, lw=1.8, label="keep rule P(keep | score)")
        rates = [(s, k) for s, k in zip(centres, q["keep_rate"], strict=True) if k is not None]
        if rates:
            ax2.plot([s for s, _ in rates], [k for _, k in rates], "o", color="#ff7f0e", ms=4,
                     label="observed keep rate")
        ax2.set_ylim(0, 1.05)
        ax2.set_ylabel("P(keep)")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)  # below the axes: never over the bars
        ax.set_title(f"Quality scores of {component} pages: kept vs dropped")

    return _figure(f"quality-{component}", f"Quality-score histogram of scored {component} documents, kept "
                   "(green) and dropped (red), with the keep rule's curve and the observed keep rate per bin.", draw,
                   (6.0, 4.4))


def _plot_drops(r: Mapping[str, Any]) -> str | None:
    comps = r["components"]
    reasons = sorted({k for v in comps.values() for k in v["drop_reasons"]})
    if not reasons:
        return None

    def draw(ax: Any) -> None:
        left = [0] * len(reasons)
        for c, v in comps.items():
            values = [v["drop_reasons"].get(k, 0) for k in reasons]
            if sum(values):
                ax.barh(reasons, values, left=left, color=COLOURS.get(c, "#555"), label=c)
                left = [a + b for a, b in zip(left, values, strict=True)]
        ax.set_xlabel("documents dropped")
        ax.set_title("Drop reasons (first rule a document fails)")
        ax.legend(fontsize=8)
        ax.invert_yaxis()

    return _figure("drop-reasons", "Documents dropped by curation, per reason and component.", draw,
                   (6.0, 0.8 + 0.28 * len(reasons)))


def _plot_dedup(dedup: Mapping[str, Any]) -> str | None:
    sizes = dedup.get("cluster_sizes") if isinstance(dedup, Mapping) else None
    if not isinstance(sizes, Mapping) or not sizes:
        return None
    items = sorted(((int(k), int(v)) for k, v in sizes.items()), key=lambda kv: kv[0])

    def draw(ax: Any) -> None:
        ax.bar([str(k) for k, _ in items], [v for _, v in items], color="#8c6bb1")
        ax.set_yscale("log")
        ax.set_xlabel("cluster size (documents)")
        ax.set_ylabel("clusters (log)")
        ax.set_title("Dedup cluster sizes")

    return _figure("dedup", "Near-duplicate clusters by size.", draw)


# ------------------------------------------------------------------------------------------------ tables
def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(n: float) -> str:
    return f"{n:,.0f}"


def _main_table(r: Mapping[str, Any]) -> str:
    head = ("component", "docs read", "docs kept", "tokens available", "target share", "realised share", "epochs",
            "docs sampled", "tokens sampled", "validation docs / tokens")
    rows = []
    for c, v in r["components"].items():
        rows.append(
            f'<tr><td class="l">{_e(c)}</td><td>{_num(v["documents_read"])}</td><td>{_num(v["documents_kept"])}</td>'
            f'<td>{_num(v["tokens_available"])}</td><td>{v["target_weight"]:.3f}</td>'
            f'<td>{v["realised_weight"]:.3f}</td><td>{v["epochs"]:.3g}</td><td>{_num(v["documents_sampled"])}</td>'
            f'<td>{_num(v["tokens_sampled"])}</td>'
            f'<td>{_num(v["validation"]["documents"])} / {_num(v["validation"]["tokens"])}</td></tr>')
    t = r["totals"]
    rows.append(f'<tr><th class="l">total</th><th>{_num(t["documents_read"])}</th><th>{_num(t["documents_kept"])}</th>'
                f'<th>{_num(t["tokens_available"])}</th><th>1.000</th><th>1.000</th><th></th>'
                f'<th>{_num(t["documents_sampled"])}</th><th>{_num(t["tokens_sampled"])}</th><th></th></tr>')
    header = "".join(f'<th class="{"l" if i == 0 else ""}">{h}</th>' for i, h in enumerate(head))
    return f'<table id="mixture-table"><tr>{header}</tr>{"".join(rows)}</table>'


def _drop_table(r: Mapping[str, Any]) -> str:
    """Drop reasons in stage order, each with its threshold, counts per component; the dead letter apart."""
    t = r.get("drop_table")
    if not t or (not t["rows"] and not any(t["errored"].values())):
        return '<p class="note">Curation dropped no documents.</p>'
    comps = t["components"]
    head = "".join(f"<th>{_e(c)}</th>" for c in comps)
    rows = [f'<tr><th class="l">stage</th><th class="l">reason (the knob)</th><th class="l">threshold</th>{head}'
            f"<th>total</th></tr>"]
    for row in t["rows"]:
        cells = "".join(f"<td>{_num(row['counts'][c]) if row['counts'][c] else ''}</td>" for c in comps)
        rows.append(f'<tr><td class="l">{_e(row["stage"])}</td><td class="l"><code>{_e(row["reason"])}</code></td>'
                    f'<td class="l">{_e(row["threshold"])}</td>{cells}<td>{_num(row["total"])}</td></tr>')
    sums = "".join(f"<th>{_num(t['dropped'][c])}</th>" for c in comps)
    rows.append(f'<tr><th class="l" colspan="3">dropped</th>{sums}<th>{_num(sum(t["dropped"].values()))}</th></tr>')
    errs = "".join(f"<td>{_num(t['errored'][c]) if t['errored'][c] else ''}</td>" for c in comps)
    rows.append(f'<tr><td class="l">decode / schema</td><td class="l">errored (dead letter, not dropped)</td>'
                f'<td class="l">a record that cannot be processed</td>{errs}<td>{_num(sum(t["errored"].values()))}'
                f"</td></tr>")
    return f'<table id="drop-table">{"".join(rows)}</table>'


def _settings(r: Mapping[str, Any]) -> str:
    parts = [f'<p id="keep-sentence">{_e(r.get("keep_sentence", ""))}</p>']
    clf = r.get("classifier")
    if clf:
        parts.append(f'<p id="classifier-settings"><b>Classifier</b> {_e(clf["spec"])} ({_e(clf["backend"])}: '
                     f'{_e(clf["features"])}): {_e(clf["aucs"])}.</p>')
    parts.append(f'<p id="dedup-settings"><b>Dedup</b> {_e(r.get("dedup_settings", ""))}.</p>')
    return "".join(parts)


def _keep_rates(r: Mapping[str, Any]) -> str:
    """Per component: the keep rate under the rule curation applied (realised where it applied it, expected from
    the classifier's score quantiles elsewhere), the rule named."""
    applied = r.get("keep_rule_applied")
    clf = r.get("classifier") or {}
    if not applied:
        return ""
    rows = []
    for c, v in r["components"].items():
        q = v.get("quality")
        scored = sum(q["scored"]) if q else 0
        realised = f"{sum(q['kept']) / scored:.1%} ({_num(sum(q['kept']))} of {_num(scored)})" if scored else ""
        exp = clf.get("expected_keep_rate", {}).get(c)
        rows.append(f'<tr><td class="l">{_e(c)}</td><td>{realised}</td>'
                    f'<td>{"" if exp is None else f"{exp:.1%}"}</td></tr>')
    return (f'<table id="keep-rates"><tr><th class="l">component</th><th>kept by curation (of pages scored)</th>'
            f"<th>expected, every document scored</th></tr>{''.join(rows)}</table>"
            f'<p class="note">Keep rates under {_e(applied["applied"])}, the rule curation applied '
            f"({_e(applied['rule'])} in the mixture).</p>")


def _source_table(r: Mapping[str, Any]) -> str:
    rows = [f'<tr><td class="l">{_e(n)}</td><td class="l">{_e(v["component"])}</td><td>{_num(v["read"])}</td>'
            f'<td>{_num(v["kept"])}</td><td>{_num(v["tokens_kept"])}</td></tr>'
            for n, v in r.get("sources", {}).items()]
    return ('<table id="source-table"><tr><th class="l">source</th><th class="l">component</th><th>docs read</th>'
            f"<th>docs kept</th><th>tokens kept</th></tr>{''.join(rows)}</table>")


def _samples(r: Mapping[str, Any]) -> str:
    out = []
    for c, v in r["components"].items():
        parts = []
        for kind in ("kept", "dropped"):
            docs = v["samples"][kind]
            if not docs:
                parts.append(f'<p class="note">No {kind} documents sampled.</p>')
                continue
            for d in docs:
                why = f", dropped: {_e(d['drop_reason'])}" if d.get("drop_reason") else ""
                score = f", score {d['quality_score']:.3f}" if d.get("quality_score") is not None else ""
                more = " [...]" if d.get("truncated") else ""
                parts.append(f"<p><b>{kind}</b> <code>{_e(d['id'])}</code> ({_e(d.get('source'))}{score}{why})</p>"
                             f"<pre>{_e(d['excerpt'])}{more}</pre>")
        out.append(f"<details><summary>{_e(c)}</summary>{''.join(parts)}</details>")
    return "".join(out)


def render(r: Mapping[str, Any]) -> str:
    """The whole page. Plots are PNG data URIs; the page loads nothing."""
    comps = r["components"]
    tok = r["tokenizer"]
    repeated = [c for c, v in comps.items() if v["epochs"] > 1]
    sub = [c for c, v in comps.items() if 0 < v["epochs"] < 1]
    quality_plots = [_plot_quality(r, c) for c, v in comps.items() if v.get("quality")]
    drops = _plot_drops(r)
    dedup = r.get("dedup")
    if dedup is None:
        dedup_html = '<p class="note" id="dedup-status">dedup not run: curate\'s stats.json holds no dedup section.</p>'
    else:
        plot = _plot_dedup(dedup)
        dedup_html = plot or f"<pre>{_e(dedup)}</pre>"
    train, val = r["shards"]["train"], r["shards"]["validation"]
    tokenizer = (f'{_e(tok.get("kind"))} {_e(tok.get("model_type") or tok.get("pretrained") or "")}, vocabulary '
                 f'{_num(tok.get("vocab_size") or 0)}, eos {tok.get("eos_id")}, pad {tok.get("pad_id")}')
    sections = [
        f"<h1>Mixture report: {_e(r['mixture'])}</h1>",
        f'<p class="note">Budget {_num(r["budget_tokens"] or 0)} training tokens, sequences of {r["seq_len"]} tokens, '
        f"seed {r['seed']}. Tokenizer: {tokenizer}. Training shards: {train['files']} files, {_num(train['rows'])} "
        f"sequences, {_num(train['tokens'])} tokens ({_num(train['padding'])} padding); validation: {val['files']} "
        f"files, {_num(val['tokens'])} tokens. Weights are sampling rates: repeated (epochs &gt; 1): "
        f"{_e(', '.join(repeated) or 'none')}; subsampled (epochs &lt; 1): {_e(', '.join(sub) or 'none')}.</p>",
        "".join(f'<p class="warn">warning: {_e(w)}</p>' for w in [*r.get("warnings", []),
                                                                  *r.get("repeat_warnings", [])]),
        "<h2>Per component</h2>",
        _main_table(r),
        _plot_weights(r),
        _plot_epochs(r),
        _plot_funnel(r),
        _plot_tokens(r),
        "<h2>Document lengths</h2>",
        _plot_lengths(r),
        "<h2>Quality filter</h2>",
        "".join(quality_plots) or '<p class="note">No component is quality-filtered in this mixture.</p>',
        _keep_rates(r),
        "<h2>What was dropped and why</h2>",
        _drop_table(r),
        _settings(r),
        drops or "",
        "<h2>Per source</h2>",
        _source_table(r),
        "<h2>Dedup cluster sizes</h2>",
        dedup_html,
        "<h2>Samples of kept and dropped documents</h2>",
        _samples(r),
    ]
    body = "\n".join(sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>glamkit mixture report: '
            f"{_e(r['mixture'])}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
