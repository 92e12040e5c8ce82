"""The default support judge with the real packaged model, on the claims the issue named."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qa.judge import make_judge
from qa.judge.base import SUPPORTED, Claim
from qa.settings import Settings

pytestmark = pytest.mark.slow

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture(scope="module")
def judge(tmp_path_factory):
    return make_judge(Settings(data_dir=Path(".qa-data")))


PAIRS = Path(__file__).resolve().parent.parent / "eval" / "adversarial_pairs.jsonl"
# The named cases, as the labelled set wrote them before the judge was calibrated:
# (false claim, its true paraphrase) — the reversed Assad roles, delivered/suspended S-300s,
# the US put in Iran's place.
NAMED = [("s043", "s001"), ("s067", "s024"), ("s055", "s004")]


def pair(pair_id: str) -> Claim:
    for line in PAIRS.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == pair_id:
            evidence = row["evidence"]
            return Claim(row["claim"], (evidence,) if isinstance(evidence, str) else tuple(evidence))
    raise AssertionError(f"{pair_id} is not in {PAIRS}")


@pytest.mark.parametrize("false_id,true_id", NAMED)
def test_named_false_claims_are_rejected_and_score_below_their_true_forms(judge, false_id,
                                                                          true_id):
    wrong, right = judge.judge([pair(false_id), pair(true_id)])
    assert wrong.label != SUPPORTED, (false_id, wrong)
    # Accepting the true form is measured (README, "Support judge"), not asserted: at the
    # calibrated threshold the 1.5B judge accepts some of these paraphrases and not others.
    assert wrong.score < right.score, (false_id, wrong, true_id, right)


def test_llm_scores_do_not_depend_on_the_cache():
    """Claims judged in a batch (sharing the evidence prefix) score as when judged alone."""
    fresh = make_judge(Settings(data_dir=Path(".qa-data"), judge_prefilter=False))
    evidence = pair("s024").evidence[0]  # the report that Moscow suspended the S-300 handover
    claims = [Claim("Moscow suspended the S-300 handover to Tehran.", (evidence,)),
              Claim("Moscow completed the S-300 handover to Tehran.", (evidence,)),
              Claim("Moscow suspended the S-300 handover to Tehran.", (evidence,))]
    batch = fresh.judge(claims)
    alone = [fresh.judge([claim])[0] for claim in claims]
    # llama.cpp's sums differ in the last bits with how tokens are batched: within 0.02.
    assert [v.score for v in batch] == pytest.approx([v.score for v in alone], abs=0.02)
    assert batch[0].score == pytest.approx(batch[2].score, abs=0.02)
    assert batch[0].score > batch[1].score
    assert re.match(r"llm:qwen", batch[0].judge)
