"""Generator backends behind one seam: embedded llama.cpp, Ollama, OpenAI-compatible."""

from __future__ import annotations

from qa.backends.base import BackendError, Generator
from qa.settings import Settings


def make_generator(settings: Settings) -> Generator:
    """The generator chosen by settings.backend; each backend imports its client only when used."""
    if settings.backend == "embedded":
        from qa.backends.embedded import EmbeddedGenerator

        return EmbeddedGenerator(settings)  # settings.model empty: DEFAULT_MODEL
    if settings.backend == "ollama":
        from qa.backends.ollama_backend import OllamaGenerator

        return OllamaGenerator(settings)
    if settings.backend == "openai":
        from qa.backends.openai_compat import OpenAICompatGenerator

        return OpenAICompatGenerator(settings)
    raise BackendError(f"Unknown backend '{settings.backend}': use embedded, ollama or openai "
                       "(QA_BACKEND or --backend)")
