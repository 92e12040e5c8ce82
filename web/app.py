"""The web app factory: pages, JSON API, OpenAI-compatible API, error handling, `serve`."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from starlette.exceptions import HTTPException as StarletteHTTPException

from index.errors import UserError
from qa.backends.base import BackendError
from qa.pipeline import Assistant
from qa.settings import Settings

from . import api, openai_compat, pages
from .limits import BodySizeLimit, SecurityHeaders

log = logging.getLogger("web")

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 64 * 1024


def load_or_build_assistant(settings: Settings) -> Assistant:
    """Open the index; on a first start with no index, build it from the seed corpus."""
    from index.errors import IndexMissing
    from qa.pipeline import load_assistant

    try:
        return load_assistant(settings)
    except IndexMissing:
        from index.build import build_index
        from index.chunking import ChunkingParams
        from index.embedding import SentenceTransformerEmbedder

        log.warning("No index in %s: building one from %s (first start only, about a minute)...",
                    settings.data_dir, settings.seeds_dir)
        if not Path(settings.seeds_dir).is_dir():
            raise UserError(f"No index in {settings.data_dir} and no seed folder "
                            f"{settings.seeds_dir} to build one from: run `qa index PATHS` "
                            f"or set QA_SEEDS_DIR.")
        report = build_index([Path(settings.seeds_dir)], settings.data_dir,
                             SentenceTransformerEmbedder(settings.embedding_model),
                             ChunkingParams(settings.chunk_max_tokens,
                                            settings.chunk_overlap_tokens))
        log.warning("Indexed %d documents into %d passages.", report.documents, report.passages)
        return load_assistant(settings)


def _templates() -> Jinja2Templates:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      trim_blocks=True, lstrip_blocks=True)
    versions: dict[str, str] = {}

    def static(name: str) -> str:
        """URL of a static file with a content hash, so browsers never run stale JS or CSS."""
        if name not in versions:
            data = (HERE / "static" / name).read_bytes()
            versions[name] = hashlib.sha256(data).hexdigest()[:10]
        return f"/static/{name}?v={versions[name]}"

    env.globals["static"] = static
    return Jinja2Templates(env=env)


def _message(exc: RequestValidationError) -> str:
    """The first validation problem as one line: 'body.question: Field required'."""
    errors = exc.errors()
    if not errors:
        return "Invalid request."
    first = errors[0]
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "request"
    return f"Invalid request: {where}: {first.get('msg', 'invalid value')}."


def _error(request: Request, status: int, message: str) -> JSONResponse | HTMLResponse:
    """A one-line error in the shape the caller expects: OpenAI's, JSON, or a small page."""
    path = request.url.path
    if path.startswith("/v1/"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                       "code": None}}, status_code=status)
    if path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": message}, status_code=status)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "Nothing here: check the address."
        return _error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(request, 422, _message(exc))

    @app.exception_handler(BackendError)
    async def backend_down(request: Request, exc: BackendError):
        return _error(request, 503, str(exc).splitlines()[0] if str(exc) else "Backend failed.")

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return _error(request, 422, str(exc).splitlines()[0] if str(exc) else "Bad request.")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s", request.url.path)
        return _error(request, 500, "Internal error: the server log has the details.")


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from the swagger-ui-py package's files: the docs work with no internet."""
    spec = importlib.util.find_spec("swagger_ui")
    assets = (Path(list(spec.submodule_search_locations)[0]) / "static"
              if spec and spec.submodule_search_locations else None)
    if assets is None or not (assets / "swagger-ui-bundle.js").is_file():
        log.info("swagger-ui-py is not installed: /docs loads Swagger UI from its CDN.")
        assets = None
    else:
        app.mount("/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        if assets is None:
            return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} — API")
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} — API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")


def create_app(settings: Settings, assistant: Assistant | None = None) -> FastAPI:
    """The app; without `assistant` it loads one (building the index if needed) at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "assistant", None) is None:
            app.state.assistant = await anyio.to_thread.run_sync(load_or_build_assistant,
                                                                 settings)
            backend, model = app.state.assistant.backend_label()
            log.warning("Ready: %d documents, backend %s (%s).",
                        len(app.state.assistant.retriever.store.documents), backend, model)
        yield

    app = FastAPI(title="Cited QA", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Answers questions about a document collection; every statement "
                              "cites the exact words of its source.")
    app.state.settings = settings
    app.state.assistant = assistant
    app.state.templates = _templates()
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    _install_error_handlers(app)
    _install_docs(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(openai_compat.router)
    app.include_router(pages.router)
    return app


def serve(settings: Settings) -> None:
    """Run the app with uvicorn on settings.host:settings.port until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.INFO)
    # Loaded before uvicorn starts, so a missing model or corpus is one clear line, not a trace.
    assistant = load_or_build_assistant(settings)
    try:  # load the model now too, so the first question is not the slow one
        assistant.generator
    except BackendError as exc:
        log.warning("%s -- the server still answers with retrieved passages.", exc)
    log.info("Serving %d documents on http://%s:%d/", len(assistant.retriever.store.documents),
             settings.host, settings.port)
    uvicorn.run(create_app(settings, assistant), host=settings.host, port=settings.port,
                log_level="info")
