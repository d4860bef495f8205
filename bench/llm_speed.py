"""How fast the local models answer on this machine: time to first token, generation speed,
and what each extra passage in the prompt costs.

    python bench/llm_speed.py [--models qwen2.5-coder-1.5b smollm2-135m] [--repeat 1]

For each model it starts llama.cpp's server exactly as the launcher does
(``localmodel.server_argv``), sends prompts built by the chat's own code
(``prompts.number_sources`` and ``prompts.build_messages``) through ``assistant.llm``, and
measures, after one warm-up request that puts the fixed system prompt in llama.cpp's cache:

* TTFT with 1, 2, 4 and 6 passages (fresh passages each time, so only the fixed rules are
  cached, as for a new question), and each as a ratio to the 1-passage baseline of the same
  run (the machine is shared: absolute seconds move with its load, ratios much less);
* the prompt at the model's default budget (``LLM_CONTEXT_TOKENS`` default and
  ``LLM_MAX_TOKENS``): how many passages fit, its TTFT and generation tokens/s.

Prompt sizes are real tokens, from the server's tokenizer. Prints a table and writes
``$VAR_DIR/results/llm_speed.json``. Needs no database: prompts are rendered from the
templates only. Nothing fails on a time: this is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "assistant.project.settings")
os.environ.setdefault("DEBUG", "1")

import django  # noqa: E402

django.setup()

import httpx  # noqa: E402
from django.conf import settings  # noqa: E402

from assistant import llm  # noqa: E402
from assistant.answering import prompts  # noqa: E402
from assistant.devstack import localmodel  # noqa: E402
from knowledge.retrieval import SearchHit  # noqa: E402

PASSAGE_COUNTS = (1, 2, 4, 6)
QUESTION = "How do I configure this, and what are the defaults?"
FIXTURES = BASE / "tests" / "fixtures" / "django-docs"


def corpus_passages(words_per_passage: int = 130) -> list[str]:
    """Real documentation prose (Django's docs in the test fixtures), in passage-sized pieces."""
    words: list[str] = []
    for page in sorted(FIXTURES.glob("*.html")):
        html = page.read_text(errors="replace")
        html = re.sub(r"(?s)<(script|style)\b.*?</\1>", " ", html)
        words += re.sub(r"<[^>]+>", " ", html).split()
    return [
        " ".join(words[i : i + words_per_passage])
        for i in range(0, len(words) - words_per_passage, words_per_passage)
    ]


def hits_from(texts: list[str]) -> list[SearchHit]:
    return [
        SearchHit(
            chunk_id=n,
            source_id=n,
            collection_id=1,
            ordinal=n,
            text=text,
            heading_path=["Reference", f"Section {n}"],
            page=None,
            document_title="Django documentation",
            source_name="docs.html",
            source_url="",
            score=1.0 / n,
        )
        for n, text in enumerate(texts, 1)
    ]


class Server:
    """The model served as the launcher serves it, on a free port."""

    def __init__(self, model: localmodel.LocalModel, log: Path) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.model = model
        self.base = f"http://127.0.0.1:{self.port}"
        argv = localmodel.server_argv("127.0.0.1", self.port, model=model)
        self.out = log.open("ab")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{model.key}: the server exited (see {log})")
            try:
                httpx.get(f"{self.base}/v1/models", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{model.key}: the server never served") from None
                time.sleep(0.5)

    def tokens(self, text: str) -> int:
        response = httpx.post(f"{self.base}/extras/tokenize", json={"input": text}, timeout=60)
        return len(response.json()["tokens"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.out.close()


async def timed(messages: list[llm.ChatMessage], config: llm.LLMConfig) -> dict:
    started = time.perf_counter()
    first = last = None
    deltas = 0
    async for item in llm.stream_chat(messages, config=config):
        if isinstance(item, llm.TextDelta):
            last = time.perf_counter()
            first = first or last
            deltas += 1  # llama-cpp-python streams one token per chunk
    ttft = (first - started) if first else None
    generation = (deltas - 1) / (last - first) if deltas > 1 and last > first else None
    return {"ttft_s": ttft, "completion_tokens": deltas, "generation_tokens_per_s": generation}


def build(texts: list[str], budget_tokens: int) -> tuple[list[llm.ChatMessage], int]:
    sources = prompts.number_sources(hits_from(texts), budget_tokens)
    messages = prompts.build_messages(question=QUESTION, sources=sources, history=[])
    return messages, len(sources)


async def measure(model: localmodel.LocalModel, passages: list[str], repeat: int, log: Path):
    server = Server(model, log)
    config = llm.LLMConfig(
        base_url=f"{server.base}/v1",
        api_key="local",
        model=model.alias,
        temperature=0,
        max_tokens=24,
        read_timeout=600,
        max_retries=0,
    )
    fresh = iter(passages)
    results: dict = {"model": model.key, "passages": {}, "default_budget": {}}
    try:
        # Warm-up: loads the weights into memory and the fixed rules into the prompt cache.
        await timed(build([next(fresh)], 10_000)[0], config)
        for count in PASSAGE_COUNTS:
            runs = []
            for _ in range(repeat):
                messages, used = build([next(fresh) for _ in range(count)], 100_000)
                run = await timed(messages, config)
                run["prompt_tokens"] = server.tokens("\n".join(m.content for m in messages))
                runs.append(run)
            results["passages"][count] = _median(runs)
        base = results["passages"][1]["ttft_s"]
        for row in results["passages"].values():
            row["ttft_ratio"] = row["ttft_s"] / base if base else None
        one, most = results["passages"][1], results["passages"][PASSAGE_COUNTS[-1]]
        extra = PASSAGE_COUNTS[-1] - 1
        results["per_extra_passage"] = {
            "ttft_s": (most["ttft_s"] - one["ttft_s"]) / extra,
            "prompt_tokens": (most["prompt_tokens"] - one["prompt_tokens"]) / extra,
            "prompt_tokens_per_s": (most["prompt_tokens"] - one["prompt_tokens"])
            / max(most["ttft_s"] - one["ttft_s"], 1e-9),
        }

        budget = prompts.Budget(model.context_tokens, settings.LLM_MAX_TOKENS)
        long_answer = dataclasses.replace(config, max_tokens=96)
        runs = []
        for _ in range(repeat):
            messages, used = build(
                [next(fresh) for _ in range(settings.RETRIEVAL_TOP_K)], budget.sources_tokens
            )
            run = await timed(messages, long_answer)
            run["prompt_tokens"] = server.tokens("\n".join(m.content for m in messages))
            run["passages"] = used
            runs.append(run)
        results["default_budget"] = {
            **_median(runs),
            "context_tokens": model.context_tokens,
            "answer_tokens": settings.LLM_MAX_TOKENS,
            "ttft_ratio": (_median(runs)["ttft_s"] / base) if base else None,
        }
    finally:
        await llm.aclose_clients()
        server.stop()
    return results


def _median(runs: list[dict]) -> dict:
    keys = runs[0].keys()
    out = {}
    for key in keys:
        values = sorted(r[key] for r in runs if r[key] is not None)
        out[key] = values[len(values) // 2] if values else None
    return out


def table(all_results: list[dict]) -> str:
    lines = [
        f"{'model':<20} {'prompt':<16} {'tokens':>6} {'TTFT s':>8} {'x 1-pass':>8} {'gen tok/s':>9}"
    ]
    for result in all_results:
        rows = [(f"{n} passage(s)", row) for n, row in result["passages"].items()]
        d = result["default_budget"]
        rows.append((f"default ({d['passages']} p.)", d))
        for label, row in rows:
            gen = row.get("generation_tokens_per_s")
            lines.append(
                f"{result['model']:<20} {label:<16} {row['prompt_tokens']:>6} "
                f"{row['ttft_s']:>8.1f} {row['ttft_ratio']:>8.2f} "
                + (f"{gen:>9.1f}" if gen else f"{'-':>9}")
            )
        extra = result["per_extra_passage"]
        lines.append(
            f"{result['model']:<20} each extra passage: +{extra['ttft_s']:.1f} s TTFT, "
            f"+{extra['prompt_tokens']:.0f} tokens ({extra['prompt_tokens_per_s']:.0f} prompt tokens/s)"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models", nargs="+", default=[localmodel.DEFAULT_MODEL, localmodel.TEST_MODEL]
    )
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        models = [localmodel.choose(key) for key in args.models]
    except localmodel.LocalModelError as exc:
        parser.error(str(exc))
    passages = corpus_passages()
    needed = 1 + args.repeat * (sum(PASSAGE_COUNTS) + settings.RETRIEVAL_TOP_K)
    if len(passages) < needed:
        raise SystemExit(f"only {len(passages)} passages in {FIXTURES}; {needed} needed")
    out_dir = Path(settings.VAR_DIR) / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    results = []
    for model in models:
        print(f"measuring {model.key} ...", flush=True)
        results.append(asyncio.run(measure(model, passages, args.repeat, out_dir / "llm.log")))
    report = {
        "cores": localmodel.cores(),
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "results": results,
    }
    (out_dir / "llm_speed.json").write_text(json.dumps(report, indent=2))
    print(table(results))
    print(f"load average before {load}, after {report['load_average_after']}")
    print(f"written to {out_dir / 'llm_speed.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
