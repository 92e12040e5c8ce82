"""Grade the answers of a finished run again with another support judge.

`python -m eval.regrade RUN_DIR [--judge-backend KIND[:MODEL]]` reads the stored answers and
prints ALCE citation recall/precision and the share of unsupported shown sentences, so answers
from an older version (or another model) are graded by the same judge as today's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qa.contracts import Answer, AnswerSentence, Hit
from qa.settings import Settings

from .metrics import Entailment, citation_scores, mean
from .runner import RESULTS, make_eval_judge, read_results


def answer_from_json(data: dict) -> Answer:
    """The parts of a stored answer that citation grading reads."""
    passages = tuple(Hit(**{k: v for k, v in hit.items() if k in Hit.__dataclass_fields__})
                     for hit in data["passages"])
    sentences = tuple(AnswerSentence(s["text"], tuple(s["citations"]), s["supported"],
                                     claim=s.get("claim", ""))
                      for s in data.get("sentences", ()))
    return Answer(question=data["question"], standalone_question=data["standalone_question"],
                  answer=data["answer"], abstained=data["abstained"], citations=(),
                  passages=passages, backend=data["backend"], model=data["model"],
                  timings=data["timings"], mode=data.get("mode", "model"), sentences=sentences)


def regrade(run_dir: Path, judge_backend: str | None, settings: Settings,
            only: set[str] | None = None) -> dict:
    """Citation metrics of a run's answers under the given judge, and per-answer rows."""
    judge = make_eval_judge(settings, judge_backend)
    entails = Entailment(judge)
    rows = []
    for row in read_results(run_dir / RESULTS):
        if only is not None and row["id"] not in only:
            continue
        scores = citation_scores(answer_from_json(row["answer"]), entails)
        rows.append({"id": row["id"], "statements": scores.statements,
                     "unsupported": scores.unsupported, "recall": scores.recall,
                     "precision": scores.precision})
    statements = sum(r["statements"] for r in rows)
    return {"run": str(run_dir), "judge": judge.name, "answers": len(rows),
            "statements": statements,
            "citation_recall": mean(r["recall"] for r in rows),
            "citation_precision": mean(r["precision"] for r in rows),
            "unsupported_sentence_share": (sum(r["unsupported"] for r in rows) / statements
                                           if statements else None),
            "answers_with_unsupported": sum(1 for r in rows if r["unsupported"]),
            "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--judge-backend", default=None, help="KIND[:MODEL], default llm:qwen-1.5b")
    parser.add_argument("--questions", type=Path, help="with --split: the question file")
    parser.add_argument("--split", help="only the questions of this split (tune or test)")
    args = parser.parse_args(argv)
    only = None
    if args.split:
        from .questions import load_questions

        only = {q.id for q in load_questions(args.questions or Path("eval/seed_questions.jsonl"))
                if q.split == args.split}
    result = regrade(args.run_dir, args.judge_backend, Settings.from_env(), only)
    json.dump({k: v for k, v in result.items() if k != "rows"}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
