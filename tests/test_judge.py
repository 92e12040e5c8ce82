"""The support-judge seam without a local model: pre-filter, server judges, `qa check`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.judge_check import load_pairs, score
from index.errors import UserError
from qa.judge import make_judge
from qa.judge.base import SUPPORTED, UNSUPPORTED, Claim, Verdict, judge_one
from qa.judge.prefilter import (PrefilteredJudge, PrefilterRules, hedge_mismatch, missing_names,
                                 numbers_of)
from qa.settings import Settings

from fake_servers import running_ollama_server, running_openai_server
from judges import StrictWordJudge

ROOT = Path(__file__).resolve().parent.parent
ASSAD = ("The fate of Bashar al-Assad is a long-term conflicting goal for Iran and Russia, where "
         "the former insists on maintaining Assad as the legitimate president of Syria, while the "
         "latter has shown to be more flexible on this issue.")


class CountingJudge:
    """Accepts everything it is asked about and remembers what it was asked."""

    name = "counting"

    def __init__(self) -> None:
        self.asked: list[Claim] = []

    def judge(self, claims):
        self.asked.extend(claims)
        return [Verdict(SUPPORTED, 1.0, self.name) for _ in claims]


def test_prefilter_rejects_without_asking_and_never_accepts_on_its_own():
    inner = CountingJudge()
    judge = PrefilteredJudge(inner)
    claims = [Claim("The attack killed 40 people.", ("The attack killed 17 people.",)),
              Claim("The strike triggered the escalation.",
                    ("The strike may have triggered the escalation.",)),
              Claim("The UN armed the rebels.", ("Iran armed the rebels.",)),
              Claim("Iran is subject to manipulation by the West.",
                    ("Iran is subject to Western manipulation.",))]
    verdicts = judge.judge(claims)
    assert [v.label for v in verdicts] == [UNSUPPORTED, UNSUPPORTED, UNSUPPORTED, SUPPORTED]
    assert [v.judge for v in verdicts[:3]] == ["prefilter"] * 3
    assert "40" in verdicts[0].reason and "hedges" in verdicts[1].reason
    assert "UN" in verdicts[2].reason
    assert inner.asked == [claims[3]]  # only the claim the checks could not reject
    assert verdicts[3].judge == "counting"


def test_prefilter_pieces():
    assert numbers_of("1,500 troops in 2017 and 3.50 dollars") == {"1500", "2017", "3.5"}
    assert missing_names("Tehran sent the IRGC to Aleppo.", "Iranian forces fought near Aleppo.") \
        == ["IRGC"]  # the first word may be a plain sentence start; acronyms always count
    assert missing_names("Forces of Iran fought.", "Iranian forces fought.") == []
    assert hedge_mismatch("Russia will leave.", "Russia may leave.")
    assert hedge_mismatch("Russia may leave.", "Russia will leave.")
    assert hedge_mismatch("Russia may leave.", "Russia might leave soon.") == ""
    # An attributed clause is hedged to its end, not just for a few words after the verb.
    view = ("The report argues that the long dry summer and the closure of the mill made the "
            "farmers sell their land to the company.")
    assert hedge_mismatch("The farmers sold their land to the company.", view)
    assert hedge_mismatch("The report argues the farmers sold their land to the company.",
                          view) == ""


def test_server_judges_read_the_first_word(tmp_path):
    evidence = "Russia refused to deliver the S-300 systems."
    with running_ollama_server("Yes.", models=("judge-model",)) as url:
        settings = Settings(ollama_host=url, judge_prefilter=False)
        judge = make_judge(settings, "ollama", "judge-model")
        verdict = judge_one(judge, "Russia did not deliver the S-300 systems.", evidence)
        assert verdict.label == SUPPORTED and verdict.judge == "ollama:judge-model"
        sent = json.dumps(url.bodies("/api/chat")[-1])
        assert "S-300" in sent and "did not deliver" in sent
    with running_openai_server("no", models=("judge-model",)) as url:
        settings = Settings(openai_base_url=url, judge_prefilter=False)
        judge = make_judge(settings, "openai", "judge-model")
        assert judge_one(judge, "Russia delivered the S-300 systems.", evidence).label == UNSUPPORTED


def test_unknown_judge_and_missing_cross_encoder_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="Unknown judge 'magic'"):
        make_judge(Settings(), "magic")
    with pytest.raises(UserError, match="QA_JUDGE_MODEL"):
        make_judge(Settings(), "cross-encoder", str(tmp_path / "nowhere"))


def test_load_pairs_reports_the_bad_line(tmp_path):
    good = {"id": "a", "claim": "X did Y.", "evidence": ["X did Y.", "Z."], "label": "supported"}
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "b", "claim": "no evidence"}) + "\n")
    with pytest.raises(UserError, match=r"pairs.jsonl:2"):
        load_pairs(path)
    path.write_text(json.dumps(good) + "\n")
    (pair,) = load_pairs(path)
    assert pair.claim.evidence == ("X did Y.", "Z.") and pair.label == "supported"


def test_score_counts_precision_recall_and_kinds():
    rows = [{"label": "supported", "verdict": "supported", "kind": "paraphrase", "ms": 10},
            {"label": "supported", "verdict": "unsupported", "kind": "paraphrase", "ms": 20},
            {"label": "unsupported", "verdict": "supported", "kind": "negation", "ms": 30},
            {"label": "unsupported", "verdict": "unsupported", "kind": "negation", "ms": 40,
             "judged_by": "prefilter"}]
    report = score(rows)
    assert (report["precision"], report["recall"]) == (0.5, 0.5)
    assert report["f1"] == pytest.approx(0.5) and report["ms_per_claim_mean"] == 25
    assert report["by_kind"]["negation"] == {"pairs": 2, "correct": 1, "accepted": 1,
                                             "prefilter_rejected": 1}


def test_verification_uses_the_judge_for_every_sentence():
    from qa.citations import verify
    from qa.contracts import Hit

    text = ("Iran stands for maintaining the current status quo. Russia does not rule out a "
            "coalition government.")
    hit = Hit(1, 1.0, "d", "T", "d.txt", 0, len(text), text)
    checked = verify("Russia stands for maintaining the current status quo [1]. Iran stands for "
                     "maintaining the current status quo [1].", [hit], StrictWordJudge())
    assert [s.supported for s in checked.sentences] == [False, True]
    assert checked.sentences[1].verdict.judge == "strict-words"
    assert checked.citations[0].quote == "Iran stands for maintaining the current status quo."
    assert checked.removed == ("Russia stands for maintaining the current status quo.",)


def test_qa_check_cli_writes_verdicts_and_scores(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    lines = [{"id": "1", "claim": "Russia did not deliver the systems.", "label": "supported",
              "evidence": "Russia refused to deliver the systems.", "kind": "paraphrase"},
             {"id": "2", "claim": "Russia delivered 40 systems.", "label": "unsupported",
              "evidence": "Russia refused to deliver the systems.", "kind": "number"}]
    pairs.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with running_ollama_server("yes", models=("judge-model",)) as url:
        env = dict(os.environ, QA_JUDGE="ollama", QA_JUDGE_MODEL="judge-model",
                   QA_OLLAMA_HOST=url)
        qa = [sys.executable, "-m", "qa"]
        out = subprocess.run(qa + ["check", str(pairs)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        rows = [json.loads(line) for line in out.stdout.splitlines()]
        assert [(r["id"], r["verdict"]) for r in rows] == [("1", "supported"),
                                                           ("2", "unsupported")]
        assert rows[1]["judged_by"] == "prefilter" and "40" in rows[1]["reason"]
        assert rows[0]["kind"] == "paraphrase"  # other fields are kept
        report = subprocess.run(qa + ["check", "--eval", str(pairs)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        assert report.returncode == 0, report.stderr
        assert "precision(supported): 1.000" in report.stdout
        assert "recall(supported): 1.000" in report.stdout
    bad = subprocess.run(qa + ["check", str(tmp_path / "missing.jsonl")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and bad.stderr.startswith("error: Cannot read")


def test_former_and_latter_are_spelled_out_for_the_judge_only():
    from qa.judge.coref import spell_out_former_latter

    assert spell_out_former_latter(ASSAD).count("Iran insists on maintaining Assad") == 1
    assert "while Russia has shown to be more flexible" in spell_out_former_latter(ASSAD)
    assert spell_out_former_latter("Lists and tuples differ: the former are mutable.") == \
        "Lists and tuples differ: the former are mutable."  # no names: left alone
    claim = Claim("Russia insists on keeping Assad, while Iran is more flexible.", (ASSAD,))
    assert "Iran insists" in claim.evidence_text and claim.evidence == (ASSAD,)
    # With the names spelled out, the (optional) role check sees whose position is whose.
    verdict = PrefilteredJudge(CountingJudge(), PrefilterRules(roles=True)).judge([claim])[0]
    assert verdict.label == UNSUPPORTED and "another actor" in verdict.reason


@pytest.mark.slow
def test_cross_encoder_judge_reads_entailment_from_a_local_nli_folder(tmp_path):
    """A real sentence-transformers cross-encoder folder with NLI labels (MiniLM with an untrained
    3-label head: the verdicts are arbitrary, the plumbing — loading, label mapping, scores — is
    what is checked against the model's own predictions)."""
    import numpy as np
    from sentence_transformers import CrossEncoder

    from index.embedding import model_folder

    model = CrossEncoder(str(model_folder("all-MiniLM-L6-v2")), num_labels=3, device="cpu")
    model.config.id2label = {0: "contradiction", 1: "entailment", 2: "neutral"}
    model.config.label2id = {v: k for k, v in model.config.id2label.items()}
    folder = tmp_path / "nli"
    model.save(str(folder))
    claims = [Claim("Russia refused to deliver the systems.", ("Russia delivered the systems.",)),
              Claim("The pass statement does nothing.", ("pass is a null operation.",))]
    logits = np.asarray(model.predict([(c.evidence_text, c.text) for c in claims],
                                      activation_fn=None, convert_to_numpy=True))
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    judge = make_judge(Settings(judge_prefilter=False, judge_threshold=0.34), "cross-encoder",
                       str(folder))
    verdicts = judge.judge(claims)
    assert [v.score for v in verdicts] == pytest.approx(list(expected[:, 1]), abs=1e-5)
    for verdict, row in zip(verdicts, expected):
        if row[1] >= 0.34:
            assert verdict.label == SUPPORTED
        elif row.argmax() == 0:
            assert verdict.label == "contradicted"
        else:
            assert verdict.label == UNSUPPORTED
    assert verdicts[0].judge == "cross-encoder:nli"
    (tmp_path / "plain").mkdir()
    model.config.id2label = {0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}
    model.save(str(tmp_path / "plain"))
    with pytest.raises(UserError, match="no 'entailment' label"):
        make_judge(Settings(), "cross-encoder", str(tmp_path / "plain"))


def test_remembered_answerability_asks_the_judge_once_per_question_and_text():
    from qa.judge.answerability import remembered

    from judges import WordAnswerability

    class Counting(WordAnswerability):
        asked: list[str] = []

        def answer_scores(self, question, texts):
            self.asked.extend(texts)
            return super().answer_scores(question, texts)

    inner = Counting()
    check = remembered(inner)
    assert remembered(check) is check and remembered(None) is None
    first = check.answer_scores("Who built the bridge?", ["The city built the bridge.", "Rain."])
    again = check.answer_scores("Who built the bridge?", ["Rain.", "The city built the bridge."])
    assert again == first[::-1] and first == inner.answer_scores(
        "Who built the bridge?", ["The city built the bridge.", "Rain."])
    assert inner.asked[:2] == ["The city built the bridge.", "Rain."] and len(inner.asked) == 4
    check.answer_scores("Who paid for it?", ["Rain."])  # another question is asked again
    assert inner.asked[-1] == "Rain." and len(inner.asked) == 5
    # A copy of a sentence asked about before (spacing, a footnote mark, curly quotes aside)
    # is not asked about again.
    copy = check.answer_scores("Who built the bridge?", ["The  city built[3] the bridge."])
    assert copy == first[:1] and len(inner.asked) == 5


def test_copied_sentences_are_accepted_without_asking_the_judge():
    from qa.judge.copies import CopyAcceptingJudge, is_copied

    evidence = ("After the flood of 1998, the council rebuilt the bridge[4]. The mayor’s office "
                "paid for it. Nobody said the old bridge had been unsafe.")
    assert is_copied("The mayor's office paid for it.", evidence)
    assert is_copied("after the flood of 1998, the council  rebuilt the bridge", evidence)
    assert is_copied("The mayor’s office paid for it. Nobody said the old bridge had been "
                     "unsafe.", evidence)
    # Fragments can drop what the sentence hangs on (a negation, a time): they are judged.
    assert not is_copied("The old bridge had been unsafe.", evidence)
    assert not is_copied("The council rebuilt the bridge.", evidence)
    assert not is_copied("The mayor's office paid", evidence)
    assert not is_copied("It rained.", "It rained.")  # too short to be a claim

    inner = CountingJudge()
    judge = CopyAcceptingJudge(inner)
    verdicts = judge.judge([Claim("The mayor's office paid for it.", (evidence,)),
                            Claim("The old bridge had been unsafe.", (evidence,))])
    assert [v.supported for v in verdicts] == [True, True]
    assert verdicts[0].judge == "copy" and verdicts[1].judge == "counting"
    assert [c.text for c in inner.asked] == ["The old bridge had been unsafe."]
    # Judged by the inner judge, the fragment gets the inner judge's verdict.
    strict = CopyAcceptingJudge(PrefilteredJudge(StrictWordJudge()))
    assert [v.supported for v in strict.judge(
        [Claim("The bridge was never rebuilt.", (evidence,))])] == [False]


class YesJudge:
    """The most lenient judge there is: it accepts every claim."""

    name = "always-yes"

    def judge(self, claims):
        return [Verdict(SUPPORTED, 1.0, self.name) for _ in claims]


def test_sentences_about_what_a_passage_covers_are_dropped_even_by_a_lenient_judge():
    from qa.citations import describes_a_source, verify
    from qa.contracts import Hit

    text = "Iran stands for maintaining the current status quo. Russia wants a coalition."
    hit = Hit(1, 1.0, "d", "T", "d.txt", 0, len(text), text)
    checked = verify("The passage also discusses the importance of the status quo [1]. This "
                     "passage highlights that Iran stands for the status quo [1].", [hit],
                     YesJudge())
    assert [s.text for s in checked.sentences] == [
        "This passage highlights that Iran stands for the status quo [1]."]
    assert describes_a_source("The second document focuses on the economy.")
    assert describes_a_source("These texts talk about trade.")
    assert not describes_a_source("The documents say Iran wants the status quo.")
    assert not describes_a_source("The passage shows how Russia changed course.")


def test_a_sentence_the_model_wrote_twice_is_shown_once():
    from qa.citations import verify
    from qa.contracts import Hit

    text = "Iran stands for maintaining the current status quo. Russia wants a coalition."
    hit = Hit(1, 1.0, "d", "T", "d.txt", 0, len(text), text)
    said = "Iran stands for maintaining the current status quo [1]."
    checked = verify(f"{said} Russia wants a coalition [1]. {said}", [hit], StrictWordJudge())
    assert [s.text for s in checked.sentences] == [said, "Russia wants a coalition [1]."]


def test_two_sentences_citing_one_passage_open_their_own_quotes():
    from qa.citations import verify
    from qa.contracts import Hit

    text = ("Iran stands for maintaining the current status quo. The talks lasted two days. "
            "Russia does not rule out a coalition government.")
    hit = Hit(1, 1.0, "d", "T", "d.txt", 100, 100 + len(text), text)
    checked = verify("Iran stands for maintaining the current status quo [1]. Russia does not "
                     "rule out a coalition government [1].", [hit], StrictWordJudge())
    first, second = checked.sentences
    assert first.supported and second.supported
    assert [q.quote for q in first.quotes] == ["Iran stands for maintaining the current status quo."]
    assert [q.quote for q in second.quotes] == ["Russia does not rule out a coalition government."]
    # Both quotes are listed, each once, under the passage's number, with document offsets.
    assert [(c.n, c.quote) for c in checked.citations] == [(1, q.quote) for q in
                                                           first.quotes + second.quotes]
    for c in checked.citations:
        assert text[c.start - 100:c.end - 100] == c.quote
