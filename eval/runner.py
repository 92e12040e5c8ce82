"""`qa eval`: answer every question of a file, score each answer, write a resumable run folder.

A run folder holds config.json (written first, so a killed run can be resumed), results.jsonl
(one line per finished question, appended as it finishes), summary.json, report.md, report.html
and the report's PNG plots.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections import Counter
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from index.errors import UserError
from qa.backends.base import BackendError
from qa.settings import Settings

from .metrics import Entailment, judge_key_facts, question_metrics, summarise
from .questions import Question, load_questions
from .retrieval import gold_spans

if TYPE_CHECKING:
    from qa.judge import SupportJudge
    from qa.pipeline import Assistant

CONFIG = "config.json"
RESULTS = "results.jsonl"
SUMMARY = "summary.json"
RETRIEVE_K = 10  # passages retrieved per question for recall@10, independent of top_k
# Settings that change where things live or how long to wait, not what the answers are.
RESUME_IGNORED = frozenset({"data_dir", "seeds_dir", "host", "port", "timeout_s"})


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def settings_record(settings: Settings) -> dict[str, str]:
    """Every setting as a string; a secret is recorded only as set or not."""
    record = {f.name: str(getattr(settings, f.name)) for f in fields(settings)}
    for name in record:
        if name.endswith(("_key", "token")) and record[name]:
            record[name] = "(set)"
    return record


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_configuration(settings: Settings, manifest_hash: str, embedder: str, questions_path: Path,
                      judge: bool, citation_judge: str = "") -> dict:
    """What decides the answers of a run; a resumed run must match it."""
    return {"settings": settings_record(settings), "index_manifest_hash": manifest_hash,
            "embedder": embedder,
            "questions_file": str(questions_path), "questions_sha256": sha256_file(questions_path),
            "judge": judge, "citation_judge": citation_judge,
            "temperature": settings.temperature, "seed": settings.seed,
            "retrieve_k": RETRIEVE_K}


def config_differences(recorded: dict, current: dict) -> list[str]:
    """Names of the configuration entries that differ (settings by field name)."""
    differ = []
    for key in sorted(set(recorded) | set(current)):
        if key in ("settings", "questions_file", "started"):
            continue
        if recorded.get(key) != current.get(key):
            differ.append(key)
    old, new = recorded.get("settings", {}), current.get("settings", {})
    differ += [name for name in sorted(set(old) | set(new))
               if name not in RESUME_IGNORED and old.get(name) != new.get(name)]
    return differ


def is_run(folder: Path) -> bool:
    return (folder / CONFIG).is_file() and (folder / RESULTS).is_file()


def read_results(path: Path) -> list[dict]:
    """The rows of results.jsonl; a line cut short by a killed run is dropped."""
    rows = []
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # only the last line can be cut; it is re-run
    return rows


def default_out_dir(questions_path: Path, settings: Settings) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return settings.data_dir / "eval-runs" / f"{questions_path.stem}-{stamp}"


def _write_json(path: Path, data: dict) -> None:
    """Written whole or not at all (a reader never sees half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _prepare(out_dir: Path, config: dict) -> tuple[dict, list[dict]]:
    """Start a new run folder or reopen a matching one: (recorded config, finished rows)."""
    if (out_dir / CONFIG).is_file():
        try:
            recorded = json.loads((out_dir / CONFIG).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(f"{out_dir / CONFIG} is damaged ({exc.msg}); use a new --out "
                            f"folder.") from exc
        differ = config_differences(recorded, config)
        if differ:
            raise UserError(f"{out_dir} holds an eval run with a different configuration "
                            f"({', '.join(differ)}); use a new --out folder.")
        rows = read_results(out_dir / RESULTS)
        # Rewrite without a cut last line, so appended rows start on a fresh line.
        (out_dir / RESULTS).write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return recorded, rows
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir} exists and is not an eval run folder; use a new --out folder.")
    out_dir.mkdir(parents=True, exist_ok=True)
    recorded = dict(config, started=now())
    _write_json(out_dir / CONFIG, recorded)
    (out_dir / RESULTS).write_text("", encoding="utf-8")
    return recorded, []


def _used_backend(rows: list[dict], assistant: Assistant) -> tuple[str, str]:
    """The backend and model that wrote the answers (the settings' choice when none did)."""
    used = Counter((r["answer"]["backend"], r["answer"]["model"]) for r in rows
                   if r["answer"]["mode"] != "abstained" and not r["answer"]["error"])
    return used.most_common(1)[0][0] if used else assistant.backend_label()


def evaluate_question(assistant: Assistant, question: Question, texts_by_name: dict[str, str],
                      entails: Entailment, judge: bool = False) -> dict:
    """Answer one question, retrieve its top 10 separately, and score both: one results row."""
    settings = assistant.settings
    answer = assistant.ask(question.question)
    retrieved = assistant.retriever.search(answer.standalone_question, RETRIEVE_K,
                                           settings.retrieval_mode)
    judged = None
    if judge and question.key_facts:
        if answer.abstained:
            judged = [False] * len(question.key_facts)
        else:
            try:
                judged = judge_key_facts(assistant.generator, question.question,
                                         question.key_facts, answer.answer, settings.seed)
            except BackendError as exc:
                print(f"judge failed on {question.id}: {exc}", file=sys.stderr)
    metrics = question_metrics(question, answer, retrieved, gold_spans(question, texts_by_name),
                               entails, judged)
    return {"id": question.id, "type": question.type, "question": question.question,
            "answerable": question.answerable, "gold_answer": question.gold_answer,
            "key_facts": list(question.key_facts), "answer": answer.to_json(),
            "retrieved": [hit.to_json() for hit in retrieved], "metrics": metrics}


def run_eval(questions_path: Path, out_dir: Path | None, settings: Settings,
             assistant: Assistant | None = None, progress: bool = True,
             judge: bool = False, judge_backend: str | None = None,
             citation_judge: SupportJudge | None = None, split: str | None = None) -> Path:
    """Evaluate the assistant on a question file; returns the run folder.

    An existing run folder with the same configuration is resumed (finished questions are
    skipped); one with a different configuration is refused. With `assistant` given, its
    settings are the ones evaluated and recorded; `settings` only places the default folder.
    """
    from tqdm import tqdm

    questions = load_questions(questions_path)
    if split:
        questions = [q for q in questions if q.split == split]
        if not questions:
            raise UserError(f"No question of {questions_path} has split '{split}'; the team set "
                            "uses 'tune' and 'test'.")
    if assistant is None:
        from qa.compose import load_assistant

        assistant = load_assistant(settings)
    used_settings = assistant.settings
    if used_settings.temperature != 0:
        print(f"warning: temperature {used_settings.temperature} makes answers vary between "
              f"runs; set QA_TEMPERATURE=0 for a repeatable evaluation", file=sys.stderr)
    store = assistant.retriever.store
    out_dir = out_dir or default_out_dir(questions_path, settings)
    citation_judge = citation_judge or make_eval_judge(used_settings, judge_backend)
    config = run_configuration(used_settings, store.fingerprint,
                               assistant.retriever.embedder.name, questions_path, judge,
                               citation_judge.name)
    config["split"] = split or "all"
    entails = Entailment(citation_judge)
    recorded, rows = _prepare(out_dir, config)

    done = {row["id"] for row in rows}
    todo = [q for q in questions if q.id not in done]
    texts_by_name = {Path(record.source).name: store.document_text(record.doc_id)
                     for record in store.list_documents()}
    with (out_dir / RESULTS).open("a", encoding="utf-8") as results, tqdm(
            total=len(questions), initial=len(questions) - len(todo), file=sys.stderr,
            disable=not progress, unit="question", desc="eval") as bar:
        for question in todo:
            try:
                row = evaluate_question(assistant, question, texts_by_name, entails, judge)
            except UserError as exc:
                raise UserError(f"question {question.id}: {exc}") from exc
            results.write(json.dumps(row, ensure_ascii=False) + "\n")
            results.flush()
            rows.append(row)
            bar.update(1)

    by_id = {row["id"]: row for row in rows}
    rows = [by_id[q.id] for q in questions if q.id in by_id]
    summary = build_summary(rows, recorded, config, assistant, resumed=len(done),
                            gold_missing=sum(r["metrics"]["gold_quotes"]
                                             - r["metrics"]["gold_quotes_located"] for r in rows))
    _write_json(out_dir / SUMMARY, summary)
    from .report import write_report

    write_report(out_dir, summary, rows)
    return out_dir


DEFAULT_EVAL_JUDGE = "llm:qwen-1.5b"


def make_eval_judge(settings: Settings, spec: str | None):
    """The judge that grades citations: 'KIND[:MODEL]', without the lexical pre-filter, so the
    grading does not share the answer pipeline's cheap checks."""
    from dataclasses import replace

    from qa.judge import make_judge

    kind, _, model = (spec or DEFAULT_EVAL_JUDGE).partition(":")
    return make_judge(replace(settings, judge_prefilter=False, judge_threshold=0.0), kind,
                      model or None)


def build_summary(rows: list[dict], recorded: dict, config: dict, assistant: Assistant,
                  resumed: int, gold_missing: int) -> dict:
    """summary.json: the metrics, the configuration that produced them, and when."""
    metrics = summarise(rows)
    by_type = metrics.pop("by_type")
    backend, model = _used_backend(rows, assistant)
    configuration = dict(config, backend_used=backend, model_used=model,
                         deterministic=config["temperature"] == 0)
    return {"metrics": metrics, "by_type": by_type, "configuration": configuration,
            "run": {"questions": len(rows), "resumed_from_earlier_run": resumed,
                    "gold_quotes_not_found": gold_missing, "started": recorded["started"],
                    "finished": now()}}
