"""Answer-level evaluation metrics: key facts, ALCE citation precision/recall, markers, abstention,
latency. Pure functions over Answers and result rows; `METRIC_DEFINITIONS` is the README text."""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qa.backends.base import GenerationOptions, Generator, Prompt
from qa.citations import markers, split_answer, strip_markers
from qa.contracts import Answer, Hit
from qa.judge.base import Claim, SupportJudge

from .questions import Question
from .retrieval import GoldSpan, retrieval_scores

METRIC_DEFINITIONS = """\
### Evaluation metrics

`qa eval QUESTIONS.jsonl` answers every question of the file and writes `results.jsonl`,
`summary.json`, `report.md` and `report.html` to a run folder. A metric is the mean over the
questions it applies to; `n/a` means no question qualified. The configuration (every setting,
temperature and seed, the backend and model used, the index manifest hash and the question file's
SHA-256) is recorded with the numbers.

**Retrieval** — answerable questions whose gold quotes are found verbatim in the indexed text.
For each question the top 10 passages are retrieved for the standalone question in the configured
retrieval mode (separately from the `top_k` passages the model is shown). A passage is *relevant*
when its character span overlaps a gold quote of the question in the same document.

- `recall@k` (k = 1, 3, 5, 10): share of questions with a relevant passage among the first k.
- `mrr`: mean reciprocal rank of the first relevant passage (0 when none is in the top 10).
- `evidence_recall`: share of a question's gold quotes overlapped by at least one of the top 10
  passages, averaged over questions.

**Answers**

- `key_fact_coverage` — answerable questions with key facts: share of the question's key facts
  found in the answer shown to the user, averaged over questions. Fact and answer are normalised
  (Unicode NFKC, case-folded, curly quotes and primes made straight, whitespace runs collapsed to
  one space, every hyphen or dash variant together with the spaces around it made `-`, citation
  markers removed from the answer); a fact counts when it is a substring of the answer. An
  abstention scores 0.
- `key_fact_judge` — only with `--judge`: the same share when the configured model is asked, per
  fact, whether the answer states it; a fact counts when the reply begins with "yes". A tiny model
  is a weak judge: read it next to `key_fact_coverage`, not instead of it.
- `citation_recall` and `citation_precision` follow ALCE (Gao et al., 2023, *Enabling Large
  Language Models to Generate Text with Citations*). The statements are the sentences of the answer
  the user sees, each with its citation markers; abstentions have none and are left out.
  "Passages P entail statement s" is decided by the *evaluation judge* (`--judge-backend`,
  default `llm:qwen-1.5b` without the lexical pre-filter), given the full text of the passages —
  not the quotes the answer shows, and not necessarily the judge that built the answer; the run
  records which judge graded it. A claim the judge was not sure of counts as not entailed.
  - `citation_recall`: share of an answer's statements that their cited passages, concatenated,
    entail (a statement without citations scores 0); averaged over answers.
  - `citation_precision`: share of an answer's citations that are relevant; averaged over answers
    (an answer with statements but no citation scores 0). As in ALCE: when a statement's cited
    passages jointly entail it, a citation is *irrelevant* if it alone does not entail the
    statement and the statement's remaining citations still do; every other citation of an
    entailed statement is relevant; when the cited passages do not jointly entail the statement,
    none of its citations is relevant.
- `unsupported_sentence_share`: over all statements of the run, the share with no supporting
  citation — no citation at all, or no cited passage that alone entails it.
- `invalid_marker_rate`: over all model drafts of the run, citation markers `[n]` that point at no
  passage shown to the model, divided by all markers in the drafts (a number repeated within one
  sentence counts once). The draft is the model's raw text (`draft` in the answer) and the invalid
  count is the pipeline's (`invalid_markers`). Invalid
  markers are removed before the user sees the answer, so `invalid_markers_shown` — markers in the
  final answers that open no citation — must be 0.

**Abstention** — an answer is a predicted "unanswerable" when the assistant abstained.

- `abstention_precision`: share of abstentions that are on unanswerable questions.
- `abstention_recall`: share of unanswerable questions on which the assistant abstained.
- `wrong_refusal_rate`: share of answerable questions on which the assistant abstained.

**Latency** — milliseconds from each answer's timings: p50 and p95 (linear interpolation between
the closest ranks, numpy's default) of `retrieval_ms` (search and evidence check),
`first_token_ms` (question received to first model token; answers without a model call are left
out), `first_verified_ms` (question received to the first verified text shown: the source sentence
judged to answer, sent before the draft, else the whole answer), `judge_ms` (checking the model's
sentences with the support judge; answers without a draft are left out) and `total_ms` (the
whole answer).

**By question type** — for each `type` of the question file: the number of questions,
`key_fact_coverage`, `recall@5` and the abstention rate (share of its questions abstained on).
"""

