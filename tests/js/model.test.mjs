// Messages and sources as the page keeps them (static/js/chat/model.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  UNAVAILABLE,
  asSource,
  fromApi,
  localMessage,
  offersRetry,
  readingText,
  signature,
  sourceDetails,
  sourceFor,
  sourceLink,
  sourceName,
} from "../../static/js/chat/model.js";

const SOURCE_URL = "/knowledge/sources/0/";

describe("asSource", () => {
  it("reads the number from n or number", () => {
    assert.equal(asSource({ n: 2 }).n, 2);
    assert.equal(asSource({ number: 3 }).n, 3);
    assert.equal(asSource({ n: 0, number: 4 }).n, 0);
  });

  it("drops everything but the number of a passage the reader can no longer read", () => {
    const source = asSource({ n: 1, unavailable: true, title: "Board minutes", url: "https://x", text: "Secret." });
    assert.deepEqual(source, {
      n: 1, unavailable: true, chunk_id: null, source_id: null, title: "", source_name: "", url: "", heading: "",
      page: null, text: "",
    });
  });
});

describe("sourceFor", () => {
  it("prefers the resolved citation over the passage found with the same number", () => {
    const message = { citations: [{ n: 1, title: "cited" }], sources: [{ n: 1, title: "found" }, { n: 2, title: "other" }] };
    assert.equal(sourceFor(message, 1).title, "cited");
    assert.equal(sourceFor(message, 2).title, "other");
    assert.equal(sourceFor(message, 3), null);
    assert.equal(sourceFor({}, 1), null);
  });
});

describe("sourceName and sourceDetails", () => {
  it("names a source by its title, its file, or says it has none", () => {
    assert.equal(sourceName({ title: "Policy", source_name: "p.md" }), "Policy");
    assert.equal(sourceName({ title: "", source_name: "p.md" }), "p.md");
    assert.equal(sourceName({ title: "", source_name: "" }), "Untitled document");
    assert.equal(sourceName({ unavailable: true }), UNAVAILABLE);
    assert.equal(sourceName(null), "Unknown source");
  });

  it("adds the file when it differs from the title, the heading and the page", () => {
    const source = { title: "On-call guide", source_name: "oncall.pdf", heading: "After a deploy", page: 4 };
    assert.equal(sourceDetails(source), "oncall.pdf · After a deploy · page 4");
    assert.equal(sourceDetails({ title: "a.md", source_name: "a.md", heading: "", page: null }), "");
  });
});

describe("sourceLink", () => {
  it("opens a web original, else the source's page, else nothing", () => {
    assert.equal(sourceLink({ url: "https://wiki.example.com/x", source_id: 5 }, SOURCE_URL), "https://wiki.example.com/x");
    assert.equal(sourceLink({ url: "", source_id: 5 }, SOURCE_URL), "/knowledge/sources/5/");
    assert.equal(sourceLink({ url: "", source_id: null }, SOURCE_URL), "");
    assert.equal(sourceLink({ unavailable: true, url: "https://x", source_id: 5 }, SOURCE_URL), "");
  });

  it("never links to a script or data address", () => {
    for (const url of ["javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<b>x</b>", " https://x", "//evil.example"]) {
      assert.equal(sourceLink({ url, source_id: null }, SOURCE_URL), "", url);
      assert.equal(sourceLink({ url, source_id: 9 }, SOURCE_URL), "/knowledge/sources/9/", url);
    }
  });

  it("opens the source's page at the cited passage when its chunk is known", () => {
    assert.equal(sourceLink({ url: "", source_id: 5, chunk_id: 42 }, SOURCE_URL), "/knowledge/sources/5/?chunk=42#chunk-42");
    assert.equal(sourceLink({ url: "", source_id: 5, chunk_id: null }, SOURCE_URL), "/knowledge/sources/5/");
  });

  it("escapes the source id into the path", () => {
    assert.equal(sourceLink({ source_id: "../admin/?x=1" }, SOURCE_URL), "/knowledge/sources/..%2Fadmin%2F%3Fx%3D1/");
  });
});

