"""The eval runner end to end: a small question file, the hashed seed index, a replayed model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.compare import compare_runs
from eval.runner import run_eval
from index.errors import UserError
from qa.settings import Settings

from conftest import open_store
from judges import StrictWordJudge, WordAnswerability

ROOT = Path(__file__).resolve().parent.parent
SMALL_SET = ("q01", "q02", "q28", "q49")  # q49 names a president no document mentions
# One supported sentence, then a marker that points past the five passages shown.
REPLY = "Lavrov said Assad is not our ally [1]. Iran wants Assad to stay [9]."


@pytest.fixture
def questions_file(tmp_path) -> Path:
    """Four seed questions with their real gold quotes, one of them unanswerable."""
    lines = [line for line in (ROOT / "eval" / "seed_questions.jsonl").read_text().splitlines()
             if json.loads(line)["id"] in SMALL_SET]
    assert len(lines) == 4
    path = tmp_path / "small.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def rows_of(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def run(assistant, questions_file: Path, out: Path, **kwargs) -> Path:
    return run_eval(questions_file, out, assistant.settings, assistant=assistant, progress=False,
                    citation_judge=StrictWordJudge(), **kwargs)


@pytest.mark.both_stores
def test_run_writes_results_summary_and_report(replay_assistant, questions_file, tmp_path,
                                               hashing_seed_index):
    assistant = replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False)
    out = run(assistant, questions_file, tmp_path / "run")
    assert out == tmp_path / "run"
    assert len(assistant.generator.prompts) == 3  # the abstention never reaches the model

    rows = rows_of(out)
    assert [r["id"] for r in rows] == list(SMALL_SET)
    assert [r["answerable"] for r in rows] == [True, True, True, False]
    assert [r["type"] for r in rows] == ["single_fact", "single_fact", "multi_passage",
                                         "unanswerable"]
    q01, q49 = rows[0], rows[3]
    assert q01["question"] == "Who said 'Assad is not our ally'?"
    assert q01["answer"]["mode"] == "model"
    assert q01["answer"]["answer"].startswith("Lavrov said Assad is not our ally [1].")
    assert q01["metrics"]["key_facts_found"] == [True]
    assert q01["metrics"]["key_fact_coverage"] == 1.0
    assert q01["metrics"]["citation_recall"] == 1.0
    assert (q01["metrics"]["draft_markers"], q01["metrics"]["draft_invalid_markers"]) == (2, 1)
    assert q49["answer"]["abstained"] is True
    assert q49["metrics"]["recall@5"] is None and q49["metrics"]["first_token_ms"] is None

    # Top 10 retrieved separately; recall@k agrees with where the gold quote really is.
    store = open_store(hashing_seed_index)
    texts = {Path(r.source).name: store.document_text(r.doc_id) for r in store.list_documents()}
    for row in rows[:3]:
        assert [h["rank"] for h in row["retrieved"]] == list(range(1, 11))
        assert 1 <= len(row["answer"]["passages"]) <= 5  # overlapping neighbours merged
        spans = []
        for evidence in json.loads(next(line for line in questions_file.read_text().splitlines()
                                        if json.loads(line)["id"] == row["id"]))["evidence"]:
            start = texts[evidence["doc"]].index(evidence["quote"])
            spans.append((evidence["doc"], start, start + len(evidence["quote"])))
        relevant = [h["rank"] for h in row["retrieved"] if any(
            Path(h["source"]).name == doc and h["start"] < end and start < h["end"]
            for doc, start, end in spans)]
        first = min(relevant) if relevant else None
        assert row["metrics"]["recall@1"] == float(first == 1)
        assert row["metrics"]["recall@10"] == float(first is not None)
        assert row["metrics"]["mrr"] == (1 / first if first else 0.0)

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"metrics", "by_type", "configuration", "run"}
    metrics = summary["metrics"]
    assert set(metrics["retrieval"]) >= {"recall@1", "recall@3", "recall@5", "recall@10", "mrr",
                                         "evidence_recall"}
    assert metrics["retrieval"]["questions"] == 3
    assert metrics["retrieval"]["recall@5"] == pytest.approx(
        sum(r["metrics"]["recall@5"] for r in rows[:3]) / 3)
    assert metrics["answers"]["key_fact_coverage"] == pytest.approx(
        sum(r["metrics"]["key_fact_coverage"] for r in rows[:3]) / 3)
    assert metrics["answers"]["invalid_marker_rate"] == 0.5  # [9] in each of 3 drafts of 2
    assert metrics["answers"]["draft_markers"] == 6
    # Model answers keep only valid markers; quotes of extractive answers may carry the
    # documents' own footnote marks ("said[49]"), which the metric counts as well.
    assert q01["metrics"]["invalid_markers_shown"] == 0
    assert metrics["answers"]["invalid_markers_shown"] == sum(
        r["metrics"]["invalid_markers_shown"] for r in rows)
    assert metrics["abstention"] == {"abstention_precision": 1.0, "abstention_recall": 1.0,
                                     "wrong_refusal_rate": 0.0, "abstained": 1,
                                     "unanswerable": 1, "answerable": 3}
    assert set(metrics["latency_ms"]) == {"retrieval_p50", "retrieval_p95", "first_token_p50",
                                          "first_token_p95", "first_verified_p50",
                                          "first_verified_p95", "judge_p50", "judge_p95",
                                          "total_p50", "total_p95"}
    for row in rows:  # the early quote's time, or the whole answer's when there is none
        timings = row["answer"]["timings"]
        assert row["metrics"]["first_verified_ms"] == timings["first_verified_ms"] \
            <= timings["total_ms"]
    assert summary["by_type"]["unanswerable"]["abstention_rate"] == 1.0
    assert summary["by_type"]["single_fact"]["questions"] == 2

    config = summary["configuration"]
    assert config["backend_used"] == "replay" and config["model_used"] == "replay"
    assert config["settings"]["temperature"] == "0.0" and config["settings"]["seed"] == "0"
    assert config["settings"]["abstain_threshold"] == "0.0"
    assert config["settings"]["top_k"] == "5"
    assert config["index_manifest_hash"] == store.fingerprint
    assert config["embedder"] == "hashing-256"
    import hashlib
    assert config["questions_sha256"] == hashlib.sha256(questions_file.read_bytes()).hexdigest()
    assert summary["run"]["questions"] == 4
    assert summary["run"]["started"] <= summary["run"]["finished"]

    for name in ("report.md", "report.html", "recall_at_k.png", "by_type.png", "latency.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "recall_at_k.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| invalid_marker_rate | 0.500 |" in report
    assert "![Retrieval](recall_at_k.png)" in report
    page = (out / "report.html").read_text()
    assert "<img src='by_type.png'" in page
    assert "Who said &#x27;Assad is not our ally&#x27;?" in page  # question text is escaped


def test_default_folder_is_under_the_data_dir(replay_assistant, questions_file, tmp_path):
    assistant = replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False)
    out = run_eval(questions_file, None, Settings(data_dir=tmp_path), assistant=assistant,
                   progress=False, citation_judge=StrictWordJudge())
    assert out.parent == tmp_path / "eval-runs"
    assert out.name.startswith("small-")
    assert len(rows_of(out)) == 4


def test_resume_skips_finished_questions(replay_assistant, questions_file, tmp_path):
    out = run(replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False), questions_file, tmp_path / "run")
    complete = rows_of(out)

    again = replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False)
    run(again, questions_file, out)
    assert again.generator.prompts == []  # every question was already answered
    assert rows_of(out) == complete

    # A run killed after two questions, in the middle of writing the third line.
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:2]) + "\n" + lines[2][:50])
    resumed = replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False)
    run(resumed, questions_file, out)
    assert len(resumed.generator.prompts) == 1  # q28 only; q49 abstains without the model
    rows = rows_of(out)
    assert [r["id"] for r in rows] == list(SMALL_SET)
    assert [r["metrics"]["key_facts_found"] for r in rows] == [
        r["metrics"]["key_facts_found"] for r in complete]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["resumed_from_earlier_run"] == 2
    assert summary["run"]["questions"] == 4


def test_resume_refuses_a_different_configuration(replay_assistant, questions_file, tmp_path):
    out = run(replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False), questions_file, tmp_path / "run")
    with pytest.raises(UserError) as error:
        run(replay_assistant(REPLY, abstain_threshold=0.0, top_k=3), questions_file, out)
    message = str(error.value)
    assert "top_k" in message and "use a new --out" in message and "\n" not in message


def test_refuses_a_folder_that_is_not_a_run(replay_assistant, questions_file, tmp_path):
    folder = tmp_path / "busy"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an eval run folder"):
        run(replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False), questions_file, folder)


def test_bad_line_is_reported_with_its_number(replay_assistant, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a", "question": "Who?", "answerable": true}\n'
                    '{"id": "b", "question": "What?"\n', encoding="utf-8")
    assistant = replay_assistant(REPLY)
    with pytest.raises(UserError, match="line 2"):
        run(assistant, path, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_judge_asks_the_model_per_key_fact(replay_assistant, questions_file, tmp_path):
    replies = [REPLY, "yes", REPLY, "no", REPLY, "yes", "no", "yes"]
    assistant = replay_assistant(replies, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False)
    out = run(assistant, questions_file, tmp_path / "run", judge=True)
    # q01: 1 fact, q02: 1 fact, q28: 3 facts; q49 abstains and is not judged.
    assert len(assistant.generator.prompts) == 3 + 5
    rows = rows_of(out)
    assert [r["metrics"].get("key_facts_judged") for r in rows] == [
        [True], [False], [True, False, True], None]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["answers"]["key_fact_judge"] == pytest.approx((1 + 0 + 2 / 3) / 3)
    assert summary["configuration"]["judge"] is True


def test_compare_runs_lists_metric_differences_and_changed_questions(replay_assistant,
                                                                     questions_file, tmp_path):
    run_a = run(replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False), questions_file, tmp_path / "a")
    run_b = run(replay_assistant(REPLY, abstain_threshold=2.0, answerability=WordAnswerability(), repair=False), questions_file, tmp_path / "b")
    summary_a = json.loads((run_a / "summary.json").read_text())
    text = compare_runs(run_a, run_b)
    assert "| metric | A | B | B−A |" in text
    assert "| abstention.wrong_refusal_rate | 0.000 | 1.000 | +1.000 |" in text
    assert "| abstention.abstention_recall | 1.000 | 1.000 | +0.000 |" in text
    coverage = summary_a["metrics"]["answers"]["key_fact_coverage"]
    assert (f"| answers.key_fact_coverage | {coverage:.3f} | 0.000 | {-coverage:+.3f} |"
            in text)
    assert "| by_type.single_fact.abstention_rate | 0.000 | 1.000 | +1.000 |" in text
    assert "abstain_threshold: 0.0 → 2.0" in text
    assert "- q01: key facts 1/1 → 0/1; abstained no → yes" in text
    assert "- q49" not in text  # abstained in both runs
    assert "Questions whose key-fact hits or abstention changed: 3" in text


def test_compare_refuses_a_folder_that_is_not_a_run(replay_assistant, questions_file, tmp_path):
    run_a = run(replay_assistant(REPLY, abstain_threshold=0.0, answerability=WordAnswerability(), repair=False), questions_file, tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is not an eval run folder"):
        compare_runs(run_a, tmp_path / "empty")