_QUOTES = str.maketrans({**dict.fromkeys("‘’‚‛′`", "'"), **dict.fromkeys("“”„‟″«»", '"')})
# Any hyphen or dash with the spaces around it: "Lavrov — Foreign" matches "Lavrov-Foreign".
_DASHES = re.compile(r"\s*[-\u2010-\u2015\u2212\u2043\ufe58\ufe63\uff0d]\s*")


def normalise(text: str) -> str:
    """Text for key-fact matching: NFKC, case-folded, straight quotes, '-' dashes, one space."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    return _DASHES.sub("-", " ".join(text.split()))


def key_fact_hits(facts: Sequence[str], answer_text: str) -> list[bool]:
    """For each key fact: is its normalised text a substring of the normalised answer?"""
    answer = normalise(strip_markers(answer_text))
    return [normalise(fact) in answer for fact in facts]


def share(flags: Sequence[bool]) -> float | None:
    """Share of true flags; None for an empty list."""
    return sum(flags) / len(flags) if flags else None


def judge_key_facts(generator: Generator, question: str, facts: Sequence[str], answer_text: str,
                    seed: int = 0) -> list[bool]:
    """Ask the model, per fact, whether the answer states it; True when the reply starts 'yes'."""
    answer = strip_markers(answer_text)
    verdicts = []
    for fact in facts:
        prompt = Prompt(system="You check answers. Reply with one word: yes or no.",
                        user=f"Question: {question}\nAnswer: {answer}\nFact: {fact}\n"
                             f"Does the answer state this fact?",
                        answer_prefix="Reply (yes or no):")
        reply = "".join(generator.generate(prompt, GenerationOptions(
            max_tokens=4, temperature=0.0, seed=seed, stop=("\n",))))
        verdicts.append(reply.strip().lower().startswith("yes"))
    return verdicts


class Entailment:
    """`passages entail claim`, asked of a judge once per distinct (claim, passages) pair."""

    def __init__(self, judge: SupportJudge) -> None:
        self.judge = judge
        self._seen: dict[Claim, bool] = {}

    def __call__(self, passages: Sequence[Hit], claim: str) -> bool:
        if not passages:
            return False
        key = Claim(claim, tuple(hit.text for hit in passages))
        if key not in self._seen:
            self._seen[key] = self.judge.judge([key])[0].supported
        return self._seen[key]


@dataclass(frozen=True)
class CitationScores:
    """ALCE counts for one answer."""

    statements: int
    entailed: int  # statements their cited passages jointly entail
    citations: int
    relevant: int
    unsupported: int  # statements no single cited passage entails (or with no citation)

    @property
    def recall(self) -> float | None:
        return self.entailed / self.statements if self.statements else None

    @property
    def precision(self) -> float | None:
        if not self.statements:
            return None
        return self.relevant / self.citations if self.citations else 0.0


def citation_scores(answer: Answer, entails: Entailment) -> CitationScores:
    """ALCE citation recall/precision counts of the answer's sentences, judged by `entails`."""
    statements = entailed = total = relevant = unsupported = 0
    for sentence in answer.sentences:
        claim = sentence.claim or strip_markers(sentence.text)
        cited = [n for n in dict.fromkeys(sentence.citations) if 1 <= n <= len(answer.passages)]
        statements += 1
        total += len(set(sentence.citations))
        alone = {n: entails([answer.passages[n - 1]], claim) for n in cited}
        if not any(alone.values()):
            unsupported += 1
        joint = entails([answer.passages[n - 1] for n in cited], claim)
        if not joint:
            continue
        entailed += 1
        if len(cited) == 1:
            relevant += 1
            continue
        for n in cited:
            rest = [answer.passages[m - 1] for m in cited if m != n]
            if alone[n] or not entails(rest, claim):
                relevant += 1
    return CitationScores(statements, entailed, total, relevant, unsupported)


def draft_markers(answer: Answer) -> tuple[int, int] | None:
    """(all markers, invalid markers) of the model's draft; None when there was no draft."""
    if not answer.draft:
        return None
    total = sum(len(markers(sentence)) for sentence in split_answer(answer.draft))
    return max(total, answer.invalid_markers), answer.invalid_markers


def shown_invalid_markers(answer: Answer) -> int:
    """Markers in the answer the user sees that open no citation (the pipeline guarantees 0)."""
    openable = {c.n for c in answer.citations if 1 <= c.n <= len(answer.passages)}
    return sum(1 for sentence in split_answer(answer.answer)
               for n in markers(sentence) if n not in openable)


