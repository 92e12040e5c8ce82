"""Support judges behind one seam; `make_judge` builds the configured one."""

from __future__ import annotations

from dataclasses import replace

from index.errors import UserError
from qa.settings import Settings

from .base import (CONTRADICTED, SUPPORTED, UNSUPPORTED, Claim, SupportJudge, Verdict,
                   judge_one)
from .prefilter import PrefilteredJudge

__all__ = ["CONTRADICTED", "SUPPORTED", "UNSUPPORTED", "Claim", "SupportJudge", "Verdict",
           "judge_one", "make_judge", "answer_judge", "DEFAULT_JUDGE_MODEL"]

DEFAULT_JUDGE_MODEL = "qwen-1.5b"
# P(yes) at or above which the LLM judge accepts, per packaged model: the threshold with the
# best F0.5 (precision weighted) on the tuning half of eval/adversarial_pairs.jsonl, behind the
# default pre-filter (see the README's "Support judge" section).
CALIBRATED_THRESHOLDS = {"qwen-1.5b": 0.775, "qwen-0.5b": 0.5}


def make_judge(settings: Settings, kind: str | None = None, model: str | None = None
               ) -> SupportJudge:
    """The judge chosen by settings (or by `kind`/`model`, for an independent eval judge)."""
    kind = kind or settings.judge
    model = model if model is not None else settings.judge_model
    threshold = settings.judge_threshold
    if kind == "llm":
        from .llm import LlamaJudge

        name = model or DEFAULT_JUDGE_MODEL
        inner = LlamaJudge(settings, name, threshold if threshold > 0
                           else CALIBRATED_THRESHOLDS.get(name, 0.5))
    elif kind == "cross-encoder":
        from .cross_encoder import CrossEncoderJudge

        if not model:
            raise UserError("QA_JUDGE=cross-encoder needs QA_JUDGE_MODEL: the folder of a "
                            "sentence-transformers NLI cross-encoder")
        inner = CrossEncoderJudge(model, threshold if threshold > 0 else 0.5)
    elif kind in ("ollama", "openai"):
        from qa.backends import make_generator

        from .remote import GeneratorJudge

        inner = GeneratorJudge(make_generator(replace(settings, backend=kind,
                                                      model=model or settings.model)),
                               settings.seed)
    else:
        raise UserError(f"Unknown judge '{kind}': use llm, cross-encoder, ollama or openai "
                        "(QA_JUDGE or --judge)")
    return PrefilteredJudge(inner) if settings.judge_prefilter else inner


def answer_judge(settings: Settings) -> SupportJudge:
    """The judge that verifies answers: the configured one, not asked about sentences copied
    whole from their evidence (see copies.py). Eval grading and `qa check` use
    make_judge, so their figures measure the judge itself."""
    from .copies import CopyAcceptingJudge

    return CopyAcceptingJudge(make_judge(settings))
