"""The web app factory: pages, JSON API, OpenAI-compatible API, error handling, `serve`."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
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

from index.errors import IndexDamaged, UserError
from qa.backends.base import BackendError
from qa.compose import Components
from qa.pipeline import Assistant
from qa.settings import Settings

from . import api, embeddings_api, openai_compat, pages, uploads
from .limits import SecurityHeaders, document_api
from .live import LiveAssistant

log = logging.getLogger("web")

HERE = Path(__file__).resolve().parent
MAX_BODY_BYTES = 64 * 1024


def live_assistant(settings: Settings, assistant: Assistant | None = None) -> LiveAssistant:
    """The assistant the server follows the index with; built by the composition root.

    The server never builds an index itself: without one, this fails with one line saying to
    run `qa index` (scripts/run.sh does so before serving).
    """
    if assistant is None:
        components = Components(settings)
        return LiveAssistant(components, components.assistant())
    # A given assistant (tests) shares its own embedder, model and judge with later versions.
    components = Components(assistant.settings, embedder=assistant.retriever.embedder,
                            generator_factory=lambda: assistant.generator,
                            judge_factory=lambda: assistant.judge)
    return LiveAssistant(components, assistant)


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
    # A validator's own message says what to do; prefer it to the other branches of a union.
    first = next((e for e in errors if e.get("type") == "value_error"), errors[0])
    if first.get("type") == "json_invalid":
        problem = (first.get("ctx") or {}).get("error", "JSON decode error")
        return (f"Invalid request: the body is not valid JSON ({problem} at character "
                f"{first['loc'][-1]}): send a JSON object.")
    where = ".".join(str(part) for part in first.get("loc", ())  # not pydantic's branch tags
                     if part != "body" and not any(c in str(part) for c in "[(")) or "request"
    problem = str(first.get("msg", "invalid value")).removeprefix("Value error, ").rstrip(".")
    return f"Invalid request: {where}: {problem}."


def _error(request: Request, status: int, message: str) -> JSONResponse | HTMLResponse:
    """A one-line error in the shape the caller expects: OpenAI's, JSON, or a small page."""
    path = request.url.path
    # Never echo an unpaired surrogate back: the JSON writer cannot encode it.
    message = message.encode("utf-8", "replace").decode("utf-8")
    if path.startswith("/v1/"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": None,
                                       "code": None}}, status_code=status)
    if path.startswith("/api/") or "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": message}, status_code=status)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message}, status_code=status)


def _install_error_handlers(app: FastAPI) -> None:
    # The schema documents these errors, and the question limit from this app's settings.
    document_api(app, {"max_question_chars": app.state.settings.max_question_chars})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404 and message == "Not Found":
            message = "Nothing here: check the address."
        elif exc.status_code == 400 and message == "There was an error parsing the body":
            message = ("The request body could not be read as JSON (invalid UTF-8, or nested "
                       "too deeply): send a JSON object.")
        return _error(request, exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(request, 422, _message(exc))

    @app.exception_handler(BackendError)
    async def backend_down(request: Request, exc: BackendError):
        return _error(request, 503, str(exc).splitlines()[0] if str(exc) else "Backend failed.")

    @app.exception_handler(IndexDamaged)
    async def index_damaged(request: Request, exc: IndexDamaged):
        # The server's stored index is at fault, not the request.
        return _error(request, 503, str(exc).splitlines()[0])

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
    """The app; without `assistant` it opens the index at startup. Either way it follows
    re-indexes by other processes (web/live.py)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if getattr(app.state, "live", None) is None:
            app.state.live = await anyio.to_thread.run_sync(live_assistant, settings)
            current = app.state.live.current()
            backend, model = current.backend_label()
            log.warning("Ready: %d documents, backend %s (%s).",
                        current.retriever.store.count_documents(), backend, model)
        yield

    uploads.check_write_access(settings)  # no open writing endpoints on the network
    app = FastAPI(title="Cited QA", version="0.1.0", lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Answers questions about a document collection; every statement "
                              "cites the exact words of its source.")
    app.state.settings = settings
    app.state.live = live_assistant(settings, assistant) if assistant is not None else None
    app.state.templates = _templates()
    app.add_middleware(SecurityHeaders)
    # Uploads get room for their files; every other body stays small.
    app.add_middleware(uploads.BodyLimitByRoute, max_bytes=MAX_BODY_BYTES,
                       upload_bytes=settings.upload_max_bytes * settings.upload_max_files
                       + uploads.MULTIPART_OVERHEAD, settings=settings)
    _install_error_handlers(app)
    _install_docs(app)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(uploads.router)
    app.include_router(openai_compat.router)
    app.include_router(embeddings_api.router)
    app.include_router(pages.router)
    return app


def serve(settings: Settings) -> None:
    """Run the app with uvicorn on settings.host:settings.port until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    log.setLevel(logging.INFO)
    uploads.check_write_access(settings)  # before loading anything: refused in one line
    # Loaded before uvicorn starts, so a missing model or corpus is one clear line, not a trace.
    live = live_assistant(settings)
    assistant = live.current()
    try:  # load the model now too, so the first question is not the slow one
        assistant.generator
    except BackendError as exc:
        log.warning("%s -- the server still answers with retrieved passages.", exc)
    if settings.warm_up:
        # The judges read their instructions while the page is opened, not while the first
        # question waits (see Assistant.warm_up).
        threading.Thread(target=assistant.warm_up, name="warm-up", daemon=True).start()
    log.info("Serving %d documents on http://%s:%d/ (following re-indexes of %s)",
             assistant.retriever.store.count_documents(), settings.host, settings.port,
             settings.data_dir)
    app = create_app(settings)
    app.state.live = live
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