describe("fromApi", () => {
  it("fills every field with a safe default", () => {
    const m = fromApi({ id: "m1", role: "assistant" });
    assert.deepEqual(
      { ...m, cited: [...m.cited] },
      {
        id: "m1", role: "assistant", content: "", status: "complete", error: "", sources: [], citations: [], cited: [],
        unsupported: [], fromCache: false, extractive: false, clientWritten: false, feedback: null, replyTo: null, notUsed: false, memory: [], versions: null, el: null,
      }
    );
  });

  it("reads citations, the cache flag, a failure and memory", () => {
    const m = fromApi({
      id: "m2", role: "assistant", content: "x [2]", status: "failed", error: "Cut off.",
      citations: [{ number: 2, title: "T" }], from_cache: true, reply_to: "q1", memory_used: [{ text: "Lyon" }],
      unsupported: "not a list",
    });
    assert.deepEqual([...m.cited], [2]);
    assert.equal(m.fromCache, true);
    assert.equal(m.notUsed, true);
    assert.deepEqual(m.unsupported, []);
    assert.equal(m.replyTo, "q1");
    assert.deepEqual(m.memory, [{ text: "Lyon" }]);
  });
});

describe("turns an API client wrote", () => {
  it("reads the client_written mark, strictly, and a change of it redraws the turn", () => {
    const written = fromApi({ id: "m1", role: "assistant", client_written: true });
    assert.equal(written.clientWritten, true);
    assert.equal(fromApi({ id: "m1", role: "assistant", client_written: "yes" }).clientWritten, false);
    assert.equal(localMessage("assistant", "").clientWritten, false);
    assert.notEqual(signature(written), signature(fromApi({ id: "m1", role: "assistant" })));
  });
});

describe("extractive answers and offersRetry", () => {
  it("reads the extractive mark, strictly", () => {
    assert.equal(fromApi({ id: "m1", role: "assistant", extractive: true }).extractive, true);
    assert.equal(fromApi({ id: "m1", role: "assistant", extractive: "true" }).extractive, false);
    assert.equal(localMessage("assistant", "").extractive, false);
  });

  it("offers to try again after a failure or quoted passages, never while writing", () => {
    const answer = (fields) => fromApi({ id: "m1", role: "assistant", ...fields });
    assert.equal(offersRetry(answer({ status: "failed", content: "Book thr" })), true);
    assert.equal(offersRetry(answer({ status: "complete", extractive: true })), true);
    assert.equal(offersRetry(answer({ status: "complete" })), false);
    assert.equal(offersRetry(answer({ status: "streaming", extractive: true })), false);
    assert.equal(offersRetry(answer({ status: "stopped" })), false);
    assert.equal(offersRetry(localMessage("assistant", "")), false); // not stored yet
    assert.equal(offersRetry(fromApi({ id: "q1", role: "user", status: "failed" })), false);
  });

  it("changes the signature, so a reload re-renders the note", () => {
    const plain = fromApi({ id: "m1", role: "assistant", content: "x" });
    const quoted = fromApi({ id: "m1", role: "assistant", content: "x", extractive: true });
    assert.notEqual(signature(plain), signature(quoted));
  });
});

describe("localMessage and signature", () => {
  it("starts a question complete and an answer pending", () => {
    assert.equal(localMessage("user", "Hi").status, "complete");
    assert.equal(localMessage("assistant", "").status, "pending");
  });

  it("changes when anything shown changes, and only then", () => {
    const a = fromApi({ id: "m1", role: "assistant", content: "x", feedback: { rating: 1, comment: "a" } });
    const b = fromApi({ id: "m1", role: "assistant", content: "x", feedback: { rating: 1, comment: "b" } });
    assert.equal(signature(a), signature(b));
    b.feedback.rating = -1;
    assert.notEqual(signature(a), signature(b));
    const c = fromApi({ id: "m1", role: "assistant", content: "x", feedback: { rating: 1 }, from_cache: true });
    assert.notEqual(signature(a), signature(c));
  });
});

describe("readingText", () => {
  it("says how many sources the model is reading", () => {
    assert.equal(readingText({ sources: [] }), "Thinking…");
    assert.equal(readingText({ sources: [{}] }), "Reading 1 source…");
    assert.equal(readingText({ sources: [{}, {}] }), "Reading 2 sources…");
  });
});
