"""How an answer's text leaves the process that generates it (assistant/answering/generation.py):
deltas are batched, and batches reach the tab in the order the model wrote them."""

from __future__ import annotations

import asyncio

from assistant.answering.generation import DeltaBatcher


async def test_deltas_reach_the_tab_in_order_while_an_earlier_batch_is_still_being_sent():
    """Found by bench/chat_load.py: under load, a batch flushed by the timer was still being
    recorded (Redis) and sent when the next one went out, and tabs got the text scrambled."""
    sent: list[str] = []
    first_sending = asyncio.Event()

    async def send(frame: dict) -> None:
        if not first_sending.is_set():
            first_sending.set()
            await asyncio.sleep(0.2)  # a slow Redis or socket, as on a busy machine
        sent.append(frame["text"])

    batcher = DeltaBatcher(send, "m1")
    batcher.add("w0 w1 ")
    await asyncio.wait_for(first_sending.wait(), 5)  # the timer's flush is sending them
    batcher.add("w2 ")
    await batcher.flush()  # what the pipeline does before its next event (a citation, done)
    deadline = asyncio.get_running_loop().time() + 5
    while len(sent) < 2 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)

    assert sent == ["w0 w1 ", "w2 "]


async def test_a_full_batch_goes_out_at_once_and_nothing_is_sent_twice():
    sent: list[str] = []

    async def send(frame: dict) -> None:
        sent.append(frame["text"])

    batcher = DeltaBatcher(send, "m1")
    pending = batcher.add("x" * 400)  # FLUSH_CHARS: no waiting for the timer
    assert pending is not None
    await pending
    await batcher.flush()

    assert sent == ["x" * 400]
