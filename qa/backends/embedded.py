"""Generation in-process with llama.cpp (llama-cpp-python) from a GGUF file shipped in a package."""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from qa.backends.base import BackendError, GenerationOptions, Prompt
from qa.backends.packaged_models import GEMMA3_FILE  # noqa: F401 - tests import it from here
from qa.backends.packaged_models import MODELS, choices, model_path
from qa.settings import Settings

# Read by OpenMP when llama.cpp's library is loaded, so it must be set before llama_cpp is first
# imported: spinning OpenMP threads collapse throughput (10x swings) when another process holds a
# core, and passive waiting does not change outputs.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Chosen by measurement (README, "The generator"): on the tune half of the team set, drafting
# from the best evidence sentences, it carried the most key facts of the packaged models within
# about 10 s a whole answer; SmolLM2's drafts mostly failed the judge.
DEFAULT_MODEL = "qwen-0.5b"
# The default of the `threads` setting (QA_THREADS), for bench/bench_generation.py.
N_THREADS = Settings().threads
# Sampling defaults of llama.cpp; the repeat penalty keeps tiny models out of loops.
TOP_K, TOP_P, REPEAT_PENALTY = 40, 0.95, 1.1
CHATML_STOPS = ("<|im_end|>", "<|im_start|>")

# Loaded models, shared by every generator in the process: loading costs time and memory and the
# web server asks many questions. One lock per model: a llama.cpp context serves one request at once.
_LOADED: dict[tuple[str, int, str, int], "_LoadedModel"] = {}
_LOADING = threading.Lock()


@atexit.register
def _close_loaded() -> None:
    # Free the models while llama_cpp is still importable: left to interpreter teardown, Llama's
    # destructor runs after its module globals are gone and prints a TypeError traceback.
    while _LOADED:
        _LOADED.popitem()[1].llm.close()


class _LoadedModel:
    def __init__(self, llm) -> None:
        self.llm = llm
        self.lock = threading.Lock()


def resolve_model_path(model: str, data_dir: Path) -> Path:
    """The GGUF file for a packaged model's name (see qa/backends/packaged_models.py) or a path
    ending in .gguf; split models are assembled and checked against their pinned sha256 once."""
    name = model or DEFAULT_MODEL
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BackendError(f"Model file {path} does not exist: set QA_MODEL or --model to "
                               f"{choices()}")
        return path
    return model_path(name, data_dir)


def _load(path: Path, settings: Settings, role: str = "generate") -> _LoadedModel:
    # The seed is passed with every request, so one loaded model serves any seed. Each role
    # (answering, judging) gets its own context: the weights are memory-mapped once, and the
    # judge's cached instructions survive the generator's prompts in between.
    threads = max(1, settings.threads)
    key = (str(path.resolve()), settings.context_window, role, threads)
    with _LOADING:
        if key not in _LOADED:
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise BackendError("llama-cpp-python is not installed: install the 'embedded' "
                                   "extra (see README) or set QA_BACKEND to ollama or openai") from exc
            try:
                llm = Llama(model_path=str(path), n_ctx=settings.context_window,
                            n_threads=threads, n_threads_batch=threads, seed=settings.seed,
                            verbose=False, logits_all=False)
            except Exception as exc:  # noqa: BLE001 - llama.cpp reports load failures as ValueError
                raise BackendError(f"Could not load the model {path}: {exc} (check QA_MODEL)") from exc
            _LOADED[key] = _LoadedModel(llm)
        return _LOADED[key]


def load_model(model: str, settings: Settings, role: str = "generate") -> _LoadedModel:
    """A packaged model name or .gguf path, loaded once per process and role, with its lock."""
    return _load(resolve_model_path(model, settings.data_dir), settings, role)


class EmbeddedGenerator:
    """A GGUF model run in this process; ChatML models get their chat format, others plain text."""

    backend = "embedded"

    def __init__(self, settings: Settings, role: str = "generate") -> None:
        self.model = settings.model or DEFAULT_MODEL
        self.context_window = settings.context_window
        self.timeout_s = settings.timeout_s
        self.model_path = resolve_model_path(self.model, settings.data_dir)
        self._loaded = _load(self.model_path, settings, role)
        self.llm = self._loaded.llm
        self.chat_template = self.llm.metadata.get("tokenizer.chat_template", "")
        # Only ChatML is rendered by hand; a model with another template (or none, like the gemma3
        # base model) gets the plain completion text, which every model can continue. Packaged
        # models say which they are; a .gguf path is judged by its template.
        packaged = MODELS.get(self.model)
        self.prompt_format = packaged.chat if packaged else (
            "chatml" if "<|im_start|>" in self.chat_template else "completion")

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the model's own tokenizer (special tokens counted as one)."""
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def render(self, prompt: Prompt) -> str:
        """The exact text sent to the model, so callers can count the whole prompt."""
        if self.prompt_format == "chatml":
            return (f"<|im_start|>system\n{prompt.system}<|im_end|>\n"
                    f"<|im_start|>user\n{prompt.user}<|im_end|>\n"
                    f"<|im_start|>assistant\n{prompt.answer_prefix}")
        return prompt.as_completion()

    def stops(self, options: GenerationOptions) -> list[str]:
        """Stop strings: the caller's, plus the turn markers of the chat format."""
        extra = CHATML_STOPS if self.prompt_format == "chatml" else ()
        return list(dict.fromkeys([*options.stop, *extra]))

    def generate(self, prompt: Prompt, options: GenerationOptions) -> Iterator[str]:
        """Yield the continuation of the rendered prompt piece by piece."""
        text = self.render(prompt)
        # One answer at a time per loaded model. A plain Lock (not RLock): a web server may resume
        # this generator on another thread. Waiting is bounded so a caller that keeps an unfinished
        # stream open gets an error instead of a hang.
        if not self._loaded.lock.acquire(timeout=self.timeout_s):
            raise BackendError(f"The embedded model was busy with another answer for "
                               f"{self.timeout_s:g} s: retry, or raise QA_TIMEOUT_S")
        try:
            started = time.monotonic()
            stream = self.llm.create_completion(
                text, max_tokens=options.max_tokens, temperature=options.temperature,
                top_k=TOP_K, top_p=TOP_P, repeat_penalty=REPEAT_PENALTY, seed=options.seed,
                stop=self.stops(options), stream=True)
            try:
                for chunk in stream:
                    piece = chunk["choices"][0]["text"]
                    if piece:
                        yield piece
                    if time.monotonic() - started > self.timeout_s:
                        raise BackendError(f"The embedded model took longer than "
                                           f"{self.timeout_s:g} s: raise QA_TIMEOUT_S or shorten "
                                           "QA_MAX_ANSWER_TOKENS")
            except ValueError as exc:  # llama-cpp-python checks the prompt length lazily
                raise self._too_long(exc) from exc
            finally:
                stream.close()  # stops llama.cpp when the caller stops reading early
        finally:
            self._loaded.lock.release()

    def _too_long(self, exc: ValueError) -> BackendError:
        return BackendError(f"The prompt does not fit the model's context: {exc} (raise "
                            "QA_CONTEXT_WINDOW or lower QA_TOP_K)")
