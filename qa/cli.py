"""The `qa` command: thin wrappers that build Settings and call the pipeline."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
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


def load_retriever(settings: Settings):
    """Open the index and the embedder it was built with (through the composition root)."""
    from .compose import Components

    return Components(settings).retriever()


def _progress_bar(desc: str):
    """A tqdm bar on a terminal (silent otherwise) and the two callbacks the indexer calls."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit="doc", desc=desc, disable=not sys.stderr.isatty())

    def start(total: int) -> None:
        bar.total = total
        bar.refresh()

    return bar, bar.update, start


def _print_report(report, settings: Settings, verb: str) -> None:
    from .compose import store_backend

    for skipped in report.skipped:
        typer.echo(f"warning: skipped {skipped.path}: {skipped.reason}", err=True)
    backend = store_backend(settings)  # where the index lives; nothing is opened here
    where = (settings.data_dir / "index" if backend is None
             else f"Milvus {backend.uri} (collections {backend.name}_*)")
    typer.echo(f"{verb} {report.documents} documents into {report.passages} passages in "
               f"{report.seconds:.1f} s ({report.embedded_documents} embedded, "
               f"{report.reused_documents} unchanged, {report.removed_documents} removed) "
               f"-> {where}")


def _changing_index(settings: Settings, paths: list[Path] | None, rebuild: bool, add: bool,
                    components=None):
    """Run one index change with the composition root's embedder, store and a progress bar."""
    from index.build import add_to_index, build_index

    from .compose import Components

    components = components or Components(settings)
    backend = components.store_backend()
    bar, progress, start = _progress_bar("adding" if add else "indexing")
    try:
        if add:
            return add_to_index(paths, settings.data_dir, components.embedder,
                                components.chunking, progress=progress, on_document=start,
                                lock_timeout_s=settings.index_lock_timeout_s, backend=backend,
                                ann=components.ann)
        return build_index(paths, settings.data_dir, components.embedder, components.chunking,
                           rebuild=rebuild, progress=progress, on_document=start,
                           lock_timeout_s=settings.index_lock_timeout_s, backend=backend,
                           ann=components.ann)
    finally:
        bar.close()


