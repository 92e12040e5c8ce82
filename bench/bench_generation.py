"""Benchmark: EmbeddedGenerator against bare llama-cpp-python on the same ~900-token prompt.

Measures time to first token (prompt evaluation) and decoding speed for both, alternating runs,
and reports medians, best runs and the ratios ours/bare. Both sides get the identical rendered
text and sampling settings, and the KV cache is reset before every run so each one evaluates the
whole prompt (a cold question; llama-cpp-python would otherwise reuse the cached prefix).

    .venv/bin/python bench/bench_generation.py [--model smollm2|gemma3|path.gguf] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from qa.backends.base import GenerationOptions, Prompt
from qa.backends.embedded import (N_THREADS, REPEAT_PENALTY, TOP_K, TOP_P, EmbeddedGenerator)
from qa.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Where do Moscow and Tehran disagree on Assad's future?"
SYSTEM = ("You answer questions using only the numbered passages. Cite each statement with the "
          "passage number in brackets, like [2]. If the passages do not answer, say so.")


def seed_passages(count: int, chars: int) -> list[str]:
    """The first `chars` characters of prose (long paragraphs) from each of `count` seed files."""
    passages = []
    for path in sorted((ROOT / "seeds").glob("*.txt"))[:count]:
        prose = [p.strip() for p in path.read_text(encoding="utf-8").split("\n\n")
                 if len(p.strip()) > 200]
        passages.append(" ".join(prose)[:chars].rsplit(" ", 1)[0])
    return passages


def build_prompt(generator: EmbeddedGenerator, target_tokens: int) -> Prompt:
    """A question with five seed passages, sized to about `target_tokens` rendered tokens."""
    chars = 800
    for _ in range(4):  # rescale the passage length until the prompt is near the target
        passages = seed_passages(5, chars)
        user = "Passages:\n" + "\n\n".join(f"[{i}] {p}" for i, p in enumerate(passages, 1))
        prompt = Prompt(system=SYSTEM, user=f"{user}\n\nQuestion: {QUESTION}")
        tokens = generator.count_tokens(generator.render(prompt))
        if abs(tokens - target_tokens) < 25:
            break
        chars = int(chars * target_tokens / tokens)
    return prompt


def timed(pieces, count_tokens) -> dict:
    """Consume a stream of text pieces; time to first piece, decode rate, and the text."""
    started = time.perf_counter()
    first = None
    text = ""
    for piece in pieces:
        if first is None and piece:
            first = time.perf_counter() - started
        text += piece
    total = time.perf_counter() - started
    tokens = count_tokens(text)
    decode_s = total - (first or total)
    return {"ttft_s": first or total, "total_s": total, "tokens": tokens,
            # the first token comes out of prompt evaluation; the rest measure decoding
            "decode_tok_s": (tokens - 1) / decode_s if tokens > 1 and decode_s > 0 else 0.0,
            "text": text}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2", help="smollm2, gemma3 or a .gguf path")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--prompt-tokens", type=int, default=900)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args()

    data_dir = Path(tempfile.gettempdir()) / "qa-bench-data"  # where gemma3 is assembled
    settings = Settings(model=args.model, data_dir=data_dir, context_window=2048,
                        temperature=0.0, timeout_s=600.0)

    started = time.perf_counter()
    ours = EmbeddedGenerator(settings)
    ours_load_s = time.perf_counter() - started

    from llama_cpp import Llama

    started = time.perf_counter()
    bare = Llama(model_path=str(ours.model_path), n_ctx=settings.context_window,
                 n_threads=N_THREADS, seed=settings.seed, verbose=False, logits_all=False)
    bare_load_s = time.perf_counter() - started

    prompt = build_prompt(ours, args.prompt_tokens)
    options = GenerationOptions(max_tokens=args.max_tokens, temperature=0.0, seed=settings.seed)
    text = ours.render(prompt)
    stops = ours.stops(options)
    prompt_tokens = ours.count_tokens(text)

    def run_bare() -> dict:
        bare.reset()
        stream = bare.create_completion(text, max_tokens=options.max_tokens, temperature=0.0,
                                        top_k=TOP_K, top_p=TOP_P, repeat_penalty=REPEAT_PENALTY,
                                        seed=options.seed, stop=stops, stream=True)
        return timed((c["choices"][0]["text"] for c in stream), ours.count_tokens)

    def run_ours() -> dict:
        ours.llm.reset()
        return timed(ours.generate(prompt, options), ours.count_tokens)

    load_before = os.getloadavg()[0]
    results: dict[str, list[dict]] = {"bare": [], "ours": []}
    for i in range(args.runs):  # alternate, and swap who goes first, so drift hits both alike
        order = [("bare", run_bare), ("ours", run_ours)]
        for name, run in order if i % 2 == 0 else order[::-1]:
            results[name].append(run())

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    def best(name: str, key: str) -> float:
        # Other processes only ever slow a run down, so the best run is the least disturbed one.
        values = [r[key] for r in results[name]]
        return max(values) if key == "decode_tok_s" else min(values)

    summary = {
        "model": ours.model, "model_path": str(ours.model_path), "prompt_format": ours.prompt_format,
        "prompt_tokens": prompt_tokens, "max_tokens": args.max_tokens, "runs": args.runs,
        "n_ctx": settings.context_window, "n_threads": N_THREADS,
        "load_s": {"bare": round(bare_load_s, 3), "ours": round(ours_load_s, 3)},
        # llama.cpp's threads spin-wait: other busy processes on a 2-core machine distort timings
        "cpu_load_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                          "cores": os.cpu_count()},
        "same_text": len({r["text"] for rs in results.values() for r in rs}) == 1,
        "answer_tokens": {n: [r["tokens"] for r in rs] for n, rs in results.items()},
    }
    for key in ("ttft_s", "decode_tok_s", "total_s"):
        b, o = median("bare", key), median("ours", key)
        bb, ob = best("bare", key), best("ours", key)
        summary[key] = {"bare": round(b, 4), "ours": round(o, 4),
                        "ratio_ours_over_bare": round(o / b, 3) if b else None,
                        "best_bare": round(bb, 4), "best_ours": round(ob, 4),
                        "best_ratio_ours_over_bare": round(ob / bb, 3) if bb else None}
    summary["prompt_eval_tok_s"] = {n: round(prompt_tokens / median(n, "ttft_s"), 1)
                                    for n in ("bare", "ours")}
    summary["answer_start"] = results["ours"][0]["text"][:160]

    print(f"\nEmbedded generation benchmark — {ours.model} ({ours.prompt_format}), "
          f"{prompt_tokens}-token prompt, max {args.max_tokens} answer tokens, "
          f"{args.runs} runs each, medians, KV cache reset before each run\n")
    print(f"{'':<26}{'--------------- median ---------------':>48}{'------------ best run ------------':>38}")
    print(f"{'metric':<26}{'bare llama-cpp':>16}{'EmbeddedGenerator':>20}{'ours/bare':>12}"
          f"{'bare':>14}{'ours':>12}{'ours/bare':>12}")
    rows = [("time to first token (s)", "ttft_s"), ("decode (tokens/s)", "decode_tok_s"),
            ("total (s)", "total_s")]
    for label, key in rows:
        row = summary[key]
        print(f"{label:<26}{row['bare']:>16.3f}{row['ours']:>20.3f}"
              f"{row['ratio_ours_over_bare']:>12.3f}{row['best_bare']:>14.3f}"
              f"{row['best_ours']:>12.3f}{row['best_ratio_ours_over_bare']:>12.3f}")
    print(f"{'prompt eval (tokens/s)':<26}{summary['prompt_eval_tok_s']['bare']:>16.1f}"
          f"{summary['prompt_eval_tok_s']['ours']:>20.1f}")
    print(f"{'model load (s)':<26}{bare_load_s:>16.3f}{ours_load_s:>20.3f}")
    load = summary["cpu_load_1min"]
    print(f"\nmachine load (1 min) {load['before']} before, {load['after']} after, on "
          f"{load['cores']} cores: timings are only comparable when it stays below the core count")
    print(f"identical answers in all runs: {summary['same_text']}; answer tokens "
          f"{summary['answer_tokens']}")
    print(f"answer starts: {summary['answer_start']!r}\n")
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps({**summary, "runs_detail": results}, indent=2))


if __name__ == "__main__":
    main()
