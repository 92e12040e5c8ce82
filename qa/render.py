"""Plain-text rendering of an Answer for the terminal."""

from __future__ import annotations

import textwrap

import typer

from .contracts import Answer


def location(source: str, start: int, end: int, heading: str = "") -> str:
    """Where a quote lives, as a person would look for it."""
    where = f"{source} chars {start}-{end}"
    return f"{heading} · {where}" if heading else where


def print_answer(answer: Answer) -> None:
    """The verified answer, then each source with its exact quote."""
    if answer.standalone_question != answer.question:
        typer.echo(f"Question understood as: {answer.standalone_question}")
    typer.secho("Answer", bold=True)
    typer.echo(textwrap.fill(answer.answer, width=100) if answer.answer else "(no answer)")
    for note in answer.notes:
        if not note.startswith(("evidence:", "model draft:", "second draft:")):
            typer.secho(f"  note: {note}", dim=True)
    typer.echo()
    if answer.citations:
        typer.secho("Sources", bold=True)
        for citation in answer.citations:
            typer.echo(f"[{citation.n}] {citation.title} — "
                       f"{location(citation.source, citation.start, citation.end)}")
            quote = " ".join(citation.quote.split())
            typer.echo(textwrap.indent(textwrap.fill(f"“{quote}”", width=96), "    "))
    elif answer.passages:
        typer.secho("Related, but not an answer" if answer.abstained else "Passages", bold=True)
        for hit in answer.passages:
            typer.echo(f"[{hit.rank}] {hit.title} — "
                       f"{location(hit.source, hit.start, hit.end, hit.heading)}")
            typer.echo(textwrap.indent(textwrap.fill(" ".join(hit.text.split())[:300] + "…",
                                                     width=96), "    "))


def print_by_document(views) -> None:
    """Each document's position on the question, with the quote that backs it."""
    typer.echo()
    typer.secho("By document", bold=True)
    for view in views:
        typer.secho(f"{view.title} ({view.doc_id})", bold=view.addressed)
        typer.echo(textwrap.indent(textwrap.fill(view.statement, width=96), "    "))
        if view.citation is not None:
            typer.secho(textwrap.indent(location(view.citation.source, view.citation.start,
                                                 view.citation.end), "    "), dim=True)
