"""The web layer: the FastAPI app, its pages, the JSON API and the OpenAI-compatible API."""
