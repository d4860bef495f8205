// What survives sanitising of model output (static/js/chat/sanitizing.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { PURIFY_CONFIG, isSafeHref, keptClasses } from "../../static/js/chat/sanitizing.js";

describe("isSafeHref", () => {
  it("keeps web and mail links", () => {
    for (const href of ["https://example.com", "HTTP://example.com", "mailto:desk@example.com", "  https://x  "]) {
      assert.equal(isSafeHref(href), true, href);
    }
  });

  it("drops scripts, data, relative and empty addresses", () => {
    const refused = [
      "javascript:alert(1)", " JavaScript:alert(1)", "vbscript:x", "data:text/html,<script>", "/admin/", "#top",
      "//evil.example", "", null, undefined, "java\nscript:alert(1)",
    ];
    for (const href of refused) assert.equal(isSafeHref(href), false, String(href));
  });
});

describe("keptClasses", () => {
  it("keeps only language classes, and only on code", () => {
    assert.deepEqual(keptClasses("CODE", ["language-python", "cite-chip", "language-c++", "language-x\"y"]), [
      "language-python",
      "language-c++",
    ]);
    assert.deepEqual(keptClasses("SPAN", ["language-python"]), []);
    assert.deepEqual(keptClasses("CODE", []), []);
  });
});

describe("PURIFY_CONFIG", () => {
  it("forbids what could run, load or pose as the page's own controls", () => {
    for (const tag of ["script", "style", "iframe", "form", "button", "img", "link", "meta", "base"]) {
      assert.ok(PURIFY_CONFIG.FORBID_TAGS.includes(tag), tag);
    }
    assert.deepEqual(PURIFY_CONFIG.FORBID_ATTR, ["style", "id", "name"]);
    assert.equal(PURIFY_CONFIG.ALLOW_DATA_ATTR, false);
    assert.equal(PURIFY_CONFIG.RETURN_DOM_FRAGMENT, true);
  });
});
