// Versions of a turn and following an answer written elsewhere (static/js/chat/model.js,
// stream.js): the pure parts the page's switcher and attach use.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { fromApi, localMessage, signature, versionTarget } from "../../static/js/chat/model.js";
import { applyAttached, applyDelta } from "../../static/js/chat/stream.js";

describe("versionTarget", () => {
  const versions = { count: 3, index: 2, ids: ["a", "b", "c"] };

  it("steps to the previous and the next version", () => {
    assert.equal(versionTarget(versions, -1), "a");
    assert.equal(versionTarget(versions, 1), "c");
  });

  it("stops at either end and on nonsense", () => {
    assert.equal(versionTarget({ count: 2, index: 1, ids: ["a", "b"] }, -1), null);
    assert.equal(versionTarget({ count: 2, index: 2, ids: ["a", "b"] }, 1), null);
    assert.equal(versionTarget(null, 1), null);
    assert.equal(versionTarget({ index: 1, ids: "ab" }, 1), null);
    assert.equal(versionTarget({ index: 1, ids: ["a", 7] }, 1), null);
  });
});

describe("versions from the API", () => {
  it("are kept, and a different version shown changes the signature", () => {
    const one = fromApi({ id: "m1", role: "assistant", versions: { count: 2, index: 1, ids: ["m1", "m2"] } });
    const two = fromApi({ id: "m1", role: "assistant", versions: { count: 2, index: 2, ids: ["m0", "m1"] } });
    assert.deepEqual(one.versions.ids, ["m1", "m2"]);
    assert.notEqual(signature(one), signature(two));
  });
});

describe("applyAttached", () => {
  it("takes the text so far and the citations made, then deltas append", () => {
    const answer = localMessage("assistant", "stale saved te");
    answer.id = "m1";
    applyAttached(answer, {
      message_id: "m1",
      text: "Book early [1] ",
      citations: [{ number: 1, source: { chunk_id: 7, source_id: 3, title: "Travel", text: "Book early." } }],
    });
    applyDelta(answer, { message_id: "m1", text: "and ask the desk." });
    assert.equal(answer.status, "streaming");
    assert.equal(answer.content, "Book early [1] and ask the desk.");
    assert.deepEqual([...answer.cited], [1]);
    assert.equal(answer.sources[0].title, "Travel");
  });

  it("keeps the saved text when the frame has none", () => {
    const answer = localMessage("assistant", "saved");
    applyAttached(answer, { message_id: "m1" });
    assert.equal(answer.content, "saved");
  });
});
