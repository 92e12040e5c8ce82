"""The run report: report.md and report.html with the same tables, and PNG plots (matplotlib)."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .metrics import LATENCY_KEYS, percentile

RECALL_PNG = "recall_at_k.png"
BY_TYPE_PNG = "by_type.png"
LATENCY_PNG = "latency.png"
GROUP_TITLES = {"retrieval": "Retrieval", "answers": "Answers", "abstention": "Abstention",
                "latency_ms": "Latency (ms)"}
COUNT_KEYS = {"questions", "statements", "draft_markers", "model_answers", "repaired_answers",
              "extractive_answers", "backend_errors", "abstained", "unanswerable", "answerable",
              "invalid_markers_shown"}


def fmt(value, key: str = "") -> str:
    """A metric value for a table: n/a, a count, milliseconds or a 3-decimal share."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or key in COUNT_KEYS:
        return str(int(value))
    if key.endswith(("_p50", "_p95", "_ms")):
        return f"{value:,.1f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


@dataclass
class Section:
    """One block of the report: a heading, a sentence, a table and maybe a plot."""

    title: str
    headers: Sequence[str]
    rows: list[list[str]]
    intro: str = ""
    image: str | None = None
    notes: list[str] = field(default_factory=list)
    # HTML shows the last column as a full-width line under each row (long answers need room).
    last_column_below: bool = False


def _figure(width: float = 6.4, height: float = 3.6):
    from matplotlib.figure import Figure  # Figure + savefig uses Agg without touching pyplot

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_recall(retrieval: dict, path: Path) -> bool:
    """Recall@k curve; False (no file) when no question had gold evidence."""
    ks = [1, 3, 5, 10]
    values = [retrieval.get(f"recall@{k}") for k in ks]
    if any(v is None for v in values):
        return False
    fig = _figure(5.6, 3.6)
    ax = fig.add_subplot()
    ax.plot(ks, values, marker="o", color="#2b6cb0", linewidth=2)
    for k, v in zip(ks, values):
        ax.annotate(f"{v:.2f}", (k, v), textcoords="offset points", xytext=(0, 8), ha="center",
                    fontsize=9)
    ax.set_xticks(ks)
    ax.set_xlim(0.5, 10.5)
    ax.set_ylim(0, 1.08)
    ax.set_xlabel("k (passages retrieved)")
    ax.set_ylabel("recall@k")
    mrr = retrieval.get("mrr")
    ax.set_title(f"Retrieval recall@k over {retrieval.get('questions', 0)} questions"
                 + (f" (MRR {mrr:.2f})" if mrr is not None else ""), fontsize=10)
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return True


