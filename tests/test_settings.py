"""Settings: every one documented, environment and flags applied, bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from index.errors import UserError
from qa.settings import Settings, describe_settings

from conftest import ROOT


def test_every_setting_has_help_and_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for env, default, help_text in describe_settings():
        assert len(help_text) > 15, env
        assert f"`{env}`" in readme, f"{env} is not documented in README.md"


def test_environment_then_overrides(monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "7")
    monkeypatch.setenv("QA_DATA_DIR", "/tmp/somewhere")
    settings = Settings.from_env(backend="ollama")
    assert settings.top_k == 7 and settings.data_dir == Path("/tmp/somewhere")
    assert settings.backend == "ollama"
    assert Settings.from_env(top_k=3).top_k == 3


@pytest.mark.parametrize("env, value, message", [
    ("QA_TOP_K", "many", "QA_TOP_K"),
    ("QA_BACKEND", "gpt", "QA_BACKEND"),
    ("QA_RETRIEVAL_MODE", "magic", "QA_RETRIEVAL_MODE"),
    ("QA_VECTOR_STORE", "chroma", "QA_VECTOR_STORE"),
])
def test_bad_values_get_one_line_errors(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(UserError, match=message):
        Settings.from_env()


def test_readme_carries_the_metric_definitions():
    from eval.metrics import METRIC_DEFINITIONS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    body = METRIC_DEFINITIONS.split("\n", 1)[1]  # without its heading
    assert body.strip() in readme, "README's metric definitions differ from eval/metrics.py"
