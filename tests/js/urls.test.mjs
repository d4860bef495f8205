// The chat page's addresses (static/js/chat/urls.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  conversationApiUrl,
  conversationIdFromPath,
  conversationListUrl,
  conversationPageUrl,
  passageUrl,
} from "../../static/js/chat/urls.js";

const ID = "0b9d7a3e-4c1f-4f5e-9a51-2f1d9e0c7b66";

describe("conversation addresses", () => {
  it("puts the page under the home address, with or without its slash", () => {
    assert.equal(conversationPageUrl("/", ID), "/c/" + ID);
    assert.equal(conversationPageUrl("/chat", ID), "/chat/c/" + ID);
    assert.equal(conversationPageUrl("/chat/", ID), "/chat/c/" + ID);
  });

  it("escapes ids and search text", () => {
    assert.equal(conversationPageUrl("/", "../x?y#z"), "/c/..%2Fx%3Fy%23z");
    assert.equal(conversationApiUrl("/api/conversations", "a/b"), "/api/conversations/a%2Fb");
    assert.equal(conversationApiUrl("/api/conversations", ID, "rename"), "/api/conversations/" + ID + "/rename");
    assert.equal(conversationListUrl("/api/conversations", "a&b c#"), "/api/conversations?q=a%26b%20c%23");
    assert.equal(conversationListUrl("/api/conversations", ""), "/api/conversations");
  });
});

describe("conversationIdFromPath", () => {
  it("reads the conversation of a page address", () => {
    assert.equal(conversationIdFromPath("/c/" + ID), ID);
    assert.equal(conversationIdFromPath("/chat/c/" + ID + "/"), ID);
    assert.equal(conversationIdFromPath("/c/" + ID.toUpperCase()), ID.toUpperCase());
  });

  it("finds none in other addresses", () => {
    for (const path of ["/", "/c/", "/c/123", "/c/" + ID + "/edit", "/c/" + ID + "x", "/c/<script>"]) {
      assert.equal(conversationIdFromPath(path), null, path);
    }
  });
});

describe("passageUrl", () => {
  const SOURCE_URL = "/knowledge/sources/0/";

  it("is the source page anchored at the passage: /knowledge/sources/<source>/?chunk=<chunk>#chunk-<chunk>", () => {
    assert.equal(passageUrl(SOURCE_URL, 7, 1234), "/knowledge/sources/7/?chunk=1234#chunk-1234");
    assert.equal(passageUrl(SOURCE_URL, "7", "1234"), "/knowledge/sources/7/?chunk=1234#chunk-1234");
  });

  it("is the source page without an anchor when the passage is unknown", () => {
    for (const chunk of [null, undefined, "", 0]) assert.equal(passageUrl(SOURCE_URL, 7, chunk), "/knowledge/sources/7/");
  });

  it("is nothing without a source", () => {
    for (const source of [null, undefined, "", 0]) assert.equal(passageUrl(SOURCE_URL, source, 12), "");
  });

  it("keeps a hostile chunk id out of the address", () => {
    for (const chunk of ['1" onclick="x', "1#chunk-2", "-3", 1.5, "12abc", "javascript:alert(1)", { toString: () => "9" }]) {
      assert.equal(passageUrl(SOURCE_URL, 7, chunk), "/knowledge/sources/7/", String(chunk));
    }
  });

  it("escapes a hostile source id into the path", () => {
    assert.equal(passageUrl(SOURCE_URL, "../admin/?x=1", 3), "/knowledge/sources/..%2Fadmin%2F%3Fx%3D1/?chunk=3#chunk-3");
  });

  it("follows the address the template gives for source 0", () => {
    assert.equal(passageUrl("/kb/sources/0/", 12, 5), "/kb/sources/12/?chunk=5#chunk-5");
  });
});
