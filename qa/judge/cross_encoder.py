"""An NLI cross-encoder judge from a local sentence-transformers folder (for users who have one).

NLI models score (premise, hypothesis) pairs over labels such as contradiction / entailment /
neutral; the folder's config names them (`id2label`). The score is the entailment probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from index.errors import UserError

from .base import CONTRADICTED, SUPPORTED, UNSUPPORTED, Claim, Verdict


def _label_index(id2label: dict, wanted: str) -> int | None:
    for index, label in id2label.items():
        if str(label).lower().startswith(wanted):
            return int(index)
    return None


class CrossEncoderJudge:
    """Entailment probability from an NLI cross-encoder; contradiction when it is the top label."""

    def __init__(self, folder: str, threshold: float) -> None:
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UserError(f"No cross-encoder folder at {path}: set QA_JUDGE_MODEL to a local "
                            "sentence-transformers NLI cross-encoder folder")
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(str(path), device="cpu")
        labels = self.model.config.id2label or {}
        self.entailment = _label_index(labels, "entail")
        self.contradiction = _label_index(labels, "contradict")
        if self.entailment is None:
            raise UserError(f"The cross-encoder in {path} has no 'entailment' label (labels: "
                            f"{sorted(labels.values())}): use an NLI model")
        self.threshold = threshold
        self.name = f"cross-encoder:{path.name}"

    def judge(self, claims: Sequence[Claim]) -> list[Verdict]:
        if not claims:
            return []
        logits = np.asarray(self.model.predict(
            [(c.evidence_text, " ".join(c.text.split())) for c in claims],
            activation_fn=None, convert_to_numpy=True), dtype=np.float64).reshape(len(claims), -1)
        probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        verdicts = []
        for row in probabilities:
            p_entail = float(row[self.entailment])
            if p_entail >= self.threshold:
                label = SUPPORTED
            elif self.contradiction is not None and int(row.argmax()) == self.contradiction:
                label = CONTRADICTED
            else:
                label = UNSUPPORTED
            verdicts.append(Verdict(label, p_entail, self.name))
        return verdicts
