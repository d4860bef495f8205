// Assembling a streamed answer from the server's frames (static/js/chat/stream.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { citationParts } from "../../static/js/chat/citations.js";
import { localMessage, sourceFor } from "../../static/js/chat/model.js";
import {
  PIPELINE_ERRORS,
  TRANSIENT_ERRORS,
  applyCitation,
  applyDelta,
  applyDone,
  applyFailure,
  applyRetrieval,
  errorText,
  refusesWaiting,
} from "../../static/js/chat/stream.js";

const PASSAGE = { chunk_id: 7, source_id: 3, title: "Travel policy", source_name: "travel.md", text: "Book early." };

function streamingAnswer() {
  const answer = localMessage("assistant", "");
  applyRetrieval(answer, { message_id: "m1", question_id: "q1", sources: [{ number: 1, ...PASSAGE }] });
  return answer;
}

function chipsOf(answer) {
  const parts = citationParts(answer.content, (n) => Boolean(sourceFor(answer, n)));
  return parts ? parts.filter(Array.isArray) : [];
}

describe("applyRetrieval", () => {
  it("gives the pending answer its id, question, sources and memory", () => {
    const answer = localMessage("assistant", "");
    applyRetrieval(answer, {
      message_id: "m1",
      question_id: "q1",
      sources: [{ number: 1, ...PASSAGE }, { n: 2, unavailable: true, text: "secret" }],
      memory: [{ text: "I work in Lyon" }],
    });
    assert.equal(answer.id, "m1");
    assert.equal(answer.replyTo, "q1");
    assert.equal(answer.status, "streaming");
    assert.deepEqual(answer.sources.map((s) => [s.n, s.title, s.text]), [[1, "Travel policy", "Book early."], [2, "", ""]]);
    assert.deepEqual(answer.memory, [{ text: "I work in Lyon" }]);
  });

  it("copes with a frame without sources or memory", () => {
    const answer = localMessage("assistant", "");
    applyRetrieval(answer, { message_id: "m1", question_id: "q1" });
    assert.deepEqual([answer.sources, answer.memory], [[], []]);
  });
});

describe("applyDelta", () => {
  it("appends the deltas' text in order", () => {
    const answer = streamingAnswer();
    for (const text of ["Book ", "through ", "the desk."]) applyDelta(answer, { text });
    assert.equal(answer.content, "Book through the desk.");
  });

  it("ignores a delta without text", () => {
    const answer = streamingAnswer();
    applyDelta(answer, { text: "A" });
    applyDelta(answer, {});
    applyDelta(answer, { text: "" });
    assert.equal(answer.content, "A");
  });

  it("makes a marker split across deltas a chip only once it is complete", () => {
    const answer = streamingAnswer();
    const seen = [];
    for (const text of ["Book early ", "[", "1", "]", "."]) {
      applyDelta(answer, { text });
      seen.push(chipsOf(answer).length);
    }
    assert.deepEqual(seen, [0, 0, 0, 1, 1]);
    assert.equal(answer.content, "Book early [1].");
  });

  it("joins a group split after its comma", () => {
    const answer = streamingAnswer();
    applyCitation(answer, { number: 2, source: { ...PASSAGE, chunk_id: 8 } });
    applyDelta(answer, { text: "Both [1," });
    assert.deepEqual(chipsOf(answer), []);
    applyDelta(answer, { text: " 2]." });
    assert.deepEqual(chipsOf(answer), [[1, 2]]);
  });

  it("keeps HTML in the text verbatim: rendering sanitises it, assembly does not", () => {
    const answer = streamingAnswer();
    applyDelta(answer, { text: "<script>alert(1)</script>" });
    applyDelta(answer, { text: "<img src=x onerror=alert(1)>" });
    assert.equal(answer.content, "<script>alert(1)</script><img src=x onerror=alert(1)>");
  });

  it("assembles a long answer from many small deltas exactly", () => {
    const answer = streamingAnswer();
    const pieces = Array.from({ length: 20000 }, (_, i) => "w" + i + " ");
    for (const text of pieces) applyDelta(answer, { text });
    assert.equal(answer.content, pieces.join(""));
  });
});

describe("applyCitation", () => {
  it("adds a passage that was not among the sources and marks it cited", () => {
    const answer = streamingAnswer();
    applyCitation(answer, { number: 4, source: { chunk_id: 9, title: "Expenses", text: "Meals: 60 euros." } });
    assert.deepEqual(answer.sources.map((s) => s.n), [1, 4]);
    assert.equal(sourceFor(answer, 4).title, "Expenses");
    assert.deepEqual([...answer.cited], [4]);
  });

  it("marks a known passage cited without adding it twice", () => {
    const answer = streamingAnswer();
    applyCitation(answer, { number: 1, source: PASSAGE });
    applyCitation(answer, { number: 1, source: PASSAGE });
    assert.equal(answer.sources.length, 1);
    assert.deepEqual([...answer.cited], [1]);
  });

  it("numbers the passage by the frame, not by the source's own fields", () => {
    const answer = streamingAnswer();
    applyCitation(answer, { number: 5, source: { ...PASSAGE, n: 99, number: 98 } });
    assert.ok(sourceFor(answer, 5));
    assert.equal(sourceFor(answer, 99), null);
  });

  it("keeps an unreadable passage's place without its text", () => {
    const answer = streamingAnswer();
    applyCitation(answer, { number: 2, source: { unavailable: true, title: "Secret", text: "Do not show" } });
    assert.deepEqual(sourceFor(answer, 2), {
      n: 2, unavailable: true, chunk_id: null, source_id: null, title: "", source_name: "", url: "", heading: "",
      page: null, text: "",
    });
  });
});