def question_metrics(question: Question, answer: Answer, retrieved: Sequence[Hit],
                     spans: Sequence[GoldSpan], entails: Entailment,
                     judged: Sequence[bool] | None = None) -> dict:
    """Every per-question value that the run summary aggregates."""
    values: dict = {"abstained": answer.abstained, "mode": answer.mode,
                    "error": answer.error is not None,
                    "gold_quotes": len(question.evidence), "gold_quotes_located": len(spans)}
    if question.answerable and spans:
        values.update(retrieval_scores(retrieved, spans))
    else:
        values.update({key: None for key in RETRIEVAL_KEYS})
    hits = key_fact_hits(question.key_facts, answer.answer) if question.key_facts else []
    if answer.abstained:  # the abstention text may name a fact ("documents"); it states none
        hits = [False] * len(hits)
    values["key_facts_found"] = hits
    values["key_fact_coverage"] = share(hits)
    if judged is not None:
        values["key_fact_judge"] = share(list(judged))
        values["key_facts_judged"] = list(judged)
    scores = citation_scores(answer, entails)
    values.update({"statements": scores.statements, "statements_entailed": scores.entailed,
                   "statements_unsupported": scores.unsupported, "citations": scores.citations,
                   "citations_relevant": scores.relevant, "citation_recall": scores.recall,
                   "citation_precision": scores.precision})
    counted = draft_markers(answer)
    values["draft_markers"], values["draft_invalid_markers"] = counted or (None, None)
    values["draft_unsupported_removed"] = len(answer.removed_sentences)
    values["invalid_markers_shown"] = shown_invalid_markers(answer)
    for key in LATENCY_KEYS:
        values[key] = answer.timings.get(key)
    return values


RETRIEVAL_KEYS = ("recall@1", "recall@3", "recall@5", "recall@10", "mrr", "evidence_recall")
LATENCY_KEYS = ("retrieval_ms", "first_token_ms", "first_verified_ms", "judge_ms", "total_ms")


def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None; None when there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile, linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def abstention_scores(items: Sequence[tuple[bool, bool]]) -> dict:
    """Precision/recall of abstaining on unanswerable items and the wrong-refusal rate.

    `items` holds (answerable, abstained) pairs.
    """
    abstained = [answerable for answerable, did in items if did]
    unanswerable = [did for answerable, did in items if not answerable]
    answerable = [did for is_answerable, did in items if is_answerable]
    return {"abstention_precision": share([not a for a in abstained]),
            "abstention_recall": share(unanswerable),
            "wrong_refusal_rate": share(answerable),
            "abstained": len(abstained), "unanswerable": len(unanswerable),
            "answerable": len(answerable)}


def latency_summary(timings: Sequence[dict]) -> dict:
    """p50/p95 of each timing; None values (no model call) are left out."""
    out = {}
    for key in LATENCY_KEYS:
        values = [t[key] for t in timings if t.get(key) is not None]
        out[f"{key.removesuffix('_ms')}_p50"] = percentile(values, 50)
        out[f"{key.removesuffix('_ms')}_p95"] = percentile(values, 95)
    return out


def summarise(rows: Sequence[dict]) -> dict:
    """Run-level metrics from result rows ({id, type, answerable, metrics}), grouped by topic."""
    m = [row["metrics"] for row in rows]
    retrieval = {key: mean(v[key] for v in m) for key in RETRIEVAL_KEYS}
    retrieval["questions"] = sum(1 for v in m if v["mrr"] is not None)
    statements = sum(v["statements"] for v in m)
    drafts = [v for v in m if v["draft_markers"] is not None]
    draft_total = sum(v["draft_markers"] for v in drafts)
    answers = {
        "key_fact_coverage": mean(v["key_fact_coverage"] for v in m),
        "citation_recall": mean(v["citation_recall"] for v in m),
        "citation_precision": mean(v["citation_precision"] for v in m),
        "unsupported_sentence_share": (sum(v["statements_unsupported"] for v in m) / statements
                                       if statements else None),
        "invalid_marker_rate": (sum(v["draft_invalid_markers"] for v in drafts) / draft_total
                                if draft_total else None),
        "invalid_markers_shown": sum(v["invalid_markers_shown"] for v in m),
        "statements": statements,
        "draft_markers": draft_total,
        "model_answers": sum(1 for v in m if v["mode"] == "model"),
        "repaired_answers": sum(1 for v in m if v["mode"] == "repaired"),
        "extractive_answers": sum(1 for v in m if v["mode"] == "extractive"),
        "backend_errors": sum(1 for v in m if v["error"]),
    }
    if any("key_fact_judge" in v for v in m):
        answers["key_fact_judge"] = mean(v.get("key_fact_judge") for v in m)
    abstention = abstention_scores([(row["answerable"], v["abstained"]) for row, v in zip(rows, m)])
    latency = latency_summary(m)
    return {"retrieval": retrieval, "answers": answers, "abstention": abstention,
            "latency_ms": latency, "by_type": by_type(rows)}


def by_type(rows: Sequence[dict]) -> dict:
    """Per question type: count, key-fact coverage, recall@5 and abstention rate."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["type"], []).append(row["metrics"])
    return {kind: {"questions": len(m),
                   "key_fact_coverage": mean(v["key_fact_coverage"] for v in m),
                   "recall@5": mean(v["recall@5"] for v in m),
                   "abstention_rate": share([v["abstained"] for v in m])}
            for kind, m in sorted(groups.items())}
