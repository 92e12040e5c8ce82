"""The `qa` command: thin wrappers that build Settings and call the pipeline."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from index.errors import UserError

from .settings import Settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Ask questions about your documents; every answer cites exact quotes.")


def fail(message: str, code: int = 1) -> None:
    """Print a one-line error and exit non-zero."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _load_embedder(settings: Settings):
    from index.embedding import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(settings.embedding_model)


def load_retriever(settings: Settings):
    """Open the index and the embedder it was built with."""
    from index.store import open_index

    from .retrieve import make_retriever

    return make_retriever(open_index(settings.data_dir), _load_embedder(settings), settings)


@app.command("index")
def index_command(
    paths: list[Path] = typer.Argument(None, help="Files or folders (default: the seed corpus)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Re-embed everything from scratch."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Index documents (.txt, .md, .html, .pdf); unchanged documents are not re-embedded."""
    from tqdm import tqdm

    from index.build import build_index
    from index.chunking import ChunkingParams

    try:
        settings = Settings.from_env(data_dir=data_dir)
        targets = list(paths) if paths else [settings.seeds_dir]
        missing = [str(p) for p in targets if not p.exists()]
        if missing and len(missing) == len(targets):
            fail(f"No such file or folder: {', '.join(missing)}. Give existing files or folders.")
        embedder = _load_embedder(settings)
        params = ChunkingParams(settings.chunk_max_tokens, settings.chunk_overlap_tokens)
        bar = tqdm(total=0, unit="doc", desc="indexing", disable=not sys.stderr.isatty())

        def start(total: int) -> None:
            bar.total = total
            bar.refresh()

        report = build_index(targets, settings.data_dir, embedder, params, rebuild=rebuild,
                             progress=bar.update, on_document=start)
        bar.close()
    except UserError as exc:
        fail(str(exc))
    for skipped in report.skipped:
        typer.echo(f"warning: skipped {skipped.path}: {skipped.reason}", err=True)
    typer.echo(f"Indexed {report.documents} documents into {report.passages} passages in "
               f"{report.seconds:.1f} s ({report.embedded_documents} embedded, "
               f"{report.reused_documents} unchanged, {report.removed_documents} removed) "
               f"-> {settings.data_dir / 'index'}")


@app.command("search")
def search_command(
    question: str = typer.Argument(..., help="What to look for."),
    k: int = typer.Option(5, "-k", help="How many passages to return."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object with a `hits` list."),
    mode: Optional[str] = typer.Option(None, help="hybrid, dense or bm25."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Show the passages that best match a question, with their exact source spans."""
    from .retrieve import check_question

    try:
        settings = Settings.from_env(data_dir=data_dir, retrieval_mode=mode, top_k=k)
        question = check_question(question, settings.max_question_chars)
        hits = load_retriever(settings).search(question, settings.top_k, settings.retrieval_mode)
    except UserError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps({"question": question, "mode": settings.retrieval_mode,
                               "hits": [hit.to_json() for hit in hits]}, ensure_ascii=False,
                              indent=2))
        return
    if not hits:
        typer.echo("No passage matches the question.")
    for hit in hits:
        where = f"{hit.source} [{hit.start}:{hit.end}]"
        section = f" — {hit.heading}" if hit.heading else ""
        typer.echo(f"{hit.rank}. {hit.title}{section}  ({where}, score {hit.score:.4f})")
        typer.echo("   " + " ".join(hit.text.split())[:400])
        typer.echo()


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s")
    app()
