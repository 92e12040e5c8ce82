"""Read .txt, .md, .html, .pdf and .docx files (and folders of them) into Documents."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .contracts import Document

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown",
                      ".html": "html", ".htm": "html", ".pdf": "pdf", ".docx": "docx"}
SUPPORTED_NAMES = ".txt, .md, .html, .pdf or .docx"


@dataclass(frozen=True)
class Skipped:
    """A file that was not indexed, with the reason shown to the user."""

    path: str
    reason: str


def content_hash(text: str) -> str:
    """Stable hash of a document's text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_doc_id(path: Path) -> str:
    """A filesystem-safe id from the file name that keeps its letters and digits in any script.

    `my file ünï 日本.txt` becomes `my-file-ünï-日本`; everything but letters, marks, digits,
    `_`, `.` and `-` becomes `-`. Capped at 150 UTF-8 bytes so `texts/<id>.txt` stays a legal
    file name; callers make ids unique (see index/build.py).
    """
    stem = unicodedata.normalize("NFC", path.stem)
    kept = "".join(c if c in "_.-" or unicodedata.category(c)[0] in "LMN" else "\0" for c in stem)
    stem = re.sub("\0+", "-", kept).strip("-.") or "document"
    return stem.encode("utf-8")[:150].decode("utf-8", "ignore").rstrip("-.") or "document"


def find_files(paths: list[Path]) -> tuple[list[Path], list[Skipped]]:
    """Expand folders into supported files; report paths that cannot be used."""
    files: list[Path] = []
    skipped: list[Skipped] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                skipped.append(Skipped(str(path), f"folder holds no {SUPPORTED_NAMES} files"))
            files.extend(found)
        elif path.is_file():
            if path.suffix.lower() in SUPPORTED_SUFFIXES:
                files.append(path)
            else:
                skipped.append(Skipped(str(path), f"unsupported file type '{path.suffix}' "
                                                   f"(use {SUPPORTED_NAMES})"))
        else:
            skipped.append(Skipped(str(path), "no such file or folder"))
    return files, skipped


def _decode_text(data: bytes) -> str:
    """Decode bytes as text, refusing binary content instead of producing garbage."""
    if b"\x00" in data[:8192]:
        raise ValueError("looks binary (contains NUL bytes), not text")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("cannot be decoded as UTF-8 or Windows-1252 text")


_BLOCK_TAGS = ("p", "div", "section", "article", "li", "h1", "h2", "h3", "h4", "h5", "h6",
               "blockquote", "pre", "tr", "br", "td", "th", "dd", "dt", "figcaption")


def _html_to_text(html: str) -> tuple[str, str]:
    """Main text of an HTML page, one block per paragraph, and its <title>."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = title_node.text(strip=True) if title_node else ""
    tree.strip_tags(["script", "style", "noscript", "nav", "header", "footer", "aside",
                     "form", "svg", "iframe", "template"])
    root = tree.css_first("article") or tree.css_first("main") or tree.body or tree.root
    if root is None:
        return "", title
    blocks: list[str] = []
    for node in root.traverse(include_text=False):
        if node.tag in ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "blockquote", "pre",
                        "td", "th", "dd", "dt", "figcaption"):
            # Skip nodes nested in another captured block so text is not repeated.
            parent = node.parent
            nested = False
            while parent is not None and parent is not root:
                if parent.tag in ("p", "li", "blockquote", "pre", "td", "th", "dd", "dt"):
                    nested = True
                    break
                parent = parent.parent
            if nested:
                continue
            text = re.sub(r"\s+", " ", node.text(separator=" ")).strip()
            if text:
                prefix = "- " if node.tag == "li" else ""
                blocks.append(prefix + text)
    if not blocks:  # a page without block markup: take all its text
        text = re.sub(r"[ \t]+", " ", root.text(separator="\n"))
        blocks = [line.strip() for line in text.splitlines() if line.strip()]
    return "\n\n".join(blocks), title


def _pdf_to_text(path: Path) -> tuple[str, list[int]]:
    """Text of a PDF, page by page; returns the text and the offset where each page starts."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    parts: list[str] = []
    page_starts: list[int] = []
    offset = 0
    for page in reader.pages:
        page_text = (page.extract_text() or "").strip("\n")
        page_starts.append(offset)
        parts.append(page_text)
        offset += len(page_text) + 2
    return "\n\n".join(parts), page_starts


def _docx_to_text(path: Path) -> tuple[str, str]:
    """Text of a Word document in reading order, one block per paragraph (headings kept as
    text, table rows as their cells joined by " | "), and its title."""
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks: list[str] = []
    title = (document.core_properties.title or "").strip()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            for row in item.rows:
                cells: list[str] = []
                for cell in row.cells:  # a merged cell is returned once per grid column
                    text = re.sub(r"\s+", " ", cell.text).strip()
                    if text and (not cells or cells[-1] != text):
                        cells.append(text)
                if cells:
                    blocks.append(" | ".join(cells))
            continue
        text = re.sub(r"[ \t\u00a0]+", " ", item.text).strip()
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        if not title and (style == "Title" or style.startswith("Heading")):
            title = text
        blocks.append(text)
    return "\n\n".join(blocks), title


def _first_title_line(text: str) -> str:
    """Fallback title: the first short non-empty line of the text."""
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip().strip("*_").strip()
        if 3 <= len(line) <= 150 and re.search(r"[A-Za-z]", line):
            return line
    return ""


def read_document(path: Path, doc_id: str | None = None) -> Document:
    """Read one supported file; raises ValueError with a user-facing reason when it cannot."""
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"unsupported file type '{path.suffix}'")
    meta: dict = {}
    title = ""
    try:
        if kind == "pdf":
            text, page_starts = _pdf_to_text(path)
            meta["page_starts"] = page_starts
        elif kind == "docx":
            text, title = _docx_to_text(path)
        else:
            raw = _decode_text(path.read_bytes())
            if kind == "html":
                text, title = _html_to_text(raw)
            else:
                text = raw
    except ValueError:
        raise
    except Exception as exc:  # pypdf, python-docx and parsers raise many types on damaged files
        raise ValueError(f"cannot be read ({type(exc).__name__}: {exc})") from exc
    if not text.strip():
        raise ValueError("contains no text")
    return Document(doc_id=doc_id or make_doc_id(path), source=str(path),
                    title=title or _first_title_line(text) or path.stem,
                    text=text, content_hash=content_hash(text), kind=kind, meta=meta)


def read_documents(paths: list[Path]) -> tuple[list[Document], list[Skipped]]:
    """Read every supported file under `paths`; unreadable files are skipped with a reason."""
    files, skipped = find_files(paths)
    documents: list[Document] = []
    used_ids: set[str] = set()
    seen: set[Path] = set()
    for path in files:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        doc_id = make_doc_id(path)
        if doc_id in used_ids:  # same file name in two folders: keep both, distinctly
            doc_id = f"{doc_id}-{hashlib.sha1(str(resolved).encode()).hexdigest()[:6]}"
        try:
            documents.append(read_document(path, doc_id))
            used_ids.add(doc_id)
        except ValueError as exc:
            skipped.append(Skipped(str(path), str(exc)))
    return documents, skipped


def iter_lines(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every line of `text`, without its line break."""
    start = 0
    for match in re.finditer(r"\r\n|\n|\r", text):
        yield start, match.start()
        start = match.end()
    yield start, len(text)
