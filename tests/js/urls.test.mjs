// The chat page's addresses (static/js/chat/urls.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  conversationApiUrl,
  conversationIdFromPath,
  conversationListUrl,
  conversationPageUrl,
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
