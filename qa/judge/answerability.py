"""Does this text answer this question? A judge model's yes/no probability, read like support.

Support (`SupportJudge`) asks whether evidence backs a claim; answerability asks whether a
passage sentence states what a question asks for, not merely something on its topic. The
pipeline asks it about the best few evidence sentences before the model writes anything and
says "the documents don't say" when none of them answers (see qa/pipeline.py).

The llama.cpp implementation runs the support judge's model in a context of its own (the
weights are shared), so both keep their cached instructions. The question comes before the
sentence in the prompt, so the sentences checked for one question share its tokens in the cache.
"""

from __future__ import annotations

from collections.abc import Sequence


from qa.memo import BatchMemo
from qa.settings import Settings
from qa.textmatch import comparable

from .base import AnswerabilityJudge, SupportJudge
from .llm import few_shot_preamble

SYSTEM = ("You decide whether a text answers a question. Answer yes only if the text itself "
          "states what the question asks for — the person, number, date, place, reason, "
          "position or difference asked about — at least in part. A text on the same topic "
          "that does not state what is asked does not answer it. A text about other people, "
          "another time or another event than the question names does not answer it. "
          "Otherwise answer no.")
ASK = "Does the text answer the question? Answer yes or no."
# The best-of-3 score below which the pipeline abstains, per packaged model: on the tune half of
# eval/seed_questions.jsonl, qwen-1.5b scored the 6 unanswerable questions 0.04-0.89 (4 of them
# at most 0.61) and the 24 answerable ones 0.65-0.97; 0.63 lies between the two closest.
CALIBRATED_THRESHOLDS = {"qwen-1.5b": 0.63}

# Invented examples, unrelated to any collection; each teaches one trap. They sit in the cached
# prefix, so they cost time once per loaded model, not once per question.
EXAMPLES = (
    ("When did the museum reopen?",
     "The museum reopened in May 2019 after a two-year renovation.", "yes"),
    ("How many workers lost their jobs when the mill closed?",
     "The mill closed in 2008 after a century of weaving, and the town never recovered.", "no"),
    ("Why did the council reject the stadium plan?",
     "The council turned the stadium plan down because it would have doubled traffic on the "
     "bridge.", "yes"),
    ("What did the minister say about the rail strike?",
     "The rail strike entered its third week on Monday, with unions demanding higher pay.", "no"),
    ("Who designed the lighthouse?",
     "The lighthouse, the work of the engineer Marta Sousa, was finished in 1890.", "yes"),
    ("How do the two firms see the merger differently?",
     "The first firm welcomed the merger, while the second warned it would raise prices.", "yes"),
    ("What part did the navy play in the 1953 evacuation of the island?",
     "The navy shelled the coast during the 1941 landing on the island.", "no"),
    ("What were the expedition's goals for its second year?",
     "In its second year the expedition meant to map the northern glacier and to reach the "
     "summit.", "yes"),
)


def _ask(question: str, text: str) -> str:
    return f"Question: {question}\n\nText: {text}\n\n{ASK}"


_PREAMBLE = few_shot_preamble(SYSTEM, ((_ask(question, text), answer)
                                       for question, text, answer in EXAMPLES))


def chatml_prompt(question: str, text: str) -> str:
    """The whole prompt; everything up to the sentence is shared by one question's checks."""
    return (_PREAMBLE + "<|im_start|>user\n" + _ask(" ".join(question.split()),
                                                    " ".join(text.split()))
            + "<|im_end|>\n<|im_start|>assistant\n")


class LlamaAnswerability:
    """P(yes) that a text answers a question, from a llama.cpp model in this process."""

    def __init__(self, settings: Settings, model: str, threshold: float) -> None:
        from .llm import YesNoModel

        self.model = model
        self.threshold = threshold
        self.name = f"llm:{model}"
        self._model = YesNoModel(settings, model, role="answerability")

    def answer_scores(self, question: str, texts: Sequence[str]) -> list[float]:
        return self._model.scores([chatml_prompt(question, text) for text in texts])


def answerability_for(judge: SupportJudge, settings: Settings) -> AnswerabilityJudge | None:
    """The answerability judge that goes with a support judge: the judge itself when it has the
    capability, the same model when it is a local LLM judge (behind a pre-filter or not), else
    None (then only the similarity floor decides abstention)."""
    if hasattr(judge, "answer_scores"):
        return judge  # type: ignore[return-value]
    inner = getattr(judge, "inner", None)
    if inner is not None:
        return answerability_for(inner, settings)
    from .llm import LlamaJudge

    if isinstance(judge, LlamaJudge):
        threshold = settings.answer_threshold or CALIBRATED_THRESHOLDS.get(judge.model, 0.5)
        return LlamaAnswerability(settings, judge.model, threshold)
    return None


class RememberedAnswerability:
    """An answerability judge that keeps its recent scores: abstention and the choice of quotes
    ask about the same best evidence sentences of one question, and each ask is a model call."""

    def __init__(self, inner: AnswerabilityJudge, size: int = 512) -> None:
        self.inner = inner
        self.name = inner.name
        self.threshold = inner.threshold
        self._scores: BatchMemo[tuple[str, str], float] = BatchMemo(size)

    def answer_scores(self, question: str, texts: Sequence[str]) -> list[float]:
        # Keyed by the comparable text: a model sentence copied from a passage sentence asked
        # about before (abstention asks about the best ones) is not asked about again.
        keys = [(question, comparable(t)) for t in texts]
        originals = dict(zip(keys, texts))
        return self._scores.get_many(
            keys, lambda missing: self.inner.answer_scores(question,
                                                           [originals[k] for k in missing]))


def remembered(judge: AnswerabilityJudge | None) -> AnswerabilityJudge | None:
    """The judge with its scores kept (see RememberedAnswerability); None stays None."""
    if judge is None or isinstance(judge, RememberedAnswerability):
        return judge
    return RememberedAnswerability(judge)
