"""Changing the collection from the web: upload documents, delete one.

Uploads are saved under `<data dir>/uploads/` (the originals are kept there), checked by their
content rather than their declared type, and added with the same indexer, lock and store as
`qa add`; the server then serves the new index at once.

Who may write: with QA_API_TOKEN set, every upload and delete must carry
`Authorization: Bearer <token>` (401 otherwise). Without one, writes are open only on a server
that listens on a loopback address; `check_write_access` refuses to start a server on any other
address with uploads enabled (QA_UPLOADS=true) and no token.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import os
import re
import unicodedata
import zipfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from index.build import add_to_index, remove_from_index
from index.errors import UserError
from index.readers import SUPPORTED_NAMES, SUPPORTED_SUFFIXES
from qa.settings import Settings

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


def is_loopback_host(host: str) -> bool:
    """Whether a listen address reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    host = (host or "").strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # any other name may resolve to an outside address
        return False


def check_write_access(settings: Settings) -> None:
    """Refuse to serve the collection's writing endpoints to the network without a token."""
    if settings.uploads and not settings.api_token and not is_loopback_host(settings.host):
        raise UserError(f"Refusing to serve on {settings.host}: anyone who can reach it could "
                        "add and delete documents. Set QA_API_TOKEN=<a long secret> (clients "
                        "send it as 'Authorization: Bearer <token>'), or turn uploads off with "
                        "QA_UPLOADS=false, or listen on 127.0.0.1.")


def write_refusal(settings: Settings, authorization: str | None) -> tuple[int, str] | None:
    """(status, one-line message) when a request may not change the collection, else None."""
    if not settings.uploads:
        return 403, ("Adding and deleting documents is turned off on this server "
                     "(QA_UPLOADS=false).")
    token = settings.api_token
    if not token:
        if is_loopback_host(settings.host):
            return None
        return 403, ("Adding and deleting documents needs a token on a server reachable from "
                     "the network: set QA_API_TOKEN on the server.")
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, ("Adding or deleting documents needs the server's token: send "
                     "'Authorization: Bearer <QA_API_TOKEN>'.")
    if not hmac.compare_digest(given.strip().encode("latin-1", "replace"), token.encode()):
        return 401, "Wrong token: send the server's QA_API_TOKEN as 'Authorization: Bearer …'."
    return None


def _is_write(scope: Scope) -> bool:
    path, method = scope.get("path", ""), scope.get("method")
    return (method == "POST" and path == UPLOAD_ROUTE) or \
        (method == "DELETE" and path.startswith(UPLOAD_ROUTE + "/"))


