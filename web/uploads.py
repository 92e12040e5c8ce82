"""Changing the collection from the web: upload documents, delete one.

Uploads are saved under `<data dir>/uploads/` (the originals are kept there), checked by their
content rather than their declared type, and added with the same indexer, lock and store as
`qa add`; the server then serves the new index at once.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from index.build import add_to_index, remove_from_index
from index.readers import SUPPORTED_SUFFIXES

from .limits import BodySizeLimit

router = APIRouter(prefix="/api", tags=["documents"])
UPLOAD_ROUTE = "/api/documents"
MULTIPART_OVERHEAD = 64 * 1024


class AddedDocument(BaseModel):
    doc_id: str
    title: str
    filename: str
    n_passages: int


class RejectedFile(BaseModel):
    filename: str
    message: str


class UploadResult(BaseModel):
    documents: list[AddedDocument]
    errors: list[RejectedFile]


class DeleteResult(BaseModel):
    removed: str
    documents: int


class BodyLimitByRoute:
    """The app's small body limit everywhere, and room for `max_files` files on uploads."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int) -> None:
        self.small = BodySizeLimit(app, max_bytes)
        self.upload = BodySizeLimit(app, upload_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_upload = scope["type"] == "http" and scope.get("method") == "POST" \
            and scope.get("path") == UPLOAD_ROUTE
        await (self.upload if is_upload else self.small)(scope, receive, send)


def safe_name(filename: str | None) -> str:
    """A file name that is only a name: no folders, no control characters, no leading dot."""
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", filename or "")[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    stem, suffix = os.path.splitext(name)
    stem = stem.encode("utf-8")[:150].decode("utf-8", "ignore").strip() or "document"
    return stem + suffix.lower()


def sniff(name: str, data: bytes) -> str | None:
    """Why the content cannot be indexed as its name says, or None when it can."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type '{suffix or name}': use .txt, .md, .html or .pdf"
    if not data.strip():
        return "the file is empty"
    if SUPPORTED_SUFFIXES[suffix] == "pdf":
        return None if data.startswith(b"%PDF-") else "not a PDF (it does not start with %PDF-)"
    if data.startswith((b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"\x89PNG", b"\xff\xd8\xff")):
        return "binary content (a PDF, archive or image), not text"
    if b"\x00" in data[:8192]:
        return "binary content (NUL bytes), not text"
    return None


def _is_loopback(request: Request) -> bool:
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except (AttributeError, ValueError):
        return False


def _writer_allowed(request: Request) -> None:
    # Until tokens guard the writing endpoints, only this machine may change the collection.
    if not _is_loopback(request):
        raise HTTPException(status_code=403, detail="Documents can be added or deleted only "
                            "from this machine: use the server's loopback address.")


def _unique_path(folder: Path, name: str, data: bytes) -> Path:
    """`name` in `folder`, or `stem-2.ext`, ... when a different file already has that name."""
    path, n = folder / name, 2
    while path.exists() and path.read_bytes() != data:
        path, n = folder / f"{Path(name).stem}-{n}{Path(name).suffix}", n + 1
    return path


@router.post("/documents", response_model=UploadResult, summary="Add documents",
             description="Multipart field `files`, one or more .txt, .md, .html or .pdf files. "
                         "Each file is added or refused on its own; refused files are listed "
                         "in `errors` with the reason.")
def upload_documents(request: Request,
                     files: Annotated[list[UploadFile], File(description="The documents.")]
                     ) -> dict:
    _writer_allowed(request)
    settings = request.app.state.settings
    live = request.app.state.live
    if len(files) > settings.upload_max_files:
        raise HTTPException(status_code=413, detail=f"{len(files)} files sent; the limit is "
                            f"{settings.upload_max_files} (QA_UPLOAD_MAX_FILES).")
    folder = Path(settings.data_dir) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    saved: dict[str, Path] = {}
    errors: list[dict] = []
    for upload in files:
        name = safe_name(upload.filename)
        data = upload.file.read(settings.upload_max_bytes + 1)
        problem = (f"larger than {settings.upload_max_bytes // 1_000_000} MB "
                   f"(QA_UPLOAD_MAX_BYTES)" if len(data) > settings.upload_max_bytes
                   else sniff(name, data))
        if problem:
            errors.append({"filename": name, "message": problem})
            continue
        path = _unique_path(folder, name, data)
        temp = path.with_name(f".{path.name}.part")
        temp.write_bytes(data)
        os.replace(temp, path)
        saved[os.path.abspath(path)] = path
    added: list[dict] = []
    if saved:
        components = live.components
        report = add_to_index(list(saved.values()), Path(settings.data_dir),
                              components.embedder, components.chunking,
                              lock_timeout_s=settings.index_lock_timeout_s)
        for skipped in report.skipped:  # e.g. no text left after extraction
            errors.append({"filename": Path(skipped.path).name, "message": skipped.reason})
            Path(skipped.path).unlink(missing_ok=True)
        store = live.reload_now().retriever.store
        for record in store.list_documents():
            if record.source in saved:
                added.append({"doc_id": record.doc_id, "title": record.title,
                              "filename": saved[record.source].name,
                              "n_passages": record.n_passages})
    return {"documents": added, "errors": errors}


@router.delete("/documents/{doc_id}", response_model=DeleteResult, summary="Delete a document")
def delete_document(request: Request, doc_id: str) -> dict:
    _writer_allowed(request)
    settings = request.app.state.settings
    live = request.app.state.live
    record = live.current().retriever.store.get_document(doc_id)
    if record is None:
        raise HTTPException(status_code=404, detail="No document with this id in the index.")
    report = remove_from_index([doc_id], Path(settings.data_dir),
                               settings.index_lock_timeout_s)
    uploads = os.path.abspath(Path(settings.data_dir) / "uploads")
    if record.source.startswith(uploads + os.sep):  # our copy of an upload goes with it
        Path(record.source).unlink(missing_ok=True)
    live.reload_now()
    return {"removed": doc_id, "documents": report.documents}
