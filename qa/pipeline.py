"""Where a question becomes an answer: retrieve, check the evidence, generate, verify, fall back.

`Assistant.stream` is the one code path: the CLI prints its events, the web layer serialises
them, and the eval runner keeps the final Answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace


from index.chunking import normalize_for_search
from index.errors import UserError
from index.store_protocol import DocumentRecord

from .abstain import EvidenceSignal, evidence_signal
from .backends.base import BackendError, GenerationOptions, Generator, Prompt
from .by_document import by_document
from .citations import citations_of, copies_its_quote, speaks_for_the_source, verify
from .judge import Claim, SupportJudge
from .memo import BatchMemo
from .judge.answerability import answerability_for, remembered
from .judge.base import AnswerabilityJudge
from .contracts import Answer, AnswerSentence, DocumentView, Event, Hit, Turn
from .extractive import (as_quotation, bare_answer, extractive_answer, rank_evidence,
                         select_evidence)
from .followup import Rewriter, make_rewriter, standalone_question
from .diversify import is_comparison, round_robin
from .named_sources import named_documents, source_names, without_names
from .overlap import merge_overlapping, with_list_bodies
from .prompt import NOT_IN_DOCUMENTS, FittedPrompt, fit_prompt, make_repair_prompt
from .retrieve import Retriever, check_question
from .settings import Settings

# Sentence embeddings kept by score_sentences (384 floats each with the default embedder).
VECTORS_KEPT = 4096
# Questions whose named sources are remembered (see named_sources).
QUESTIONS_KEPT = 256
# Evidence sentences a draft restates (QA_DRAFT_FROM=evidence, and the repair): the best few
# by rank_evidence.
EVIDENCE_SENTENCES = 3
ABSTAIN_TEXT = ("The documents don't say. None of the indexed documents answers this question; "
                "the passages below are related, but not an answer.")
_REFUSAL = re.compile(r"documents? (?:do|does) not (?:say|answer|mention)|not (?:mentioned|stated)"
                      r" in the (?:passages|documents)|no information", re.IGNORECASE)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _were(n: int) -> str:
    return "was" if n == 1 else "were"


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


class Assistant:
    """A loaded retriever plus a generator, created once and asked many questions."""

    def __init__(self, settings: Settings, retriever: Retriever,
                 generator_factory: Callable[[], Generator],
                 judge_factory: Callable[[], SupportJudge] | None = None,
                 rewriter: Rewriter | None = None,
                 answerability: AnswerabilityJudge | None = None) -> None:
        self.settings = settings
        self.retriever = retriever
        self._generator_factory = generator_factory
        self._generator: Generator | None = None
        self._judge_factory = judge_factory or (lambda: _default_judge(settings))
        self._judge: SupportJudge | None = None
        # Does any evidence sentence answer the question? By default the judge's own model.
        self._answerability = remembered(answerability)
        # Follow-ups: a model's standalone rewrite when it keeps the user's words (QA_FOLLOWUP_MODEL).
        self._rewriter = rewriter or make_rewriter(settings, lambda: self.generator)
        self._vectors: BatchMemo[str, object] = BatchMemo(VECTORS_KEPT)
        # The documents each question names, per version of the collection: looked up once per
        # answer, not at every ranking (a pass over every document's metadata).
        self._named: BatchMemo[tuple, tuple[DocumentRecord, ...]] = BatchMemo(QUESTIONS_KEPT)

    @property
    def generator(self) -> Generator:
        """Created on first use, so a broken backend never blocks retrieval."""
        if self._generator is None:
            self._generator = self._generator_factory()
        return self._generator

    @property
    def judge(self) -> SupportJudge:
        """The support judge, created on first use (it may load a model)."""
        if self._judge is None:
            self._judge = self._judge_factory()
        return self._judge

    def backend_label(self) -> tuple[str, str]:
        """Backend and model names, without loading a model just to name it."""
        if self._generator is not None:
            return self._generator.backend, self._generator.model
        from .backends.embedded import DEFAULT_MODEL

        default_model = {"embedded": DEFAULT_MODEL, "ollama": "llama3.2", "openai": "default"}
        return self.settings.backend, self.settings.model or default_model[self.settings.backend]

    def score_sentences(self, question: str, sentences: list[str]) -> list[float]:
        """Cosine similarity of each sentence to the question's topic (see `topic`)."""
        # Each text embedded once: one question ranks the same passage sentences for
        # abstention, the prompt and the quotes (~0.3 s a time on 2 cores).
        embed = self.retriever.embedder.embed
        vectors = self._vectors.get_many([normalize_for_search(self.topic(question))]
                                         + list(sentences), lambda missing: list(embed(missing)))
        return [float(v @ vectors[0]) for v in vectors[1:]]

    def ask(self, question: str, history: Sequence[Turn] = ()) -> Answer:
        """Answer a question and return the final Answer (the stream, consumed)."""
        answer = None
        for event in self.stream(question, history):
            if event.kind == "done":
                answer = event.data
        assert answer is not None  # stream always ends with "done"
        return answer

    def stream(self, question: str, history: Sequence[Turn] = ()) -> Iterator[Event]:
        """Events: rewrite?, passages, evidence?, token*, error?, done(Answer). Bad questions
        raise UserError."""
        settings = self.settings
        started = time.perf_counter()
        question = check_question(question, settings.max_question_chars)
        standalone = standalone_question(question, history, self._rewriter)
        if standalone != question:
            yield Event("rewrite", standalone)
        # Overlapping neighbours merged: no sentence is shown (or quoted) twice.
        named = self.named_sources(standalone)
        hits = self.passages_for(standalone, named)
        # Quotes spread over the documents when the question compares them or names several.
        spread = is_comparison(standalone) or len(named) > 1
        signal = self._evidence_signal(standalone, hits)
        retrieval_ms = _ms(time.perf_counter() - started)
        yield Event("passages", hits)
        backend, model = self.backend_label()
        base = Answer(question=question, standalone_question=standalone, answer="",
                      abstained=False, citations=(), passages=tuple(hits), backend=backend,
                      model=model, timings={"retrieval_ms": retrieval_ms},
                      notes=(f"evidence: {signal.to_json()}",) + _named_note(named, hits))

        first_quote_s: float | None = None

        def finish(answer: Answer, first_token_s: float | None = None) -> Event:
            total_s = time.perf_counter() - started
            timings = {"retrieval_ms": retrieval_ms,
                       "first_token_ms": _ms(first_token_s) if first_token_s else None,
                       # The first verified text the reader sees: the early quote, else the answer.
                       "first_verified_ms": _ms(total_s if first_quote_s is None
                                                else first_quote_s),
                       "judge_ms": answer.timings.get("judge_ms"),
                       "total_ms": _ms(total_s)}
            return Event("done", replace(answer, timings=timings))

        if not hits or signal.should_abstain(settings.abstain_threshold):
            yield finish(self._abstain(base, signal))
            return
        if signal.answering is not None:
            # The source sentence the abstention check judged to answer the question, shown while
            # the model writes and its draft is checked (seconds later on 2 cores): the reader
            # gets verified words at once instead of an unverified draft alone.
            first_quote_s = time.perf_counter() - started
            yield Event("evidence", signal.answering.as_citation())
        evidence_first = settings.draft_from == "evidence"

        try:
            generator = self.generator
            backend, model = generator.backend, generator.model
            # The best evidence sentences only: a short prompt a small model reads in a
            # fraction of the time and stays closer to (every sentence is still judged).
            from_evidence = (self._evidence_prompt(standalone, hits, spread) if evidence_first
                             else None)
            evidence_first = from_evidence is not None
            if from_evidence is not None:
                fitted = FittedPrompt(from_evidence, tuple(hits), 0, 0)
            else:
                fitted = fit_prompt(standalone, hits, generator, settings.max_answer_tokens)
            options = GenerationOptions(max_tokens=settings.max_answer_tokens,
                                        temperature=settings.temperature, seed=settings.seed,
                                        stop=("\nQuestion:", "\n\n\n", "Passages:"))
            pieces: list[str] = []
            first_token_s = None
            stream = generator.generate(fitted.prompt, options)
            try:
                for piece in stream:
                    if first_token_s is None:
                        first_token_s = time.perf_counter() - started
                    pieces.append(piece)
                    yield Event("token", piece)
            finally:
                # A consumer that stops early (a browser that left) frees the model at once.
                close = getattr(stream, "close", None)
                if close:
                    close()
        except BackendError as exc:
            yield Event("error", str(exc))
            fallback = self._from_evidence(replace(base, error=str(exc)), standalone, hits,
                                           spread)
            yield finish(fallback)
            return

        base = replace(base, backend=backend, model=model, passages=fitted.hits,
                       dropped_passages=fitted.dropped,
                       notes=base.notes + ((f"{fitted.dropped} lower-ranked passages left out "
                                            f"to fit the model's context",) if fitted.dropped else ()))
        yield finish(self._verified(base, "".join(pieces), standalone, fitted.hits, spread,
                                    evidence_first), first_token_s)

    def warm_up(self) -> None:
        """Load the models and let the judges read their fixed instructions (worked examples
        that llama.cpp then keeps cached), so the first question is answered as fast as the
        next: cold, the first answer took 69.7 s against 13.7 s after warming up (which took
        51 s; bench/bench_warm_up.py). A backend that fails is left for the first question to
        report."""
        sample = "The new bridge over the river opened in May after two years of work."
        try:
            self.score_sentences("When did the new bridge open?", [sample])
            self.generator  # noqa: B018 - loading is the point
            self.judge.judge([Claim("The bridge opened in May.", (sample,))])
            check = self._load_answerability()
            if check is not None:
                check.answer_scores("When did the new bridge open?", [sample])
        except (BackendError, UserError):
            pass

    def named_sources(self, question: str) -> tuple[DocumentRecord, ...]:
        """The documents the question names by author or publisher (see qa/named_sources.py)."""
        store = self.retriever.store

        def look_up(keys: list[tuple]) -> list[tuple[DocumentRecord, ...]]:
            records = store.list_documents()
            found = []
            for *_, asked in keys:
                named = set(named_documents(asked, ((r.doc_id, r.meta) for r in records)))
                found.append(tuple(r for r in records if r.doc_id in named))
            return found

        return self._named.get_many([(id(store), store.generation, question)], look_up)[0]

    def topic(self, question: str) -> str:
        """What passages and sentences are matched against: the question without the names of
        the sources it names ("… according to Okafor?"), whose documents are chosen by name."""
        names = [name for r in self.named_sources(question) for name in source_names(r.meta)]
        return without_names(question, names)

    def passages_for(self, question: str,
                     named: Sequence[DocumentRecord] | None = None) -> list[Hit]:
        """The passages the model is shown: the top k, spread over the documents for comparison
        questions (every side), with overlapping neighbours merged (no sentence twice).

        A question that names documents by author or publisher gets passages from those
        documents only, each named document's best first, searched by the question's `topic`.
        `named` is those documents when the caller has looked them up already.
        """
        k, mode = self.settings.top_k, self.settings.retrieval_mode
        named = self.named_sources(question) if named is None else named
        named_ids = {r.doc_id for r in named}
        hits: list[Hit] = []
        if named_ids:
            # A wide pool, so a named document's passages are found even when others outrank it.
            pool = self.retriever.search(self.topic(question),
                                         max(self.settings.candidates, 20 * k), mode)
            hits = round_robin([hit for hit in pool if hit.doc_id in named_ids], k)
        if not hits and is_comparison(question):
            hits = round_robin(self.retriever.search(question, 3 * k, mode), k)
        if not hits:
            hits = self.retriever.search(question, k, mode)
        # A list's introduction comes with its list (see with_list_bodies).
        return with_list_bodies(merge_overlapping(hits), self.retriever.store)

    def by_document(self, answer: Answer, depth: int = 10) -> tuple[DocumentView, ...]:
        """Each document's position on the answer's question, with its quote (see by_document)."""
        question = answer.standalone_question
        check = self._answerability
        # With a judge, a wide pool: a document that words things differently still gets asked.
        wide = max(depth, self.settings.top_k) if check is None else max(
            depth, self.settings.candidates)
        pool = self.retriever.search(question, wide, self.settings.retrieval_mode)
        documents = [(r.doc_id, r.title) for r in self.retriever.store.list_documents()]
        if check is not None:
            try:
                return by_document(question, answer, pool, documents, self.score_sentences,
                                   depth, answers=(check.answer_scores, check.threshold))
            except BackendError:
                pool = pool[:max(depth, self.settings.top_k)]
        return by_document(question, answer, pool, documents, self.score_sentences, depth)

    def _evidence_signal(self, question: str, hits: Sequence[Hit],
                         floor: float | None = None) -> EvidenceSignal:
        """Similarity and answerability (asked only above the floor, and only until a sentence
        is judged to answer); a judge that fails leaves the similarity alone to decide (the
        model's answer is still verified sentence by sentence). With an explicit `floor`
        (calibration), every sentence is asked, to measure the best score."""
        until_answered = floor is None
        floor = self.settings.abstain_threshold if floor is None else floor
        try:
            self._load_answerability()
            return evidence_signal(question, self.retriever, hits, floor, self.score_sentences,
                                   self._answerability, until_answered)
        except BackendError:
            return evidence_signal(question, self.retriever, hits, floor, self.score_sentences,
                                   None)

    def _load_answerability(self) -> AnswerabilityJudge | None:
        """The answerability judge, created on first use (it may load a model)."""
        if self._answerability is None:
            self._answerability = remembered(answerability_for(self.judge, self.settings))
        return self._answerability

    @property
    def answerability_name(self) -> str:
        """The answerability judge in use ("none" when only the similarity floor decides)."""
        try:
            check = self._load_answerability()
        except BackendError:
            return "none"
        return check.name if check is not None else "none"

    def measure_evidence(self, question: str) -> EvidenceSignal:
        """Both abstention signals for a question, the judge asked whatever the similarity
        (for `qa calibrate`)."""
        return self._evidence_signal(question, self.passages_for(question), float("-inf"))

    def _abstain(self, base: Answer, signal: EvidenceSignal) -> Answer:
        if signal.missing:
            reason = f"no retrieved sentence holds what the question asks for ({signal.missing})"
        elif signal.best_similarity < self.settings.abstain_threshold:
            reason = (f"no passage is close to the question (similarity "
                      f"{signal.best_similarity:.2f} < {self.settings.abstain_threshold})")
        else:
            reason = (f"no retrieved sentence answers the question (best answerability "
                      f"{signal.best_answer_score:.2f} < {signal.answer_threshold})")
        return replace(base, answer=ABSTAIN_TEXT, abstained=True, mode="abstained",
                       notes=base.notes + (f"abstained: {reason}",))

    def _from_evidence(self, base: Answer, question: str, hits: Sequence[Hit],
                       spread: bool) -> Answer:
        check = self._answerability
        # A draft that is only a name, number or date ("Lindqvist [2].") leads the quotes when
        # one of them holds it word for word.
        lead = bare_answer(base.draft or "", question)
        named = frozenset(r.doc_id for r in self.named_sources(question))
        try:
            # Quotes after the best one only when the answerability judge says they answer (or
            # they are the best of a source the question names).
            text, sentences, citations = extractive_answer(
                question, hits, self.score_sentences, spread=spread,
                answers=(check.answer_scores, check.threshold) if check is not None else None,
                lead=lead, named=named)
        except BackendError:
            text, sentences, citations = extractive_answer(question, hits, self.score_sentences,
                                                           spread=spread, lead=lead)
        why = ("the model backend failed" if base.error else
               "nothing the model wrote was supported by the passages")
        notes = (f"answered with quotes from the passages: {why}",)
        if lead and sentences and not sentences[0].text.startswith("“"):  # quotes all do
            notes += (f"the model's bare answer “{sentences[0].claim}” leads the quote that "
                      f"contains it",)
        return replace(base, answer=text, sentences=sentences, citations=citations,
                       mode="extractive", notes=base.notes + notes)

    @staticmethod
    def _refused(raw: str) -> bool:
        """The model wrote that the passages do not answer."""
        return bool(_REFUSAL.search(raw)) or raw.strip().startswith(NOT_IN_DOCUMENTS[:17])

    def _evidence_prompt(self, question: str, hits: Sequence[Hit],
                         spread: bool) -> Prompt | None:
        """Ask the model to restate the best evidence sentences (numbered by their passage) as
        an answer, each document's best first when `spread`; None when the passages hold no
        sentence long enough to be evidence."""
        evidence = select_evidence(rank_evidence(question, hits, self.score_sentences),
                                   EVIDENCE_SENTENCES, spread)
        if not evidence:
            return None
        return make_repair_prompt(question, [(e.n, e.sentence.text) for e in evidence])

    def _on_point(self, question: str, supported: list[AnswerSentence]) -> list[AnswerSentence]:
        """Restated evidence is true by construction of the judge, not always on point: keep
        the sentences the answerability judge finds answer the question (all of them when it
        fails: each is still backed by its quote)."""
        check = self._answerability
        if not supported or check is None:
            return supported
        try:
            scores = check.answer_scores(question, [s.claim or s.text for s in supported])
        except BackendError:
            return supported
        return [s for s, score in zip(supported, scores) if score >= check.threshold]

    def _repair(self, question: str, hits: Sequence[Hit], spread: bool):
        """A second draft restating the best evidence sentences, verified like the first:
        (checked, supported sentences, second draft), or None when the model or judge fails."""
        prompt = self._evidence_prompt(question, hits, spread)
        if prompt is None:
            return None
        options = GenerationOptions(max_tokens=self.settings.max_answer_tokens,
                                    temperature=self.settings.temperature,
                                    seed=self.settings.seed, stop=("\nQuestion:", "\n\n\n"))
        try:
            raw = "".join(self.generator.generate(prompt, options))
            checked = verify(raw, hits, self.judge, question)
            supported = self._on_point(question, [s for s in checked.sentences if s.supported])
        except BackendError:
            return None
        checked = replace(checked, citations=citations_of(supported))
        return checked, supported, raw

    def _verified(self, base: Answer, raw: str, question: str, hits: Sequence[Hit],
                  spread: bool, evidence_first: bool = False) -> Answer:
        """Keep the model's supported sentences; otherwise answer from the evidence.

        A draft written from the evidence sentences (`evidence_first`) keeps only the supported
        sentences that answer the question, and is not repaired: the repair asks the same."""
        try:
            judging = time.perf_counter()
            checked = verify(raw, hits, self.judge, question)
            base = replace(base, timings=dict(base.timings,
                                              judge_ms=_ms(time.perf_counter() - judging)))
        except BackendError as exc:
            # Without a judge nothing the model wrote can be shown as sourced: quote instead.
            return self._from_evidence(replace(base, error=f"support judge failed: {exc}",
                                               draft=raw), question, hits, spread)
        base = replace(base, draft=raw, invalid_markers=checked.invalid_markers,
                       removed_sentences=checked.removed, judge=self.judge.name)
        notes = list(base.notes) + [f"model draft: {' '.join(raw.split())[:1000]}"]
        if checked.invalid_markers:
            notes.append(f"{_count(checked.invalid_markers, 'citation marker')} pointed at no "
                         f"passage and {_were(checked.invalid_markers)} removed")
        if checked.unsupported:
            notes.append(f"{_count(checked.unsupported, 'sentence')} not supported by the "
                         f"passages {_were(checked.unsupported)} removed")
        supported = [s for s in checked.sentences if s.supported]
        if evidence_first and supported:
            on_point = self._on_point(question, supported)
            off = len(supported) - len(on_point)
            if off:
                notes.append(f"{_count(off, 'supported sentence')} that did not answer the "
                             f"question {_were(off)} removed")
            supported = on_point
            checked = replace(checked, citations=citations_of(supported))
        mode = "model"
        if (not supported and self.settings.repair and not evidence_first
                and not self._refused(raw)):
            # Repair before quotes: the model restates the best evidence sentences, re-judged.
            repaired = self._repair(question, hits, spread)
            if repaired is not None and repaired[1]:
                checked, supported, mode = repaired[0], repaired[1], "repaired"
                notes.append(f"second draft: {' '.join(repaired[2].split())[:1000]}")
                notes.append("the draft failed the judge; a second draft restating the best "
                             f"evidence kept {_count(len(supported), 'sentence')}")
            else:
                notes.append("the draft failed the judge and so did a second draft restating "
                             "the best evidence")
        if supported:
            # A sentence in its source's voice ("Our survey finds …") or copied from its
            # source word for word is shown as the source's quote: the words are not the
            # assistant's.
            supported = [as_quotation(s) if speaks_for_the_source(s.claim)
                         or copies_its_quote(s) else s for s in supported]
            # The model's supported sentences alone. A closing quote of the best uncited
            # evidence sentence used to follow; on the tune half all 7 read as off the point
            # (measured on eval/seed_questions.jsonl) and none added a key fact.
            return replace(base, answer=" ".join(s.text for s in supported),
                           sentences=tuple(supported), citations=citations_of(supported),
                           mode=mode, notes=tuple(notes))
        if self._refused(raw):
            # The model read the passages and found no answer, and nothing it wrote is
            # supported: say so rather than pass off loosely related quotes as an answer.
            return replace(base, answer=ABSTAIN_TEXT, abstained=True, mode="abstained",
                           notes=tuple(notes) + ("abstained: the model found no answer in the "
                                                 "passages and none of its text is supported",))
        return self._from_evidence(replace(base, notes=tuple(notes)), question, hits, spread)


def load_assistant(settings: Settings, generator_factory: Callable[[], Generator] | None = None
                   ) -> Assistant:
    """Open the index and embedder; the generator is created on first use (see qa/compose.py)."""
    from .compose import load_assistant as compose

    return compose(settings, generator_factory)


def _named_note(named: Sequence[DocumentRecord], hits: Sequence[Hit]) -> tuple[str, ...]:
    """Say so when the passages come only from the documents the question names."""
    if not named or not hits or not {h.doc_id for h in hits} <= {r.doc_id for r in named}:
        return ()
    return ("passages only from the documents the question names: "
            + "; ".join(r.title for r in named),)


def _default_judge(settings: Settings) -> SupportJudge:
    from .judge import answer_judge

    return answer_judge(settings)
