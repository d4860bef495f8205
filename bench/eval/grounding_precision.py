"""How well the citation check (assistant/answering/grounding.py) judges cited sentences.

Each line of grounding_labels.jsonl is a sentence citing [1], labelled by hand as supported
or not by a passage of the Django docs corpus (the page's text around ``anchor``, about the
size of an indexed chunk). Runs the check with the local embedder (no database needed) and
prints the precision and recall of the "unsupported" mark.

    python bench/corpus.py && python bench/eval/grounding_precision.py
    python bench/eval/grounding_precision.py --answers

``--answers`` scores the check as it ran in the product instead: each line of
grounding_labels_answers.jsonl is a cited sentence from a real answer of the default model
(``evaluate --answers`` over ``django_answers.jsonl``), with what the check said then
(``marked``, made against the passage as the model read it, neighbours included) and a label
written by hand afterwards from the passage. Sentences that claim nothing (a bare ``[n]``, "the
setting is [4].") were left out.
"""

from __future__ import annotations

import html
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.answering.grounding import check_answer  # noqa: E402
from knowledge.embeddings.local import LocalEmbedder  # noqa: E402

CORPUS = ROOT / "var" / "corpus" / "django-docs"
BEFORE, AFTER = 300, 1200  # characters of page text around the anchor: a chunk-sized passage


def page_text(name: str) -> str:
    raw = (CORPUS / name).read_text(encoding="utf-8", errors="replace")
    raw = re.sub(r"(?s)<(script|style).*?</\1>", " ", raw)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).split())


def passage(name: str, anchor: str) -> str:
    text = page_text(name)
    at = text.find(anchor)
    if at < 0:
        raise SystemExit(f"{name}: anchor {anchor!r} not found")
    return text[max(0, at - BEFORE) : at + AFTER]


def main() -> None:
    labels = [
        json.loads(line) for line in (Path(__file__).parent / "grounding_labels.jsonl").open()
    ]
    embedder = LocalEmbedder()
    embedder.embed_documents(["warm up"])
    flagged_right = flagged_wrong = missed = 0
    timings = []
    for item in labels:
        started = time.perf_counter()
        report = check_answer(
            item["sentence"], {1: passage(item["page"], item["anchor"])}, embedder
        )
        timings.append((time.perf_counter() - started) * 1000)
        flagged = bool(report.unsupported)
        verdict = report.verdicts[0]
        if flagged and not item["supported"]:
            flagged_right += 1
        elif flagged:
            flagged_wrong += 1
        elif not item["supported"]:
            missed += 1
        mark = "ok " if flagged != item["supported"] else "XX "
        print(f"{mark}{'unsupported' if flagged else 'supported  '} sim={verdict.similarity or 0:.2f} "
              f"[{item['kind']}] {item['sentence']}  {verdict.reason}")  # fmt: skip
    unsupported = sum(1 for i in labels if not i["supported"])
    flagged = flagged_right + flagged_wrong
    print(f"\n{len(labels)} sentences, {unsupported} labelled unsupported")
    print(
        f"precision of the mark: {flagged_right}/{flagged} = {flagged_right / max(flagged, 1):.2f}"
    )
    print(
        f"recall of the mark:    {flagged_right}/{unsupported} = {flagged_right / max(unsupported, 1):.2f}"
    )
    print(f"median check time: {sorted(timings)[len(timings) // 2]:.0f} ms per sentence")


def answers() -> None:
    path = Path(__file__).parent / "grounding_labels_answers.jsonl"
    labels = [json.loads(line) for line in path.open()]
    marked = [item for item in labels if item["marked"]]
    right = [item for item in marked if not item["supported"]]
    unsupported = [item for item in labels if not item["supported"]]
    for item in labels:
        mark = "ok " if item["marked"] != item["supported"] else "XX "
        verdict = "marked    " if item["marked"] else "not marked"
        print(f"{mark}{verdict} {item['sentence'][:110]}  {item.get('note', '')}")
    print(
        f"\n{len(labels)} cited sentences from real answers, {len(unsupported)} labelled unsupported"
    )
    print(
        f"precision of the mark: {len(right)}/{len(marked)} = {len(right) / max(len(marked), 1):.2f}"
    )
    caught = sum(1 for item in unsupported if item["marked"])
    print(
        f"recall of the mark:    {caught}/{len(unsupported)} = {caught / max(len(unsupported), 1):.2f}"
    )


if __name__ == "__main__":
    answers() if "--answers" in sys.argv[1:] else main()
