"""The default support judge with the real packaged model, on the claims the issue named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qa.judge import make_judge
from qa.judge.base import SUPPORTED, Claim, judge_one
from qa.settings import Settings

pytestmark = pytest.mark.slow

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def sentence_with(needle: str) -> str:
    """The seed sentence containing `needle`, verbatim (whitespace runs made single spaces)."""
    for path in sorted(SEEDS.glob("*.txt")):
        flat = " ".join(path.read_text(encoding="utf-8").split())
        at = flat.find(needle)
        if at >= 0:
            start = max(flat.rfind(". ", 0, at) + 2, 0)
            end = flat.find(". ", at)
            return flat[start:end + 1]
    raise AssertionError(f"no seed sentence contains {needle!r}")


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return make_judge(Settings(data_dir=Path(".qa-data")))


CASES = [  # (evidence needle, false claim, its true paraphrase)
    ("where the former insists on maintaining Assad",
     "Russia insists on keeping Assad as the legitimate president, while Iran is more flexible.",
     "Iran insists on keeping Assad as Syria's legitimate president, while Russia has been more "
     "flexible on the issue."),
    ("suspended the handover of S-300",
     "In March 2016 Moscow handed over the S-300 missile systems to Tehran.",
     "Russian media reported in March 2016 that Moscow had suspended the handover of S-300 "
     "systems to Tehran."),
    ("permanent transit point of weaponry to Hezbollah",
     "The US used Syrian territory as a permanent transit point for weapons to Hezbollah.",
     "Iran's use of Syrian territory as a permanent transit point for weapons to Hezbollah "
     "alarmed Russian policymakers."),
]


@pytest.mark.parametrize("needle,false_claim,true_claim", CASES)
def test_false_claims_rejected_and_paraphrases_accepted(judge, needle, false_claim, true_claim):
    evidence = sentence_with(needle)
    wrong = judge_one(judge, false_claim, evidence)
    right = judge_one(judge, true_claim, evidence)
    assert wrong.label != SUPPORTED, (false_claim, wrong)
    assert right.label == SUPPORTED, (true_claim, right)
    assert 0.0 <= wrong.score < right.score <= 1.0


def test_llm_scores_do_not_depend_on_the_cache():
    """Claims judged in a batch (sharing the evidence prefix) score as when judged alone."""
    fresh = make_judge(Settings(data_dir=Path(".qa-data"), judge_prefilter=False))
    evidence = sentence_with("suspended the handover of S-300")
    claims = [Claim("Moscow suspended the S-300 handover to Tehran.", (evidence,)),
              Claim("Moscow completed the S-300 handover to Tehran.", (evidence,)),
              Claim("Moscow suspended the S-300 handover to Tehran.", (evidence,))]
    batch = fresh.judge(claims)
    alone = [fresh.judge([claim])[0] for claim in claims]
    assert [v.score for v in batch] == pytest.approx([v.score for v in alone], abs=2e-3)
    assert batch[0].score == pytest.approx(batch[2].score, abs=2e-3)
    assert batch[0].score > batch[1].score
    assert re.match(r"llm:qwen", batch[0].judge)
