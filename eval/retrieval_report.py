"""Compare dense, BM25 and hybrid retrieval on a question set: `python -m eval.retrieval_report`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qa.cli import load_retriever
from qa.settings import Settings

from .questions import load_questions
from .retrieval import gold_spans, mean_scores, retrieval_scores


def report(questions_path: Path, settings: Settings, k: int = 10) -> dict:
    retriever = load_retriever(settings)
    texts = {Path(record.source).name: retriever.store.document_text(record.doc_id)
             for record in retriever.store.list_documents()}
    questions = [q for q in load_questions(questions_path) if q.answerable and q.evidence]
    results = {}
    for mode in ("dense", "bm25", "hybrid"):
        rows = []
        for question in questions:
            hits = retriever.search(question.question, k, mode)
            rows.append(retrieval_scores(hits, gold_spans(question, texts)))
        results[mode] = mean_scores(rows)
    return {"questions": len(questions), "index": retriever.store.fingerprint,
            "chunking": retriever.store.config.chunking, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("questions", nargs="?", default="eval/seed_questions.jsonl", type=Path)
    args = parser.parse_args()
    out = report(args.questions, Settings.from_env())
    print(f"{out['questions']} answerable questions, chunking {out['chunking']}")
    print(f"{'mode':8} " + " ".join(f"{m:>10}" for m in next(iter(out['results'].values()))))
    for mode, scores in out["results"].items():
        print(f"{mode:8} " + " ".join(f"{v:10.3f}" for v in scores.values()))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
