"""`POST /v1/embeddings` in OpenAI's shape, with the local encoder: one machine embeds for others."""

from __future__ import annotations

import base64
from typing import Literal

import anyio
import numpy as np
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

# Enough for a client's batch; the 64 KB body limit of the app applies as well.
MAX_INPUTS = 256


class EmbeddingRequest(BaseModel):
    """The fields this server reads; other OpenAI parameters are accepted and ignored."""

    model_config = ConfigDict(extra="allow")
    input: str | list[str] = Field(description="A text or a list of texts to embed.")
    model: str = Field("", description="The served encoder's name (see the response's `model`); "
                                        "empty means the served one.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None


def _embedder(request: Request):
    """The encoder the assistant searches with (it outlives index swaps), so vectors match."""
    live = getattr(request.app.state, "live", None)
    if live is None:
        raise HTTPException(status_code=503, detail="The server is still starting; retry.")
    return live.components.embedder


def _accepts(model: str, served: str) -> bool:
    """Our name, or a hub-style name ending in it ('sentence-transformers/all-MiniLM-L6-v2')."""
    return not model or model == served or model.rsplit("/", 1)[-1] == served


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":  # little-endian float32, as OpenAI's clients decode it
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector.tolist()


@router.post("/embeddings", summary="OpenAI-compatible embeddings with the local encoder")
async def embeddings(body: EmbeddingRequest, request: Request) -> dict:
    embedder = _embedder(request)
    if not _accepts(body.model, embedder.name):
        raise HTTPException(status_code=404, detail=f"Model '{body.model}' is not served here: "
                                                    f"use '{embedder.name}'.")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise HTTPException(status_code=400, detail=f"input must hold 1 to {MAX_INPUTS} texts; "
                                                    f"send larger sets in several requests.")
    if any(not text.strip() for text in texts):
        raise HTTPException(status_code=400, detail="input texts must not be empty.")
    if body.dimensions not in (None, embedder.dimension):
        raise HTTPException(status_code=400, detail=f"dimensions must be {embedder.dimension} "
                                                    f"for '{embedder.name}' (or left out).")
    # Encoding takes the CPU for a while: keep the event loop free for other requests.
    vectors = await anyio.to_thread.run_sync(embedder.embed, texts)
    tokens = await anyio.to_thread.run_sync(
        lambda: sum(min(embedder.count_tokens(t), embedder.max_tokens) for t in texts))
    return {"object": "list", "model": embedder.name,
            "data": [{"object": "embedding", "index": i,
                      "embedding": _encode(vector, body.encoding_format)}
                     for i, vector in enumerate(vectors)],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
