"""Every setting in one place, with its help text; built at the edge (CLI or app factory)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from index.errors import UserError


def _setting(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Configuration; each field can be set by the environment variable QA_<FIELD NAME>."""

    data_dir: Path = _setting(Path(".qa-data"), "Folder for built indexes, eval runs and model "
                              "files (git-ignored).")
    seeds_dir: Path = _setting(Path("seeds"), "Corpus indexed when `qa index` gets no paths "
                               "and the index records no sources yet.")
    embedding_model: str = _setting("all-MiniLM-L6-v2", "'all-MiniLM-L6-v2' (packaged, offline) "
                                    "or a local sentence-transformers folder.")
    embedding_backend: str = _setting("local", "Embedder: 'local' (the model in-process) or "
                                      "'openai' (an OpenAI-compatible /v1/embeddings server: "
                                      "vLLM, TEI, Ollama, llama.cpp, or another `qa serve`).")
    embedding_base_url: str = _setting("http://127.0.0.1:8000/v1", "Base URL of the embedding "
                                       "server (its /embeddings is called); the default is "
                                       "`qa serve` on this machine.")
    embedding_api_key: str = _setting("", "API key for the embedding server, if it needs one.")
    embedding_server_model: str = _setting("", "Model name sent to the embedding server. Empty: "
                                           "QA_EMBEDDING_MODEL, whose local tokenizer sizes "
                                           "passages either way.")
    embedding_batch_size: int = _setting(32, "Texts per request to the embedding server.")
    embedding_concurrency: int = _setting(4, "Requests to the embedding server in flight at "
                                          "once.")
    embedding_timeout_s: float = _setting(60.0, "Seconds before one request to the embedding "
                                          "server is abandoned (then retried).")
    embedding_retries: int = _setting(3, "Retries of a request the embedding server timed out, "
                                      "refused to connect or answered 408/429/5xx, with "
                                      "exponential backoff.")
    chunk_max_tokens: int = _setting(160, "Largest passage in embedding-model tokens (the "
                                     "encoder truncates at 256).")
    chunk_overlap_tokens: int = _setting(40, "Tokens of whole sentences repeated between "
                                         "neighbouring passages.")
    ann_threshold: int = _setting(100_000, "Passages from which the FAISS store builds an "
                                  "approximate index (QA_ANN_KIND) instead of exact search.")
    ann_kind: str = _setting("ivf", "Approximate FAISS index past QA_ANN_THRESHOLD: 'ivf' "
                             "(IVF-Flat, trained) or 'hnsw' (graph; cannot delete in place).")
    ann_nlist: int = _setting(0, "IVF lists; 0 means about 4 x sqrt(passages).")
    ann_nprobe: int = _setting(32, "IVF lists searched per query: higher is slower and closer "
                               "to exact.")
    ann_hnsw_m: int = _setting(32, "HNSW links per vector: higher is larger and more accurate.")
    ann_ef_search: int = _setting(128, "HNSW candidates explored per query: higher is slower "
                                  "and closer to exact.")
    vector_store: str = _setting("faiss", "Where the index lives: 'faiss' (files in QA_DATA_DIR) "
                                 "or 'milvus' (a Milvus Lite file or a Milvus server, "
                                 "QA_MILVUS_URI).")
    milvus_uri: str = _setting("", "Milvus for QA_VECTOR_STORE=milvus. Empty: a Milvus Lite file "
                               "<QA_DATA_DIR>/milvus.db (one process at a time); "
                               "http://host:19530 for a server or cluster.")
    milvus_token: str = _setting("", "Milvus token ('user:password' or an API key), if the "
                                 "server needs one.")
    milvus_collection: str = _setting("qa", "Milvus collection prefix: <name>_passages, "
                                      "<name>_documents, <name>_meta.")
    index_lock_timeout_s: float = _setting(60.0, "Seconds a command that changes the index "
                                           "waits for another one to finish before giving up.")
    upload_max_bytes: int = _setting(20_000_000, "Largest file accepted by an upload "
                                     "(POST /api/documents), in bytes.")
    upload_max_files: int = _setting(20, "Most files accepted by one upload request.")
    uploads: bool = _setting(True, "Whether the server lets clients add and delete documents "
                             "(POST/DELETE /api/documents and the documents page); false "
                             "makes the collection read-only over HTTP.")
    api_token: str = _setting("", "Token that uploads and deletes must send as 'Authorization: "
                              "Bearer <token>' (the page asks for it once). Required to serve "
                              "uploads on a non-loopback address; empty: writes are open on "
                              "127.0.0.1 only.")
    retrieval_mode: str = _setting("hybrid", "'hybrid' (BM25 + dense, fused), 'dense' or 'bm25'.")
    top_k: int = _setting(5, "Passages retrieved and shown to the model.")
    fusion: str = _setting("convex", "How hybrid mode merges the lists: 'convex' (equal-weight sum "
                           "of min-max normalised scores) or 'rrf' (reciprocal rank fusion).")
    dense_weight: float = _setting(0.5, "Weight of the dense score in convex fusion (BM25 gets "
                                   "the rest).")
    rrf_k: int = _setting(60, "Reciprocal-rank-fusion constant: higher flattens rank differences.")
    candidates: int = _setting(50, "Candidates taken from each retriever before fusion.")
    backend: str = _setting("embedded", "Generator: 'embedded' (llama.cpp in-process), 'ollama' "
                            "or 'openai' (any OpenAI-compatible server).")
    model: str = _setting("", "Model: for embedded a packaged model ('qwen-1.5b', 'qwen-0.5b', "
                          "'smollm2', 'gemma3') or a .gguf path; for ollama/openai the server's "
                          "model name. Empty: the backend default (embedded: qwen-0.5b).")
    context_window: int = _setting(2048, "Context size in tokens requested from the model "
                                   "(Ollama's num_ctx); prompts are fitted to it, never cut.")
    threads: int = _setting(2, "llama.cpp threads; with other heavy work on the machine fewer "
                            "threads is steadier.")
    max_answer_tokens: int = _setting(200, "Most tokens the model may write for one answer.")
    temperature: float = _setting(0.0, "Sampling temperature; 0 makes answers repeatable.")
    seed: int = _setting(0, "Sampling seed, recorded with every eval run.")
    timeout_s: float = _setting(120.0, "Seconds before a backend call is abandoned.")
    ollama_host: str = _setting("http://127.0.0.1:11434", "Ollama server address.")
    openai_base_url: str = _setting("http://127.0.0.1:8080/v1", "OpenAI-compatible server "
                                    "base URL (vLLM, llama.cpp server, LM Studio).")
    openai_api_key: str = _setting("", "API key for the OpenAI-compatible server, if it needs one.")
    judge: str = _setting("llm", "Support judge that decides whether a passage backs a sentence: "
                          "'llm' (a packaged model's yes/no probabilities), 'cross-encoder' (a "
                          "local NLI folder), 'ollama' or 'openai' (a model on a server).")
    judge_model: str = _setting("", "Judge model: for llm a packaged name ('qwen-1.5b', "
                                "'qwen-0.5b') or a .gguf path; for cross-encoder a folder; for "
                                "ollama/openai the server's model. Empty: qwen-1.5b for llm.")
    judge_threshold: float = _setting(0.0, "Score at or above which the judge accepts a claim; "
                                      "0 uses the threshold calibrated for the judge model.")
    judge_prefilter: bool = _setting(True, "Reject without a model call claims whose numbers, "
                                     "negations or actors contradict the evidence (it never "
                                     "accepts on its own).")
    followup_model: str = _setting("qwen-1.5b", "Model that rewrites a follow-up question into "
                                   "a standalone one (checked to keep your words): a packaged "
                                   "name or .gguf path, 'generator' for the answer model, or "
                                   "'literal' to join it to the previous question as typed.")
    abstain_threshold: float = _setting(0.16, "Dense similarity of the best passage below which "
                                        "the assistant says the documents do not answer "
                                        "(measured for all-MiniLM-L6-v2; `qa calibrate` "
                                        "measures it for another embedder).")
    calibration: bool = _setting(True, "Use the thresholds `qa calibrate` stored in "
                                 "QA_DATA_DIR/calibration.json (when measured with the index's "
                                 "embedder and the configured judge) instead of "
                                 "QA_ABSTAIN_THRESHOLD and QA_ANSWER_THRESHOLD.")
    draft_from: str = _setting("evidence", "What the model drafts its answer from: 'passages' "
                               "(the retrieved passages, numbered) or 'evidence' (only the best "
                               "few evidence sentences, restated; a shorter prompt).")
    repair: bool = _setting(True, "With QA_DRAFT_FROM=passages: when nothing the model wrote is "
                            "supported, ask it once more to restate the best evidence "
                            "sentences (re-judged) before answering with quotes.")
    answer_threshold: float = _setting(0.0, "Answerability score (does the best evidence "
                                       "sentence answer the question?) below which the "
                                       "assistant abstains; 0 uses the judge model's calibrated "
                                       "threshold.")
    max_question_chars: int = _setting(2000, "Longest question accepted.")
    warm_up: bool = _setting(True, "Whether `qa serve` loads the models and lets the judges "
                             "read their instructions in the background at start, so the "
                             "first question does not wait for them.")
    host: str = _setting("127.0.0.1", "Address `qa serve` listens on.")
    port: int = _setting(8000, "Port `qa serve` listens on.")

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults, then QA_* environment variables, then explicit overrides (CLI flags)."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get(f"QA_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, type(f.default), raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        return settings.validated()

    def validated(self) -> "Settings":
        if self.draft_from not in ("passages", "evidence"):
            raise UserError(f"Unknown QA_DRAFT_FROM '{self.draft_from}': use passages or "
                            f"evidence.")
        if self.retrieval_mode not in ("hybrid", "dense", "bm25"):
            raise UserError(f"Unknown retrieval mode '{self.retrieval_mode}': use hybrid, "
                            "dense or bm25 (QA_RETRIEVAL_MODE or --mode).")
        if self.backend not in ("embedded", "ollama", "openai"):
            raise UserError(f"Unknown backend '{self.backend}': use embedded, ollama or openai "
                            "(QA_BACKEND or --backend).")
        if self.fusion not in ("convex", "rrf"):
            raise UserError(f"Unknown fusion '{self.fusion}': use convex or rrf (QA_FUSION).")
        if self.embedding_backend not in ("local", "openai"):
            raise UserError(f"Unknown embedding backend '{self.embedding_backend}': use local "
                            "or openai (QA_EMBEDDING_BACKEND).")
        if self.embedding_batch_size < 1 or self.embedding_concurrency < 1:
            raise UserError("QA_EMBEDDING_BATCH_SIZE and QA_EMBEDDING_CONCURRENCY must be at "
                            "least 1.")
        if self.ann_kind not in ("ivf", "hnsw"):
            raise UserError(f"Unknown ANN kind '{self.ann_kind}': use ivf or hnsw "
                            "(QA_ANN_KIND).")
        if self.top_k < 1:
            raise UserError("top_k must be at least 1 (QA_TOP_K or -k).")
        if self.vector_store not in ("faiss", "milvus"):
            raise UserError(f"Unknown vector store '{self.vector_store}': use faiss or milvus "
                            "(QA_VECTOR_STORE).")
        return self


def _convert(name: str, kind: type, raw: str):
    try:
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if issubclass(kind, Path):
            return Path(raw)
        return kind(raw)
    except ValueError as exc:
        raise UserError(f"QA_{name.upper()}='{raw}' is not a valid {kind.__name__}.") from exc


def describe_settings() -> list[tuple[str, str, str]]:
    """(environment variable, default, help) for every setting: the README table comes from this."""
    return [(f"QA_{f.name.upper()}", str(f.default), f.metadata["help"]) for f in fields(Settings)]
