/*
 * An answer's sources as the list under it shows them: one entry per document, with the
 * numbers of its passages, each passage's section first, then the document; and, for an entry
 * or a passage shown greyed, why.
 *
 * Pure: no DOM and no globals (tests/js/sources.test.mjs imports it). render.js draws it.
 */

import { UNAVAILABLE } from "./model.js";

/**
 * Why a passage is greyed, or null when it is not. The reasons are what the page knows:
 * - unavailable: the reader can no longer read its document (the API sends its number only);
 * - unused: the answer failed, so passages were found but no answer used them;
 * - uncited: the finished answer cites other passages, not this one.
 * While an answer is being written nothing is greyed: a marker may still come.
 */
export const GREYED = {
  unavailable: { note: "no longer available", title: "You can no longer read this document" },
  unused: { note: "found, not used in an answer", title: "Found for this question, but no answer was written from it" },
  uncited: { note: "not cited in the answer", title: "Found for this question, but not cited in the answer" },
};

export function passageState(source, message) {
  if (source.unavailable) return "unavailable";
  if (message.notUsed) return "unused";
  const writing = message.status === "streaming" || message.status === "pending";
  if (!writing && !message.cited.has(source.n)) return "uncited";
  return null;
}

/** Where a passage sits in its document: its heading (the deepest ones), else its page. */
export function sectionOf(source) {
  if (source.heading) return source.heading;
  if (source.page) return "page " + source.page;
  return "";
}

function documentKey(source) {
  if (source.unavailable) return "unavailable";
  if (source.source_id !== null && source.source_id !== undefined) return "source:" + source.source_id;
  return "name:" + (source.title || "") + "\u0000" + (source.source_name || "") + "\u0000" + (source.url || "");
}

function documentName(source) {
  if (source.unavailable) return UNAVAILABLE;
  return source.title || source.source_name || "Untitled document";
}

/** The file or address, when the title does not already say it. */
function documentDetail(source) {
  if (source.unavailable) return "";
  return source.title && source.source_name && source.source_name !== source.title ? source.source_name : "";
}

/**
 * The message's sources grouped by document, in the order of their first passage.
 *
 * Each group: `{ key, name, detail, sections, passages, state, label, title }` where
 * `passages` are `{ n, section, state }` in number order, `sections` the distinct sections in
 * that order, `state` the group's greying (a reason of GREYED when every passage shares it,
 * else null), `label` the visible text (sections first, then the document) and `title` the
 * full text for a tooltip.
 */
export function groupSources(message) {
  const groups = new Map();
  const sorted = [...(message.sources || [])].sort((a, b) => a.n - b.n);
  for (const source of sorted) {
    const key = documentKey(source);
    let group = groups.get(key);
    if (!group) {
      group = { key, name: documentName(source), detail: documentDetail(source), sections: [], passages: [] };
      groups.set(key, group);
    }
    const section = sectionOf(source);
    if (section && !group.sections.includes(section)) group.sections.push(section);
    group.passages.push({ n: source.n, section, state: passageState(source, message) });
  }
  return [...groups.values()].map(finish);
}

function finish(group) {
  const states = new Set(group.passages.map((p) => p.state));
  const state = states.size === 1 ? [...states][0] : null;
  const documentText = group.name + (group.detail ? " (" + group.detail + ")" : "");
  const label = group.sections.length ? group.sections.join(" · ") + " — " + documentText : documentText;
  const numbers = group.passages.map((p) => p.n).join(", ");
  let title = (group.passages.length === 1 ? "Passage " : "Passages ") + numbers + ": " + label;
  if (state) title += " (" + GREYED[state].note + ")";
  return { ...group, state, label, title };
}

/** The tooltip of one passage's number inside an entry. */
export function passageTitle(passage, group) {
  const where = passage.section ? passage.section + " — " + group.name : group.name;
  const reason = passage.state ? " (" + GREYED[passage.state].note + ")" : "";
  return "Passage " + passage.n + ": " + where + reason;
}
