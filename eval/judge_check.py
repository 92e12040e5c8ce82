"""`qa check`: run a support judge over claim/evidence pairs, and score it on labelled pairs."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from index.errors import UserError
from qa.judge.base import SUPPORTED, Claim, SupportJudge


@dataclass(frozen=True)
class Pair:
    """One input line: the claim, its evidence, and every other field kept as it came."""

    id: str
    claim: Claim
    fields: dict

    @property
    def label(self) -> str | None:
        return self.fields.get("label")


def load_pairs(path: Path, split: str | None = None) -> list[Pair]:
    """Read `{"id", "claim", "evidence"}` lines; a bad line is reported with its number."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"Cannot read {path}: {exc.strerror}. Give a JSON-lines file.") from exc
    pairs: list[Pair] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            evidence = data["evidence"]
            excerpts = (evidence,) if isinstance(evidence, str) else tuple(evidence)
            if not isinstance(data["claim"], str) or not data["claim"].strip() or not excerpts \
                    or not all(isinstance(e, str) and e.strip() for e in excerpts):
                raise ValueError("claim and evidence must be non-empty text")
            pair = Pair(str(data.get("id", number)), Claim(data["claim"], excerpts), data)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}:{number}: not a claim/evidence pair ({exc}); each line "
                            'needs {"id", "claim", "evidence"}') from exc
        if split is None or data.get("split") == split:
            pairs.append(pair)
    if not pairs:
        raise UserError(f"{path} has no pairs" + (f" in split '{split}'" if split else ""))
    return pairs


def run_judge(judge: SupportJudge, pairs: Sequence[Pair], batch: int = 8) -> Iterator[dict]:
    """One output row per pair: the input fields plus verdict, score, reason and ms per claim."""
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        began = time.perf_counter()
        verdicts = judge.judge([p.claim for p in chunk])
        ms = (time.perf_counter() - began) * 1000 / len(chunk)
        for pair, verdict in zip(chunk, verdicts):
            yield dict(pair.fields, id=pair.id, verdict=verdict.label,
                       score=round(verdict.score, 4), judged_by=verdict.judge,
                       reason=verdict.reason, ms=round(ms, 1))


def score(rows: Sequence[dict]) -> dict:
    """Precision, recall and F1 on "supported", the confusion by kind, and ms per claim."""
    labelled = [r for r in rows if r.get("label")]
    if not labelled:
        raise UserError("--eval needs a 'label' field (supported/unsupported) on each line")
    tp = sum(1 for r in labelled if r["label"] == SUPPORTED and r["verdict"] == SUPPORTED)
    fp = sum(1 for r in labelled if r["label"] != SUPPORTED and r["verdict"] == SUPPORTED)
    fn = sum(1 for r in labelled if r["label"] == SUPPORTED and r["verdict"] != SUPPORTED)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = (2 * precision * recall / (precision + recall)
          if precision and recall else 0.0 if precision is not None and recall is not None else None)
    by_kind: dict[str, Counter] = {}
    for r in labelled:
        kind = by_kind.setdefault(str(r.get("kind", "-")), Counter())
        kind["pairs"] += 1
        kind["correct"] += (r["verdict"] == SUPPORTED) == (r["label"] == SUPPORTED)
        kind["accepted"] += r["verdict"] == SUPPORTED
        kind["prefilter_rejected"] += r.get("judged_by") == "prefilter"
    ms = sorted(r["ms"] for r in rows)
    return {"pairs": len(labelled), "precision": precision, "recall": recall, "f1": f1,
            "true_positive": tp, "false_positive": fp, "false_negative": fn,
            "ms_per_claim_mean": round(sum(ms) / len(ms), 1),
            "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())}}


def format_report(report: dict, judge_name: str) -> str:
    """The --eval report as plain text."""
    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.3f}"

    lines = [f"judge: {judge_name}",
             f"pairs: {report['pairs']}   precision(supported): {num(report['precision'])}   "
             f"recall(supported): {num(report['recall'])}   F1: {num(report['f1'])}",
             f"false accepts: {report['false_positive']}   false rejects: "
             f"{report['false_negative']}   ms per claim: {report['ms_per_claim_mean']}",
             "", f"{'kind':<16}{'pairs':>6}{'correct':>9}{'accepted':>10}{'prefilter':>11}"]
    for kind, c in report["by_kind"].items():
        lines.append(f"{kind:<16}{c.get('pairs', 0):>6}{c.get('correct', 0):>9}"
                     f"{c.get('accepted', 0):>10}{c.get('prefilter_rejected', 0):>11}")
    return "\n".join(lines)
