"""Compare two eval runs: every summary metric side by side with B−A, and the changed questions."""

from __future__ import annotations

import json
from pathlib import Path

from index.errors import UserError

from .report import fmt
from .runner import RESULTS, SUMMARY, read_results


def load_run(folder: Path) -> tuple[dict, list[dict]]:
    """(summary, result rows) of a finished run folder; UserError when it is not one."""
    summary_path = folder / SUMMARY
    if not folder.is_dir() or not summary_path.is_file() or not (folder / RESULTS).is_file():
        raise UserError(f"{folder} is not an eval run folder (it needs {SUMMARY} and {RESULTS}, "
                        f"written by `qa eval`); give the folder a run printed when it finished.")
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{summary_path} is damaged ({exc.msg}); re-run `qa eval` with that "
                        f"folder as --out to rewrite it.") from exc
    return summary, read_results(folder / RESULTS)


def summary_metrics(summary: dict) -> dict[str, object]:
    """Every metric of a summary under a dotted name, by-type metrics included."""
    flat = {f"{group}.{key}": value for group, values in summary["metrics"].items()
            for key, value in values.items()}
    for kind, values in summary.get("by_type", {}).items():
        flat.update({f"by_type.{kind}.{key}": value for key, value in values.items()})
    return flat


def _difference(a, b, key: str) -> str:
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return "n/a"
    diff = b - a
    if isinstance(a, int) and isinstance(b, int):
        return f"{diff:+d}"
    if key.endswith(("_p50", "_p95")):
        return f"{diff:+,.1f}"
    return f"{diff:+.3f}"


def _question_changes(rows_a: list[dict], rows_b: list[dict]) -> list[str]:
    """Lines for questions whose key-fact hits or abstention differ between the runs."""
    a = {row["id"]: row for row in rows_a}
    b = {row["id"]: row for row in rows_b}
    lines = []
    for qid in [r["id"] for r in rows_a if r["id"] in b]:
        ma, mb = a[qid]["metrics"], b[qid]["metrics"]
        changes = []
        facts_a, facts_b = ma.get("key_facts_found") or [], mb.get("key_facts_found") or []
        if facts_a != facts_b:
            changes.append(f"key facts {sum(facts_a)}/{len(facts_a)} → "
                           f"{sum(facts_b)}/{len(facts_b)}")
        if ma["abstained"] != mb["abstained"]:
            changes.append(f"abstained {fmt(ma['abstained'])} → {fmt(mb['abstained'])}")
        if changes:
            lines.append(f"- {qid}: " + "; ".join(changes))
    return lines


def compare_runs(run_a: Path, run_b: Path) -> str:
    """A markdown comparison of two run folders (A is the baseline)."""
    summary_a, rows_a = load_run(run_a)
    summary_b, rows_b = load_run(run_b)
    lines = []
    for label, folder, summary in (("A", run_a, summary_a), ("B", run_b, summary_b)):
        config = summary["configuration"]
        lines.append(f"- **{label}**: {folder} — {config['backend_used']} / "
                     f"{config['model_used']}, {summary['run']['questions']} questions, "
                     f"finished {summary['run']['finished']}")
    settings_a = summary_a["configuration"]["settings"]
    settings_b = summary_b["configuration"]["settings"]
    differ = [f"{name}: {settings_a.get(name)} → {settings_b.get(name)}"
              for name in sorted(set(settings_a) | set(settings_b))
              if settings_a.get(name) != settings_b.get(name)]
    for key in ("index_manifest_hash", "questions_sha256", "judge"):
        if summary_a["configuration"].get(key) != summary_b["configuration"].get(key):
            differ.append(f"{key}: {summary_a['configuration'].get(key)} → "
                          f"{summary_b['configuration'].get(key)}")
    lines.append("- **configuration differences**: " + ("; ".join(differ) if differ else "none"))

    metrics_a, metrics_b = summary_metrics(summary_a), summary_metrics(summary_b)
    names = list(metrics_a) + [name for name in metrics_b if name not in metrics_a]
    lines += ["", "| metric | A | B | B−A |", "|---|---|---|---|"]
    for name in names:
        key = name.rsplit(".", 1)[-1]
        a, b = metrics_a.get(name), metrics_b.get(name)
        lines.append(f"| {name} | {fmt(a, key)} | {fmt(b, key)} | {_difference(a, b, key)} |")

    changes = _question_changes(rows_a, rows_b)
    lines += ["", f"Questions whose key-fact hits or abstention changed: {len(changes)}"]
    lines += changes
    ids_a, ids_b = [r["id"] for r in rows_a], [r["id"] for r in rows_b]
    for label, ids, other in (("A", ids_a, set(ids_b)), ("B", ids_b, set(ids_a))):
        alone = [qid for qid in ids if qid not in other]
        if alone:
            lines.append(f"Only in {label}: {', '.join(alone)}")
    return "\n".join(lines) + "\n"
