// An answer's sources, one entry per document (static/js/chat/sources.js).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { asSource } from "../../static/js/chat/model.js";
import { GREYED, groupSources, passageState, passageTitle, sectionOf } from "../../static/js/chat/sources.js";

const VACUUM = { source_id: 3, title: "25.1. Routine Vacuuming", source_name: "routine-vacuuming.html" };
const BACKUP = { source_id: 9, title: "Backup and Restore", source_name: "backup.html" };

function passage(n, document, heading, extra = {}) {
  return asSource({ n, chunk_id: 100 + n, ...document, url: "", heading, page: null, text: "…", ...extra });
}

function answer(sources, { cited = [], status = "complete", notUsed = false } = {}) {
  return { sources, cited: new Set(cited), status, notUsed };
}

describe("groupSources", () => {
  it("makes one entry per document with its passages' numbers, in order of first appearance", () => {
    const groups = groupSources(
      answer(
        [
          passage(1, VACUUM, "Recovering Disk Space"),
          passage(2, BACKUP, "SQL Dump"),
          passage(3, VACUUM, "Updating Planner Statistics"),
          passage(4, VACUUM, "Recovering Disk Space"),
        ],
        { cited: [1, 2, 3, 4] }
      )
    );
    assert.deepEqual(
      groups.map((g) => [g.name, g.passages.map((p) => p.n)]),
      [
        ["25.1. Routine Vacuuming", [1, 3, 4]],
        ["Backup and Restore", [2]],
      ]
    );
  });

  it("shows the sections first (each once), then the document", () => {
    const [vacuum] = groupSources(
      answer([passage(1, VACUUM, "Recovering Disk Space"), passage(2, VACUUM, "Recovering Disk Space"), passage(3, VACUUM, "Updating Planner Statistics")], { cited: [1] })
    );
    assert.deepEqual(vacuum.sections, ["Recovering Disk Space", "Updating Planner Statistics"]);
    assert.equal(vacuum.label, "Recovering Disk Space · Updating Planner Statistics — 25.1. Routine Vacuuming (routine-vacuuming.html)");
  });

  it("uses the page when a passage has no heading, and the document alone when neither", () => {
    const pdf = { source_id: 4, title: "On-call guide", source_name: "oncall.pdf" };
    const [g] = groupSources(answer([passage(1, pdf, "", { page: 4 })], { cited: [1] }));
    assert.equal(g.label, "page 4 — On-call guide (oncall.pdf)");
    const [plain] = groupSources(answer([passage(1, { source_id: 5, title: "notes.md", source_name: "notes.md" }, "")], { cited: [1] }));
    assert.equal(plain.label, "notes.md");
  });

  it("sorts passages by number whatever order they arrive in", () => {
    const [g] = groupSources(answer([passage(3, VACUUM, "B"), passage(1, VACUUM, "A")], { cited: [1, 3] }));
    assert.deepEqual(g.passages.map((p) => p.n), [1, 3]);
    assert.deepEqual(g.sections, ["A", "B"]);
  });

  it("keeps two documents of the same title apart when their sources differ", () => {
    const other = { ...VACUUM, source_id: 4 };
    assert.equal(groupSources(answer([passage(1, VACUUM, "A"), passage(2, other, "A")], { cited: [1, 2] })).length, 2);
  });

  it("groups passages without a source id by their title, file and address", () => {
    const web = { source_id: null, title: "Release runbook", source_name: "release.md" };
    const groups = groupSources(answer([passage(1, web, "Pipeline"), passage(2, web, "Rollback")], { cited: [1] }));
    assert.equal(groups.length, 1);
    assert.equal(groups[0].label, "Pipeline · Rollback — Release runbook (release.md)");
  });

  it("puts the passages the reader can no longer read in one entry that says so", () => {
    const groups = groupSources(
      answer([asSource({ number: 1, unavailable: true }), passage(2, VACUUM, "A"), asSource({ number: 3, unavailable: true })], { cited: [1, 2, 3] })
    );
    const gone = groups.find((g) => g.key === "unavailable");
    assert.deepEqual(gone.passages.map((p) => p.n), [1, 3]);
    assert.equal(gone.label, "No longer available");
    assert.equal(gone.state, "unavailable");
    assert.match(gone.title, /no longer available/);
  });

  it("handles an answer with no sources", () => {
    assert.deepEqual(groupSources(answer([])), []);
  });
});

describe("why an entry or a passage is greyed", () => {
  it("greys an entry none of whose passages the finished answer cites, and says why", () => {
    const groups = groupSources(answer([passage(1, VACUUM, "A"), passage(2, BACKUP, "B"), passage(3, BACKUP, "C")], { cited: [1] }));
    assert.deepEqual(groups.map((g) => g.state), [null, "uncited"]);
    assert.equal(GREYED[groups[1].state].note, "not cited in the answer");
    assert.match(groups[1].title, /\(not cited in the answer\)$/);
  });

  it("greys one passage, not its entry, when another passage of the document is cited", () => {
    const [g] = groupSources(answer([passage(1, VACUUM, "A"), passage(2, VACUUM, "B")], { cited: [2] }));
    assert.equal(g.state, null);
    assert.deepEqual(g.passages.map((p) => p.state), ["uncited", null]);
    assert.equal(passageTitle(g.passages[0], g), "Passage 1: A — 25.1. Routine Vacuuming (not cited in the answer)");
    assert.equal(passageTitle(g.passages[1], g), "Passage 2: B — 25.1. Routine Vacuuming");
  });

  it("greys nothing while the answer is being written: a marker may still come", () => {
    for (const status of ["pending", "streaming"]) {
      const groups = groupSources(answer([passage(1, VACUUM, "A")], { status }));
      assert.equal(groups[0].state, null, status);
    }
  });

  it("says a failed answer's passages were found but not used", () => {
    const [g] = groupSources(answer([passage(1, VACUUM, "A")], { status: "failed", notUsed: true }));
    assert.equal(g.state, "unused");
    assert.equal(GREYED.unused.note, "found, not used in an answer");
  });

  it("names the reason for each state", () => {
    const m = answer([], { cited: [1] });
    assert.equal(passageState(asSource({ number: 2, unavailable: true }), m), "unavailable");
    assert.equal(passageState(passage(1, VACUUM, "A"), m), null);
    assert.equal(passageState(passage(2, VACUUM, "A"), m), "uncited");
    assert.equal(sectionOf({ heading: "", page: null }), "");
  });
});
