// Citation markers and the "not found in source n" placement (static/js/chat/citations.js).
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";

import {
  MARKER_FREE,
  citationParts,
  placeUnsupported,
  squashed,
  unsupportedEntries,
  unsupportedLabel,
} from "../../static/js/chat/citations.js";

const known = (...numbers) => (n) => numbers.includes(n);

describe("citationParts", () => {
  it("turns a marker into a group between the text around it", () => {
    assert.deepEqual(citationParts("Book early [1].", known(1)), ["Book early ", [1], "."]);
  });

  it("keeps a group's known numbers once each, in the order written", () => {
    assert.deepEqual(citationParts("See [2, 2,1].", known(1, 2)), ["See ", [2, 1], "."]);
  });

  it("leaves text alone when no marker names a known source", () => {
    assert.equal(citationParts("No markers here.", known(1)), null);
    assert.equal(citationParts("Source [3] is not in this answer.", known(1, 2)), null);
    assert.equal(citationParts("An index [0].", known(1)), null);
  });

  it("drops unknown numbers from a group and keeps the known ones", () => {
    assert.deepEqual(citationParts("Both [1, 7].", known(1)), ["Both ", [1], "."]);
  });

  it("keeps adjacent markers apart, with the empty text between them", () => {
    assert.deepEqual(citationParts("[1][2]", known(1, 2)), ["", [1], "", [2], ""]);
  });

  it("treats numbers of more than three digits as text, not as citations", () => {
    assert.equal(citationParts("In [2024] and [1000].", known(2024, 1000)), null);
    assert.equal(citationParts("[99999999999999999999999]", () => true), null);
    // One oversized number makes the whole bracket text, not a partial group.
    assert.equal(citationParts("[1, 1000]", known(1)), null);
    assert.deepEqual(citationParts("[999]", known(999)), ["", [999], ""]);
  });

  it("reads leading zeros as the number", () => {
    assert.deepEqual(citationParts("[01]", known(1)), ["", [1], ""]);
  });

  it("ignores brackets that are not markers around a real one", () => {
    assert.deepEqual(citationParts("[[1]] [a] [1,] [ 1]", known(1)), ["[", [1], "] [a] [1,] [ 1]"]);
  });

  it("keeps HTML in the text as text (the caller makes text nodes of it)", () => {
    const parts = citationParts('<img src=x onerror="alert(1)">[1]</b>', known(1));
    assert.deepEqual(parts, ['<img src=x onerror="alert(1)">', [1], "</b>"]);
  });

  it("handles many markers in a long text", () => {
    const text = "word [1] ".repeat(5000);
    const parts = citationParts(text, known(1));
    assert.equal(parts.filter(Array.isArray).length, 5000);
    assert.equal(parts.filter((p) => typeof p === "string").join(""), "word  ".repeat(5000));
  });
});

// marked (the vendored build the page uses) renders code spans, code blocks and links as
// code, pre and a elements; the page never looks for markers in text inside MARKER_FREE. This
// walks marked's HTML the way the page walks its DOM, so a marker in code stays text.
const { Marked } = createRequire(import.meta.url)("../../static/vendor/marked/marked.umd.js");
const markdown = new Marked({ gfm: true, breaks: false });
const freeTags = new Set(MARKER_FREE.split(",").map((s) => s.trim()));
const ENTITIES = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": '"', "&#39;": "'" };