def _existing(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing and len(missing) == len(paths):
        fail(f"No such file or folder: {', '.join(missing)}. Give existing files or folders.")


@app.command("index")
def index_command(
    paths: list[Path] = typer.Argument(None, help="Files or folders the index must hold "
                                       "(default: the sources it records, or the seed corpus)."),
    rebuild: bool = typer.Option(False, "--rebuild", help="Re-embed everything from scratch."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Make the index hold exactly these documents: others are removed (`qa add` keeps them)."""
    from index.store import manifest_sources

    from .compose import Components

    try:
        settings = Settings.from_env(data_dir=data_dir)
        components = Components(settings)
        backend = components.store_backend()
        recorded = (backend.manifest_sources() if backend is not None
                    else manifest_sources(settings.data_dir))
        targets: list[Path] | None = list(paths) if paths else None
        if targets is None and not recorded:
            targets = [settings.seeds_dir]
        if targets:
            _existing(targets)
        report = _changing_index(settings, targets, rebuild, add=False, components=components)
    except UserError as exc:
        fail(str(exc))
    _print_report(report, settings, "Indexed")
    if report.removed:
        shown = ", ".join(report.removed[:10]) + (" ..." if len(report.removed) > 10 else "")
        typer.echo(f"Removed {len(report.removed)} documents that are not under the given paths "
                   f"({shown}): `qa index PATHS` makes the index hold exactly PATHS; "
                   f"`qa add PATHS` adds without removing.")


@app.command("add")
def add_command(
    paths: list[Path] = typer.Argument(..., help="Files or folders to add (or update)."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Add documents to the index, keeping the others; unchanged ones are not re-embedded."""
    try:
        settings = Settings.from_env(data_dir=data_dir)
        _existing(list(paths))
        report = _changing_index(settings, list(paths), False, add=True)
    except UserError as exc:
        fail(str(exc))
    for skipped in report.skipped:
        typer.echo(f"warning: skipped {skipped.path}: {skipped.reason}", err=True)
    typer.echo(f"Added {report.embedded_documents} documents ({report.reused_documents} "
               f"unchanged) in {report.seconds:.1f} s; the index holds {report.documents} "
               f"documents, {report.passages} passages."
               + (f" Embedded: {', '.join(report.embedded[:10])}" if report.embedded else ""))


@app.command("remove")
def remove_command(
    targets: list[str] = typer.Argument(..., help="Document ids (see `qa list`) or paths of "
                                        "files or folders."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Remove documents from the index (files removed from a source folder stay out)."""
    from index.build import remove_from_index

    from index.ann import AnnParams

    from .compose import store_backend

    try:
        settings = Settings.from_env(data_dir=data_dir)
        report = remove_from_index(list(targets), settings.data_dir,
                                   settings.index_lock_timeout_s,
                                   backend=store_backend(settings),
                                   ann=AnnParams.from_settings(settings))
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"Removed {report.removed_documents} documents ({', '.join(report.removed)}); "
               f"the index holds {report.documents} documents, {report.passages} passages.")


@app.command("list")
def list_command(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """List the indexed documents and the sources the index was built from."""
    from .compose import Components

    try:
        settings = Settings.from_env(data_dir=data_dir)
        store = Components(settings).open_store()
    except UserError as exc:
        fail(str(exc))
    records = sorted(store.list_documents(), key=lambda r: r.doc_id)
    if as_json:
        typer.echo(json.dumps({
            "generation": store.generation, "sources": list(store.config.sources),
            "excluded": list(store.config.excluded),
            "documents": [{"doc_id": r.doc_id, "title": r.title, "source": r.source,
                           "kind": r.kind, "passages": r.n_passages} for r in records]},
            ensure_ascii=False, indent=2))
        return
    typer.echo(f"{len(records)} documents, {store.count_passages()} passages "
               f"(index generation {store.generation})")
    for record in records:
        typer.echo(f"{record.doc_id}\t{record.n_passages:>4} passages\t{record.title}\t"
                   f"{record.source}")
    for source in store.config.sources:
        typer.echo(f"source: {source}")
    for excluded in store.config.excluded:
        typer.echo(f"excluded: {excluded}")


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


@app.command("ask")
def ask_command(
    question: str = typer.Argument(..., help="Your question about the documents."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of text."),
    backend: Optional[str] = typer.Option(None, help="embedded, ollama or openai (QA_BACKEND)."),
    model: Optional[str] = typer.Option(None, help="Model name or .gguf path (QA_MODEL)."),
    k: Optional[int] = typer.Option(None, "-k", help="Passages shown to the model (QA_TOP_K)."),
    mode: Optional[str] = typer.Option(None, help="hybrid, dense or bm25."),
    per_document: bool = typer.Option(False, "--by-document", help="Also show, per document, "
                                      "its position on the question with its quote."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Answer a question from the documents, streaming the model's draft, then the verified answer."""
    from .compose import load_assistant
    from dataclasses import replace

    from .render import print_answer, print_by_document

    try:
        settings = Settings.from_env(data_dir=data_dir, backend=backend, model=model, top_k=k,
                                     retrieval_mode=mode)
        assistant = load_assistant(settings)
        answer = None
        streaming = False
        for event in assistant.stream(question):
            if event.kind == "rewrite" and not as_json:
                typer.echo(f"(searching for: {event.data})")
            elif event.kind == "evidence" and not as_json:
                # Verified source words while the draft is written (the answer follows).
                quote = " ".join(event.data.quote.split())
                typer.secho(f"Found in {event.data.title}: “{quote}”", dim=True)
            elif event.kind == "token" and not as_json:
                if not streaming:
                    typer.secho("Draft: ", dim=True, nl=False)
                    streaming = True
                typer.secho(event.data, dim=True, nl=False)
            elif event.kind == "error":
                typer.echo(("\n" if streaming else "") + f"error: {event.data}", err=True)
            elif event.kind == "done":
                answer = event.data
        if streaming:
            typer.echo("\n")
        views = assistant.by_document(answer) if per_document else None
    except UserError as exc:
        fail(str(exc))
    if views is not None:
        answer = replace(answer, by_document=views)
    if as_json:
        typer.echo(json.dumps(answer.to_json(), ensure_ascii=False, indent=2))
    else:
        print_answer(answer)
        if views is not None:
            print_by_document(views)
    if answer.error:
        raise typer.Exit(2)


@app.command("serve")
def serve_command(
    host: Optional[str] = typer.Option(None, help="Address to listen on (QA_HOST)."),
    port: Optional[int] = typer.Option(None, help="Port to listen on (QA_PORT)."),
    backend: Optional[str] = typer.Option(None, help="embedded, ollama or openai (QA_BACKEND)."),
    model: Optional[str] = typer.Option(None, help="Model name or .gguf path (QA_MODEL)."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Serve the web UI, the JSON API and an OpenAI-compatible endpoint."""
    try:
        settings = Settings.from_env(host=host, port=port, backend=backend, model=model,
                                     data_dir=data_dir)
        from web.app import serve

        serve(settings)
    except UserError as exc:
        fail(str(exc))


@app.command("eval")
def eval_command(
    questions: Optional[Path] = typer.Argument(None, help="Question set (.jsonl); see README."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default: under the data "
                                       "dir); an existing run of the same setup is resumed."),
    compare: Optional[tuple[Path, Path]] = typer.Option(None, "--compare", help="Show two runs "
                                                        "side by side: --compare RUN_A RUN_B."),
    backend: Optional[str] = typer.Option(None, help="embedded, ollama or openai (QA_BACKEND)."),
    model: Optional[str] = typer.Option(None, help="Model name or .gguf path (QA_MODEL)."),
    k: Optional[int] = typer.Option(None, "-k", help="Passages shown to the model (QA_TOP_K)."),
    mode: Optional[str] = typer.Option(None, help="hybrid, dense or bm25."),
    judge: bool = typer.Option(False, "--judge", help="Also judge key facts with the model."),
    judge_backend: Optional[str] = typer.Option(None, "--judge-backend", help="Judge that grades "
                                                "citations, KIND[:MODEL] (default llm:qwen-1.5b)"
                                                "; pick one other than the answer's QA_JUDGE."),
    split: Optional[str] = typer.Option(None, "--split", help="Only questions whose 'split' is "
                                        "this: tune on 'tune', report on 'test'."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Run a question set and write results, a summary and a report with plots."""
    try:
        if compare:
            from eval.compare import compare_runs

            typer.echo(compare_runs(*compare))
            return
        if questions is None:
            fail("Give a question file (e.g. eval/seed_questions.jsonl) or --compare RUN_A RUN_B.")
        from eval.runner import run_eval

        settings = Settings.from_env(data_dir=data_dir, backend=backend, model=model, top_k=k,
                                     retrieval_mode=mode)
        run_dir = run_eval(questions, out, settings, judge=judge, judge_backend=judge_backend,
                           split=split)
    except UserError as exc:
        fail(str(exc))
    typer.echo(f"Report: {run_dir / 'report.html'}  (summary: {run_dir / 'summary.json'})")


@app.command("calibrate")
def calibrate_command(
    questions: Path = typer.Argument(..., help="Questions with 'answerable' (.jsonl), e.g. "
                                     "eval/seed_questions.jsonl."),
    split: Optional[str] = typer.Option(None, "--split", help="Only questions whose 'split' "
                                        "is this: calibrate on 'tune', report on 'test'."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the thresholds, store nothing."),
    data_dir: Optional[Path] = typer.Option(None, help="Where the index is kept (QA_DATA_DIR)."),
) -> None:
    """Choose the abstention thresholds for this index's embedder and judge, and store them
    with the index (QA_DATA_DIR/calibration.json)."""
    from eval.questions import load_questions

    from .calibration import calibrate, save
    from .compose import Components

    try:
        settings = Settings.from_env(data_dir=data_dir)
        chosen = [q for q in load_questions(questions) if split is None or q.split == split]
        if not any(q.answerable for q in chosen) or all(q.answerable for q in chosen):
            where = f" (split {split!r})" if split else ""
            fail(f"Calibration needs answerable and unanswerable questions; {questions}{where} "
                 f"has {sum(q.answerable for q in chosen)} answerable of {len(chosen)}: mark "
                 f"some with \"answerable\": false")
        # Measured without any stored thresholds (the judge is asked about every question).
        assistant = Components(replace(settings, calibration=False)).assistant()
        bar, _, _ = _progress_bar("questions")
        bar.total = len(chosen)
        result = calibrate(assistant, chosen, str(questions), split or "",
                           lambda done, total: bar.update())
        bar.close()
        typer.echo(result.summary())
        if not dry_run:
            typer.echo(f"stored in {save(settings.data_dir, result)}")
    except UserError as exc:
        fail(str(exc))


@app.command("check")
def check_command(
    pairs: Path = typer.Argument(..., help='Claim/evidence pairs (.jsonl): {"id", "claim", '
                                 '"evidence"} per line; evidence is a text or a list of texts.'),
    evaluate: bool = typer.Option(False, "--eval", help="Lines carry 'label': print precision, "
                                  "recall and F1 on 'supported', the confusion by kind, ms/claim."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the verdict lines here "
                                       "instead of standard output."),
    split: Optional[str] = typer.Option(None, "--split", help="Only lines whose 'split' field "
                                        "is this (e.g. tune or test)."),
    judge: Optional[str] = typer.Option(None, "--judge", help="llm, cross-encoder, ollama or "
                                        "openai (QA_JUDGE)."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="QA_JUDGE_MODEL."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="QA_JUDGE_THRESHOLD."),
    no_prefilter: bool = typer.Option(False, "--no-prefilter", help="Ask the judge about "
                                      "every claim, without the lexical pre-filter."),
) -> None:
    """Judge whether each claim is supported by its evidence: one JSON line per pair."""
    from eval.judge_check import format_report, load_pairs, run_judge, score
    from qa.judge import make_judge

    try:
        settings = Settings.from_env(judge=judge, judge_model=judge_model,
                                     judge_threshold=threshold,
                                     judge_prefilter=False if no_prefilter else None)
        loaded = load_pairs(pairs, split)
        support_judge = make_judge(settings)
        rows = []
        sink = out.open("w", encoding="utf-8") if out else None
        try:
            for row in run_judge(support_judge, loaded):
                rows.append(row)
                line = json.dumps({k: row[k] for k in row if k != "fields"}, ensure_ascii=False)
                if sink:
                    sink.write(line + "\n")
                elif not evaluate:
                    typer.echo(line)
        finally:
            if sink:
                sink.close()
        if evaluate:
            typer.echo(format_report(score(rows), support_judge.name))
    except UserError as exc:
        fail(str(exc))


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    app()