describe("applyDone", () => {
  it("settles a complete answer with the stored text, which wins over the streamed one", () => {
    const answer = streamingAnswer();
    applyDelta(answer, { text: "Book early [1" });
    applyDone(answer, { id: "m1", status: "complete", content: "Book early [1].", unsupported: [{ sentence: "x", numbers: [1] }] });
    assert.equal(answer.status, "complete");
    assert.equal(answer.content, "Book early [1].");
    assert.deepEqual(answer.unsupported, [{ sentence: "x", numbers: [1] }]);
    assert.equal(answer.fromCache, false);
  });

  it("keeps what was streamed when the answer was stopped", () => {
    const answer = streamingAnswer();
    applyDelta(answer, { text: "Book ea" });
    applyDone(answer, { id: "m1", status: "stopped", content: "" });
    assert.deepEqual([answer.status, answer.content], ["stopped", "Book ea"]);
  });

  it("defaults to complete and ignores content that is not text", () => {
    const answer = streamingAnswer();
    applyDelta(answer, { text: "Streamed." });
    applyDone(answer, { id: "m1", content: { html: "<b>no</b>" }, unsupported: "all of it", from_cache: "yes" });
    assert.equal(answer.status, "complete");
    assert.equal(answer.content, "Streamed.");
    assert.deepEqual(answer.unsupported, []);
    assert.equal(answer.fromCache, false);
  });

  it("marks an answer made of passages quoted while the model was unavailable", () => {
    const answer = streamingAnswer();
    applyDone(answer, { id: "m1", status: "complete", content: "> [1] Book early.", extractive: true });
    assert.equal(answer.extractive, true);
    applyDone(answer, { id: "m1", status: "complete", content: "x", extractive: "yes" });
    assert.equal(answer.extractive, false);
  });

  it("marks an answer served from the cache", () => {
    const answer = streamingAnswer();
    applyDone(answer, { id: "m1", status: "complete", content: "Cached.", from_cache: true });
    assert.equal(answer.fromCache, true);
  });
});

describe("applyFailure and errorText", () => {
  it("fails the answer with the server's message and keeps the passages found", () => {
    const answer = streamingAnswer();
    applyFailure(answer, { code: "llm_unavailable", message: "The model is asleep.", sources: [{ number: 2, ...PASSAGE }] });
    assert.equal(answer.status, "failed");
    assert.equal(answer.error, "The model is asleep.");
    assert.equal(answer.notUsed, true);
    assert.deepEqual(answer.sources.map((s) => s.n), [2]);
  });

  it("keeps the sources it had when the error brings none", () => {
    const answer = streamingAnswer();
    applyFailure(answer, { code: "llm_stream_broken", sources: [] });
    assert.deepEqual(answer.sources.map((s) => s.n), [1]);
    // The page offers "Try again" beside the note (render.js), so the note names that button.
    assert.equal(answer.error, "The answer was cut off. Try again for a complete answer.");
  });

  it("explains known codes and falls back for unknown ones", () => {
    assert.equal(errorText({ code: "rate_limited" }), "You are asking too fast. Wait a moment and try again.");
    // Codes that name Object.prototype's members are unknown codes like any other.
    for (const code of ["__proto__", "constructor", "toString"]) assert.equal(errorText({ code }), "Something went wrong.");
    assert.equal(errorText({}), "Something went wrong.");
  });

  it("knows which errors fail the answer rather than the request", () => {
    assert.ok(PIPELINE_ERRORS.has("internal"));
    assert.ok(!PIPELINE_ERRORS.has("busy"));
  });
});

describe("refusesWaiting (Redis restarting)", () => {
  it("is the unavailable error that comes instead of hello, not a refusal of one frame", () => {
    assert.equal(refusesWaiting({ type: "error", code: "unavailable", message: "…" }, false), true);
    // After hello: about one frame (a stop that could not reach Redis), not the socket.
    assert.equal(refusesWaiting({ type: "error", code: "unavailable" }, true), false);
    assert.equal(refusesWaiting({ type: "error", code: "unavailable", request_id: "r1" }, false), false);
    assert.equal(refusesWaiting({ type: "error", code: "rate_limited" }, false), false);
  });

  it("is explained kindly even without the server's sentence, and counts as passing", () => {
    assert.match(errorText({ code: "unavailable" }), /briefly unavailable.*Try again in a moment/);
    assert.equal(TRANSIENT_ERRORS.has("unavailable"), true);
    assert.equal(TRANSIENT_ERRORS.has("llm_stream_broken"), false);
  });
});