def plot_by_type(by_type: dict, path: Path) -> bool:
    """Grouped bars per question type: key-fact coverage, recall@5, abstention rate."""
    if not by_type:
        return False
    series = [("key_fact_coverage", "key-fact coverage", "#2b6cb0"),
              ("recall@5", "recall@5", "#38a169"),
              ("abstention_rate", "abstention rate", "#dd6b20")]
    kinds = list(by_type)
    fig = _figure(max(6.4, 1.25 * len(kinds) + 1.5), 3.8)
    ax = fig.add_subplot()
    width = 0.8 / len(series)
    labelled: set[str] = set()
    for i, (key, label, color) in enumerate(series):
        for j, kind in enumerate(kinds):
            x = j - 0.4 + width * (i + 0.5)
            value = by_type[kind].get(key)
            if value is None:
                ax.text(x, 0.01, "n/a", ha="center", va="bottom", fontsize=7, rotation=90,
                        color="#718096")
                continue
            ax.bar(x, value, width, color=color, label=None if label in labelled else label)
            labelled.add(label)
            ax.text(x, value + 0.015, f"{value:.2f}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(kinds)))
    ax.set_xticklabels([f"{k}\n(n={by_type[k]['questions']})" for k in kinds], fontsize=8)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("share")
    ax.set_title("By question type", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", ncols=3,
              frameon=False, bbox_to_anchor=(0.5, -0.18))
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(path)
    return True


def plot_latency(rows: Sequence[dict], path: Path) -> bool:
    """Distribution of each timing (box 25–75 %, whiskers 5–95 %), p50/p95 written beside it."""
    stages = []
    for key in LATENCY_KEYS:
        values = [r["metrics"][key] for r in rows if r["metrics"].get(key) is not None]
        if values:
            stages.append((key.removesuffix("_ms").replace("_", " "), values))
    if not stages:
        return False
    fig = _figure(6.4, 1.0 + 0.8 * len(stages))
    ax = fig.add_subplot()
    labels = [name for name, _ in stages][::-1]
    data = [values for _, values in stages][::-1]
    ax.boxplot(data, orientation="horizontal", whis=(5, 95), widths=0.5,
               tick_labels=labels, flierprops={"markersize": 3})
    everything = [v for values in data for v in values]
    low, high = max(min(everything), 0.1), max(everything)
    if high / low > 30:  # retrieval takes milliseconds, a model answer seconds
        from matplotlib.ticker import FuncFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
    for i, values in enumerate(data, start=1):
        ax.annotate(f"p50 {_ms(percentile(values, 50))} · p95 {_ms(percentile(values, 95))} ms",
                    (1.0, i), xycoords=("axes fraction", "data"), xytext=(6, 0),
                    textcoords="offset points", va="center", fontsize=8)
    ax.set_xlabel("milliseconds (box: 25–75 %, whiskers: 5–95 %)")
    ax.set_title("Latency per question", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path)
    return True


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _sections(summary: dict, rows: Sequence[dict], images: dict[str, bool]) -> list[Section]:
    metrics = summary["metrics"]
    sections = []
    for group, values in metrics.items():
        section = Section(GROUP_TITLES.get(group, group), ("metric", "value"),
                          [[key, fmt(value, key)] for key, value in values.items()])
        if group == "retrieval":
            section.intro = ("Top 10 passages per answerable question with gold quotes; a passage "
                             "is relevant when it overlaps a gold quote.")
            section.image = RECALL_PNG if images.get(RECALL_PNG) else None
        if group == "answers":
            shown = values.get("invalid_markers_shown", 0)
            section.notes.append("Invalid citation markers shown to the user: "
                                 + ("0, as required." if not shown else
                                    f"{shown} — a bug: they must be removed before display."))
            if values.get("backend_errors"):
                section.notes.append(f"{values['backend_errors']} answers hit a backend error "
                                     "and were answered from the evidence.")
        if group == "latency_ms":
            section.image = LATENCY_PNG if images.get(LATENCY_PNG) else None
        sections.append(section)
    by_type = summary.get("by_type", {})
    sections.append(Section(
        "By question type", ("type", "questions", "key-fact coverage", "recall@5",
                             "abstention rate"),
        [[kind, fmt(v["questions"], "questions"), fmt(v["key_fact_coverage"]), fmt(v["recall@5"]),
          fmt(v["abstention_rate"])] for kind, v in by_type.items()],
        image=BY_TYPE_PNG if images.get(BY_TYPE_PNG) else None))
    sections.append(Section(
        "Per question", ("id", "question", "type", "answerable", "mode", "key facts", "recall@5",
                         "cit. recall", "cit. precision", "total ms", "answer"),
        [_question_row(row) for row in rows],
        intro=("Key facts: found/all and the missing ones; cit. = citation; the answer is cut at "
               "160 characters (results.jsonl has it whole)."), last_column_below=True))
    return sections


def _question_row(row: dict) -> list[str]:
    m = row["metrics"]
    found = m.get("key_facts_found") or []
    missing = [fact for fact, hit in zip(row.get("key_facts", []), found) if not hit]
    facts = f"{sum(found)}/{len(found)}" if found else "–"
    if missing:
        facts += " (missing: " + ", ".join(missing) + ")"
    answer = " ".join(row["answer"]["answer"].split())
    answer = answer if len(answer) <= 160 else answer[:159] + "…"
    mode = row["answer"]["mode"] + (" (error)" if m.get("error") else "")
    return [row["id"], row["question"], row["type"], fmt(row["answerable"]), mode, facts,
            fmt(m.get("recall@5")), fmt(m.get("citation_recall")), fmt(m.get("citation_precision")),
            fmt(m.get("total_ms"), "total_ms"), answer]


def _header_lines(summary: dict) -> list[tuple[str, str]]:
    config, run = summary["configuration"], summary["run"]
    settings = config["settings"]
    return [("questions", f"{run['questions']} from {config['questions_file']} "
                          f"(sha256 {config['questions_sha256'][:12]}…)"),
            ("backend / model", f"{config['backend_used']} / {config['model_used']}"),
            ("retrieval", f"{settings['retrieval_mode']}, top_k {settings['top_k']}, "
                          f"embedder {config.get('embedder', settings['embedding_model'])}"),
            ("index manifest", config["index_manifest_hash"]),
            ("temperature / seed", f"{config['temperature']} / {config['seed']}"
                                   + ("" if config["deterministic"] else " (not repeatable)")),
            ("started / finished", f"{run['started']} / {run['finished']}"
                                   + (f" (resumed after {run['resumed_from_earlier_run']} "
                                      f"questions)" if run["resumed_from_earlier_run"] else ""))]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(title: str, summary: dict, sections: Sequence[Section]) -> str:
    lines = [f"# {title}", ""]
    lines += [f"- **{key}**: {_md_cell(value)}" for key, value in _header_lines(summary)]
    if summary["run"].get("gold_quotes_not_found"):
        lines.append(f"- **warning**: {summary['run']['gold_quotes_not_found']} gold quotes are "
                     "not verbatim in the indexed text and were left out of retrieval scores")
    for section in sections:
        lines += ["", f"## {section.title}", ""]
        if section.intro:
            lines += [section.intro, ""]
        lines.append("| " + " | ".join(section.headers) + " |")
        lines.append("|" + "|".join("---" for _ in section.headers) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in section.rows]
        for note in section.notes:
            lines += ["", note]
        if section.image:
            lines += ["", f"![{section.title}]({section.image})"]
    return "\n".join(lines) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:80rem;margin:2rem auto;padding:0 1rem;
color:#1a202c}table{border-collapse:collapse;margin:.5rem 0 1rem}td,th{border:1px solid #cbd5e0;
padding:.25rem .5rem;text-align:left;vertical-align:top;font-size:.85rem}th{background:#edf2f7}
td.num{text-align:right;white-space:nowrap}td.text{min-width:12rem}td.long{min-width:20rem}
tr.above td{border-bottom:none}tr.below td{border-top:none;color:#4a5568;padding-bottom:.6rem}
span.label{font-weight:600}
div.scroll{overflow-x:auto}
img{max-width:100%;display:block;margin:.5rem 0 1.5rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}
dd{margin:0}"""
_NUMBER = re.compile(r"^(?:n/a|[-+]?[\d,]*\.?\d+)$")


def _cell(text: str) -> str:
    """A table cell; numbers align right, long text gets room to breathe."""
    kind = "num" if _NUMBER.match(text) else "long" if len(text) > 120 else (
        "text" if len(text) > 40 else "")
    attribute = f" class='{kind}'" if kind else ""
    return f"<td{attribute}>{html.escape(text)}</td>"


def render_html(title: str, summary: dict, sections: Sequence[Section]) -> str:
    e = html.escape
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{e(title)}"
             f"</title><style>{_CSS}</style></head><body><h1>{e(title)}</h1><dl>"]
    parts += [f"<dt>{e(key)}</dt><dd>{e(value)}</dd>" for key, value in _header_lines(summary)]
    parts.append("</dl>")
    if summary["run"].get("gold_quotes_not_found"):
        parts.append(f"<p><strong>Warning:</strong> {summary['run']['gold_quotes_not_found']} "
                     "gold quotes are not verbatim in the indexed text and were left out of "
                     "retrieval scores.</p>")
    for section in sections:
        parts.append(f"<h2>{e(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p>{e(section.intro)}</p>")
        below = section.last_column_below
        headers = section.headers[:-1] if below else section.headers
        parts.append("<div class='scroll'><table><thead><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in headers) + "</tr></thead><tbody>")
        for row in section.rows:
            parts.append(("<tr class='above'>" if below else "<tr>")
                         + "".join(_cell(c) for c in (row[:-1] if below else row)) + "</tr>")
            if below:
                parts.append(f"<tr class='below'><td colspan='{len(headers)}'>"
                             f"<span class='label'>{e(section.headers[-1])}:</span> {e(row[-1])}"
                             f"</td></tr>")
        parts.append("</tbody></table></div>")
        parts += [f"<p>{e(note)}</p>" for note in section.notes]
        if section.image:
            parts.append(f"<img src='{e(section.image)}' alt='{e(section.title)} plot'>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(run_dir: Path, summary: dict, rows: Sequence[dict]) -> None:
    """report.md, report.html and the PNG plots, all in the run folder."""
    images = {RECALL_PNG: plot_recall(summary["metrics"]["retrieval"], run_dir / RECALL_PNG),
              BY_TYPE_PNG: plot_by_type(summary.get("by_type", {}), run_dir / BY_TYPE_PNG),
              LATENCY_PNG: plot_latency(rows, run_dir / LATENCY_PNG)}
    sections = _sections(summary, rows, images)
    title = f"Evaluation run {run_dir.name}"
    (run_dir / "report.md").write_text(render_markdown(title, summary, sections), encoding="utf-8")
    (run_dir / "report.html").write_text(render_html(title, summary, sections), encoding="utf-8")