function chipsFromMarkdown(text, isKnown) {
  const open = [];
  const chips = [];
  for (const [, closing, tag, content] of markdown.parse(text).matchAll(/<(\/?)([a-z0-9]+)[^>]*>|([^<]+)/g)) {
    if (tag) {
      if (closing) open.splice(open.lastIndexOf(tag), 1);
      else open.push(tag);
      continue;
    }
    if (open.some((t) => freeTags.has(t))) continue;
    const parts = citationParts(content.replace(/&(?:lt|gt|amp|quot|#39);/g, (e) => ENTITIES[e]), isKnown);
    if (parts) chips.push(...parts.filter(Array.isArray));
  }
  return chips;
}

describe("markers in markdown", () => {
  it("become chips in prose but not in code spans, code blocks or links", () => {
    const text = "Use `items[1]` as in [1].\n\n```js\nconst x = list[2];\n```\n\nSee [the guide [2]](https://example.com) [2].";
    assert.deepEqual(chipsFromMarkdown(text, known(1, 2)), [[1], [2]]);
  });

  it("stay text when escaped or written as HTML-looking input", () => {
    assert.deepEqual(chipsFromMarkdown("Escaped \\[1\\] and <code>[1]</code>.", known(1)), [[1]]);
  });
});

describe("squashed", () => {
  it("keeps only letters and digits, lower-cased, in any script", () => {
    assert.equal(squashed("Book **early**: 14 days — München, Ωmega!"), "bookearly14daysmünchenωmega");
    assert.equal(squashed(null), "");
  });
});

describe("unsupportedLabel", () => {
  it("names one source or several", () => {
    assert.equal(unsupportedLabel([2]), "not found in source 2");
    assert.equal(unsupportedLabel([1, 3]), "not found in sources 1, 3");
  });
});

describe("unsupportedEntries", () => {
  it("keeps only entries with a sentence and at least one number", () => {
    const good = { sentence: "Fly economy.", numbers: [1], reason: "no match" };
    const list = [null, 7, {}, { sentence: 5, numbers: [1] }, { sentence: "x", numbers: [] }, { sentence: "x", numbers: "1" }, good];
    assert.deepEqual(unsupportedEntries(list), [good]);
  });

  it("gives nothing for a list that is not a list", () => {
    assert.deepEqual(unsupportedEntries({ sentence: "x", numbers: [1] }), []);
    assert.deepEqual(unsupportedEntries(undefined), []);
  });
});

describe("placeUnsupported", () => {
  const entry = (sentence, numbers) => ({ sentence, numbers });

  it("puts the note after the group that ends the sentence, matching rendered to markdown text", () => {
    const e = entry("Book through the **travel desk** `now`.", [1]);
    const groups = [{ before: "Book through the travel desk now. ", numbers: [1] }];
    assert.deepEqual(placeUnsupported(groups, [e]), [{ entry: e, group: 0 }]);
  });

  it("chooses the last group that fits when a sentence's ending repeats", () => {
    const e = entry("Ask the desk.", [1]);
    const groups = [
      { before: "Ask the desk. ", numbers: [1] },
      { before: "Other text.", numbers: [1] },
      { before: "Again: ask the desk.", numbers: [2, 1] },
    ];
    assert.equal(placeUnsupported(groups, [e])[0].group, 2);
  });

  it("needs the group to cite one of the sentence's sources", () => {
    const e = entry("Ask the desk.", [3]);
    assert.equal(placeUnsupported([{ before: "Ask the desk.", numbers: [1, 2] }], [e])[0].group, -1);
  });

  it("lists a sentence it cannot find on the page (-1), in the entries' order", () => {
    const a = entry("Never written.", [1]);
    const b = entry("Written.", [1]);
    const placed = placeUnsupported([{ before: "Written.", numbers: [1] }], [a, b]);
    assert.deepEqual(placed, [{ entry: a, group: -1 }, { entry: b, group: 0 }]);
  });

  it("never places a sentence with no letters or digits", () => {
    assert.equal(placeUnsupported([{ before: "anything", numbers: [1] }], [entry("…!? **", [1])])[0].group, -1);
  });

  it("compares the last 40 letters and digits of long sentences", () => {
    const long = "a".repeat(500) + ", and then the part that is actually written on the page.";
    const groups = [{ before: "Different start; then the part that is actually written on the page.", numbers: [1] }];
    assert.equal(placeUnsupported(groups, [entry(long, [1])])[0].group, 0);
  });

  it("treats HTML in a sentence as its letters", () => {
    const e = entry("<script>alert(1)</script> Fly economy.", [1]);
    assert.equal(placeUnsupported([{ before: "scriptalert1script fly economy", numbers: [1] }], [e])[0].group, 0);
  });
});
