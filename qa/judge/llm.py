"""An entailment judge on a local GGUF model: the answer is read from the model's probabilities.

The model is asked one yes/no question per claim and never writes free text: after the prompt,
the probability mass of "yes" against "no" on the next token is the score. Evidence comes first
in the prompt and claims are judged grouped by evidence, so claims that cite the same passage
reuse its tokens from llama.cpp's KV cache instead of reading it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from qa.backends.base import BackendError
from qa.settings import Settings

from .base import Claim, Verdict, verdict_from_probability

SYSTEM = ("You are a strict fact checker. You decide whether a claim is supported by the "
          "evidence. Answer yes only if the evidence states everything the claim says: the same "
          "people, countries and organisations in the same roles, the same numbers and dates, "
          "the same certainty, and the same polarity. \"The former\" and \"the latter\" refer "
          "to the first and second of two things named just before. A claim that adds anything "
          "the evidence does not say is not supported. A faithful rewording, including a change "
          "from active to passive voice, is supported. Otherwise answer no.")
QUESTION = "Is the claim fully supported by the evidence? Answer yes or no."

# Worked examples, invented and unrelated to any collection. The traps ("no") each teach one way a
# claim can go wrong; the faithful rewordings ("yes") between them keep the model from reading
# every difference in wording as a trap: with them the judge separated supported from
# unsupported pairs better on both halves of eval/adversarial_pairs.jsonl (ROC AUC 0.893 ->
# 0.908 on the tune half, 0.887 -> 0.905 on the test half). They sit in the cached prefix, so
# they cost time once per loaded model, not once per claim.
EXAMPLES = (
    ("The council and the mayor disagree on the budget: the former wants cuts, while the latter "
     "has proposed new spending.", "The mayor wants cuts, while the council proposes spending.",
     "no"),
    ("The museum shut its doors to visitors in 2019 after part of the roof collapsed.",
     "After part of the roof fell in, the museum closed to the public in 2019.", "yes"),
    ("The council and the mayor disagree on the budget: the former wants cuts, while the latter "
     "has proposed new spending.", "The council favours cutting the budget.", "yes"),
    ("The orchestra was founded in 1921.\n\nIts first conductor was Lena Varga, who led it for "
     "a decade.", "Lena Varga was the first conductor of the orchestra founded in 1921.", "yes"),
    ("The supplier refused to ship the turbines to the plant.",
     "The supplier shipped the turbines to the plant.", "no"),
    ("The court did not accept the appeal, saying that no new evidence had been offered.",
     "The appeal was rejected because no new evidence was offered.", "yes"),
    ("The flood damaged 120 homes and destroyed 35 bridges in the valley.",
     "The flood destroyed 120 bridges.", "no"),
    ("Farmers in the north rely more on rain than those in the south, who mostly irrigate.",
     "Southern farmers mostly irrigate, whereas northern ones depend more on rain.", "yes"),
    ("The new drug may have reduced the infection rate.", "The new drug reduced the infection rate.",
     "no"),
    ("Officials said the fire may have started in the kitchen.",
     "According to officials, the fire possibly began in the kitchen.", "yes"),
    ("Engineers from Canada designed the bridge, which Mexico paid for.",
     "The bridge was designed by Canadian engineers.", "yes"),
    ("Ferries between the two islands run every hour during the summer months.",
     "Ferries between the two islands run every hour during the summer months.", "yes"),
    ("Engineers from Canada designed the bridge, which Mexico paid for.",
     "The bridge was designed by engineers from the US.", "no"),
    ("The committee met in Vienna in March.", "The committee met in Vienna in March to approve "
     "the treaty.", "no"),
)


def _turn(role: str, text: str) -> str:
    return f"<|im_start|>{role}\n{text}<|im_end|>\n"


def _ask(evidence: str, claim: str) -> str:
    return f"Evidence:\n{evidence}\n\nClaim: {claim}\n\n{QUESTION}"


def few_shot_preamble(system: str, shots: Iterable[tuple[str, str]]) -> str:
    """The system turn plus worked (user, assistant) turns: the cached prefix of every prompt."""
    return _turn("system", system) + "".join(_turn("user", user) + _turn("assistant", answer)
                                             for user, answer in shots)


_PREAMBLE = few_shot_preamble(SYSTEM, ((_ask(evidence, claim), answer)
                                       for evidence, claim, answer in EXAMPLES))


def chatml_prompt(claim: Claim) -> str:
    """The whole prompt; everything up to the evidence is shared by every claim."""
    return (_PREAMBLE + "<|im_start|>user\n"
            + _ask(claim.evidence_text, " ".join(claim.text.split()))
            + "<|im_end|>\n<|im_start|>assistant\n")


class YesNoModel:
    """A ChatML model in a llama.cpp context of its own role that answers yes or no: the score
    is P(yes) / (P(yes) + P(no)) for the token after the prompt. The weights are shared with
    every other role; each role's context keeps its own cached prompt prefix."""

    def __init__(self, settings: Settings, model: str, role: str) -> None:
        from qa.backends.embedded import load_model

        self._loaded = load_model(model, settings, role=role)
        self.timeout_s = settings.timeout_s
        llm = self._loaded.llm
        if "<|im_start|>" not in llm.metadata.get("tokenizer.chat_template", ""):
            raise BackendError(f"The judge model '{model}' has no ChatML chat template: set "
                               "QA_JUDGE_MODEL to an instruct model such as qwen-1.5b")
        self._yes = self._first_tokens(("yes", "Yes", " yes", " Yes", "YES"))
        self._no = self._first_tokens(("no", "No", " no", " No", "NO"))

    def _first_tokens(self, words: Sequence[str]) -> list[int]:
        llm = self._loaded.llm
        return sorted({llm.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words})

    def scores(self, prompts: Sequence[str]) -> list[float]:
        """P(yes) for each prompt, in order, holding the model for the whole batch."""
        if not self._loaded.lock.acquire(timeout=self.timeout_s):
            raise BackendError(f"The judge model was busy for {self.timeout_s:g} s: retry, or "
                               "raise QA_TIMEOUT_S")
        try:
            return [self._p_yes(prompt) for prompt in prompts]
        finally:
            self._loaded.lock.release()

    def _p_yes(self, text: str) -> float:
        """P(yes) / (P(yes) + P(no)) for the token after the prompt, reusing the cached prefix."""
        llm = self._loaded.llm
        tokens = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if len(tokens) >= llm.n_ctx():
            raise BackendError(f"A prompt to the judge needs {len(tokens)} tokens, more than "
                               f"its context of {llm.n_ctx()}: raise QA_CONTEXT_WINDOW")
        cached = llm.input_ids[:llm.n_tokens]
        shared = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            shared += 1
        shared = min(shared, len(tokens) - 1)  # at least one token is decoded to get logits
        llm.n_tokens = shared  # eval() drops the cache past this point before decoding
        llm.eval(tokens[shared:])
        logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
        yes, no = logits[self._yes].astype(np.float64), logits[self._no].astype(np.float64)
        top = max(yes.max(), no.max())
        p_yes, p_no = np.exp(yes - top).sum(), np.exp(no - top).sum()
        return float(p_yes / (p_yes + p_no))


class LlamaJudge:
    """Yes/no entailment from a llama.cpp model in this process: weights shared with generation,
    its own context (so its cached preamble survives the prompts in between)."""

    def __init__(self, settings: Settings, model: str, threshold: float) -> None:
        self.model = model
        self.threshold = threshold
        self.name = f"llm:{model}"
        self._model = YesNoModel(settings, model, role="judge")

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        """One verdict per claim, in order; claims with the same evidence share its KV cache."""
        order = sorted(range(len(claims)), key=lambda i: claims[i].evidence)
        scored = self._model.scores([chatml_prompt(claims[i]) for i in order])
        scores = dict(zip(order, scored))
        return [verdict_from_probability(scores[i], self.threshold, self.name)
                for i in range(len(claims))]
