"""HTML pages: the question page, the document list and the document viewer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from .documents import containing_passage, document_info, get_document, reflow, segments, valid_span

router = APIRouter(include_in_schema=False)


def render(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
    templates = request.app.state.templates
    return templates.TemplateResponse(request, template, context, status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def ask_page(request: Request) -> HTMLResponse:
    assistant = request.app.state.live.current()
    backend, model = assistant.backend_label()
    return render(request, "ask.html", active="ask",
                  max_chars=assistant.settings.max_question_chars,
                  n_documents=assistant.retriever.store.count_documents(),
                  backend=backend, model=model)


@router.get("/documents", response_class=HTMLResponse)
def documents_page(request: Request) -> HTMLResponse:
    store = request.app.state.live.current().retriever.store
    rows = sorted((document_info(r) for r in store.list_documents()),
                  key=lambda d: d["title"].lower())
    return render(request, "documents.html", active="documents", documents=rows)


@router.get("/documents/{doc_id}", response_class=HTMLResponse)
def document_page(request: Request, doc_id: str,
                  start: Annotated[int | None, Query()] = None,
                  end: Annotated[int | None, Query()] = None) -> HTMLResponse:
    store = request.app.state.live.current().retriever.store
    record = get_document(store, doc_id)
    text = store.document_text(record.doc_id)
    quote = valid_span(start, end, len(text))
    passage = containing_passage(store, record.doc_id, quote) if quote else None
    return render(request, "document.html", active="documents", doc=document_info(record),
                  segments=segments(reflow(text), quote, passage), quote=quote, passage=passage,
                  span_requested=start is not None or end is not None, n_chars=len(text))
