// The sidebar's conversations as data (static/js/chat/history.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  GROUPS,
  emptyListText,
  groupConversations,
  groupOf,
  originLabel,
  withConversation,
} from "../../static/js/chat/history.js";

// Local times, so the tests hold in any time zone.
const NOW = new Date(2024, 5, 15, 10, 30); // 15 June 2024, 10:30
const at = (day, hour = 12, minute = 0) => new Date(2024, 5, day, hour, minute).toISOString();

describe("groupOf", () => {
  it("counts local calendar days, not 24-hour spans", () => {
    assert.equal(groupOf(at(15, 0, 0), NOW), "Today");
    assert.equal(groupOf(at(14, 23, 59), NOW), "Yesterday");
    assert.equal(groupOf(at(14, 0, 0), NOW), "Yesterday");
    assert.equal(groupOf(at(13, 23, 59), NOW), "Previous 7 days");
    assert.equal(groupOf(at(8, 0, 0), NOW), "Previous 7 days");
    assert.equal(groupOf(at(7, 23, 59), NOW), "Older");
  });

  it("puts a date in the future (a skewed clock) under Today", () => {
    assert.equal(groupOf(at(20), NOW), "Today");
  });

  it("puts what it cannot read under Older", () => {
    for (const value of ["yesterday", "", undefined, "2024-13-45T99:00:00Z", {}]) {
      assert.equal(groupOf(value, NOW), "Older", String(value));
    }
    assert.equal(groupOf(null, NOW), "Older"); // null reads as 1970
  });
});

describe("groupConversations", () => {
  it("keeps the groups' order and each group's order, and leaves out empty groups", () => {
    const conversations = [
      { id: "a", updated_at: at(15, 9) },
      { id: "b", updated_at: at(15, 8) },
      { id: "c", updated_at: at(1) },
      { id: "d", updated_at: "not a date" },
      { id: "e", updated_at: at(14) },
    ];
    const grouped = groupConversations(conversations, NOW);
    assert.deepEqual(
      grouped.map(([name, list]) => [name, list.map((c) => c.id)]),
      [["Today", ["a", "b"]], ["Yesterday", ["e"]], ["Older", ["c", "d"]]]
    );
    assert.deepEqual(GROUPS, ["Today", "Yesterday", "Previous 7 days", "Older"]);
  });

  it("gives nothing for no conversations", () => {
    assert.deepEqual(groupConversations([], NOW), []);
  });
});

describe("withConversation", () => {
  const list = [
    { id: "b", title: "B", updated_at: "2024-06-15T09:00:00Z" },
    { id: "a", title: "A", updated_at: "2024-06-14T09:00:00Z" },
  ];

  it("adds a conversation in date order, newest first", () => {
    const result = withConversation(list, { id: "c", updated_at: "2024-06-14T12:00:00Z" });
    assert.deepEqual(result.map((c) => c.id), ["b", "c", "a"]);
  });

  it("replaces a known conversation instead of listing it twice", () => {
    const result = withConversation(list, { id: "a", title: "A renamed", updated_at: "2024-06-16T00:00:00Z" });
    assert.deepEqual(result.map((c) => [c.id, c.title]), [["a", "A renamed"], ["b", "B"]]);
  });

  it("leaves the list it was given as it was", () => {
    const before = JSON.stringify(list);
    withConversation(list, { id: "z", updated_at: "2030-01-01T00:00:00Z" });
    assert.equal(JSON.stringify(list), before);
  });

  it("ignores a conversation without an id", () => {
    assert.equal(withConversation(list, {}), list);
    assert.equal(withConversation(list, null), list);
  });
});

describe("originLabel", () => {
  it("marks conversations started outside the web page", () => {
    assert.equal(originLabel("slack"), "Slack");
    assert.equal(originLabel("cli"), "CLI");
    assert.equal(originLabel("teams"), "TEAMS");
    assert.equal(originLabel("web"), "");
    assert.equal(originLabel(""), "");
    assert.equal(originLabel(undefined), "");
  });
});

describe("emptyListText", () => {
  it("quotes the search as typed (the page sets it as text)", () => {
    assert.equal(emptyListText('<img src=x onerror="alert(1)">'), 'No conversations match “<img src=x onerror="alert(1)">”.');
    assert.equal(emptyListText(""), "No conversations yet. Ask something to start one.");
  });
});