class BodyLimitByRoute:
    """The app's small body limit everywhere, and room for `max_files` files on uploads.

    A write that may not happen (see `write_refusal`) is answered before its body is read, so
    an unauthorised client cannot make the server take in hundreds of megabytes.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, upload_bytes: int,
                 settings: Settings | None = None) -> None:
        self.small = BodySizeLimit(app, max_bytes)
        self.upload = BodySizeLimit(app, upload_bytes)
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_write = scope["type"] == "http" and _is_write(scope)
        if is_write and self.settings is not None:
            authorization = dict(scope["headers"]).get(b"authorization", b"")
            refusal = write_refusal(self.settings, authorization.decode("latin-1"))
            if refusal is not None:
                await _refuse(send, *refusal)
                return
        is_upload = is_write and scope.get("method") == "POST"
        await (self.upload if is_upload else self.small)(scope, receive, send)


def _auth_headers(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="documents"'} if status == 401 else {}


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in _auth_headers(status).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def safe_name(filename: str | None) -> str:
    """A file name that is only a name: no folders, no control characters, no leading dot."""
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", filename or "")[-1])
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().lstrip(".")
    stem, suffix = os.path.splitext(name)
    stem = stem.encode("utf-8")[:150].decode("utf-8", "ignore").strip() or "document"
    return stem + suffix.lower()


def _is_word_document(data: bytes) -> bool:
    """A zip archive (PK signature) that holds word/document.xml: what Word writes."""
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except (zipfile.BadZipFile, ValueError, OSError):
        return False


def sniff(name: str, data: bytes) -> str | None:
    """Why the content cannot be indexed as its name says, or None when it can."""
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        return f"unsupported file type '{suffix or name}': use {SUPPORTED_NAMES}"
    if not data.strip():
        return "the file is empty"
    if SUPPORTED_SUFFIXES[suffix] == "pdf":
        return None if data.startswith(b"%PDF-") else "not a PDF (it does not start with %PDF-)"
    if SUPPORTED_SUFFIXES[suffix] == "docx":
        return None if _is_word_document(data) else ("not a Word document (.docx is a zip "
                                                      "archive holding word/document.xml)")
    if data.startswith((b"%PDF-", b"PK\x03\x04", b"\x7fELF", b"\x89PNG", b"\xff\xd8\xff")):
        return "binary content (a PDF, archive or image), not text"
    if b"\x00" in data[:8192]:
        return "binary content (NUL bytes), not text"
    return None


def _writer_allowed(request: Request) -> None:
    # The middleware has already refused these before reading the body; this keeps the rule
    # with the routes for an app assembled without it.
    refusal = write_refusal(request.app.state.settings, request.headers.get("authorization"))
    if refusal is not None:
        raise HTTPException(status_code=refusal[0], detail=refusal[1],
                            headers=_auth_headers(refusal[0]) or None)


_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
WRITE_ERRORS = {
    401: {"description": "The server has a token (QA_API_TOKEN) and the request did not send "
                         "it as `Authorization: Bearer <token>`, or sent a wrong one.",
          "content": _ERROR},
    403: {"description": "Writing is turned off on this server (QA_UPLOADS=false), or the "
                         "server listens on a network address without a token.",
          "content": _ERROR},
}
AUTH_NOTE = (" When the server has a token (QA_API_TOKEN), send it as "
             "`Authorization: Bearer <token>`.")


def _unique_path(folder: Path, name: str, data: bytes) -> Path:
    """`name` in `folder`, or `stem-2.ext`, ... when a different file already has that name."""
    path, n = folder / name, 2
    while path.exists() and path.read_bytes() != data:
        path, n = folder / f"{Path(name).stem}-{n}{Path(name).suffix}", n + 1
    return path


@router.post("/documents", response_model=UploadResult, summary="Add documents",
             responses=WRITE_ERRORS,
             description=f"Multipart field `files`, one or more {SUPPORTED_NAMES} files. "
                         "Each file is added or refused on its own; refused files are listed "
                         "in `errors` with the reason." + AUTH_NOTE)
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
                              lock_timeout_s=settings.index_lock_timeout_s,
                              backend=components.store_backend(), ann=components.ann)
        for skipped in report.skipped:  # e.g. no text left after extraction
            reason = ("no text left after cleaning (markup and boilerplate removed): nothing "
                      "to index" if skipped.reason == "contains no text" else skipped.reason)
            errors.append({"filename": Path(skipped.path).name, "message": reason})
            Path(skipped.path).unlink(missing_ok=True)
        store = live.reload_now().retriever.store
        for record in store.list_documents():
            if record.source in saved:
                added.append({"doc_id": record.doc_id, "title": record.title,
                              "filename": saved[record.source].name,
                              "n_passages": record.n_passages})
    return {"documents": added, "errors": errors}


@router.delete("/documents/{doc_id}", response_model=DeleteResult, summary="Delete a document",
               responses=WRITE_ERRORS, description="Removes the document from the index (and "
               "its uploaded original)." + AUTH_NOTE)
def delete_document(request: Request, doc_id: str) -> dict:
    _writer_allowed(request)
    settings = request.app.state.settings
    live = request.app.state.live
    record = live.current().retriever.store.get_document(doc_id)
    if record is None:
        raise HTTPException(status_code=404, detail="No document with this id in the index.")
    report = remove_from_index([doc_id], Path(settings.data_dir),
                               settings.index_lock_timeout_s,
                               backend=live.components.store_backend(),
                               ann=live.components.ann)
    uploads = os.path.abspath(Path(settings.data_dir) / "uploads")
    if record.source.startswith(uploads + os.sep):  # our copy of an upload goes with it
        Path(record.source).unlink(missing_ok=True)
    live.reload_now()
    return {"removed": doc_id, "documents": report.documents}
