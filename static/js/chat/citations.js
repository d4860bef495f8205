/*
 * Citation markers and the citation check's "not found in source n" notes, as plain data.
 *
 * Pure: no DOM and no globals, so Node's test runner imports it (tests/js/). markdown.js
 * applies the results to the sanitised DOM of an answer.
 */

/** `[1]`, `[2, 3]`: one to three digits a number, so `[2024]` or `[10000]` stays text. */
export const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

/** Text inside these elements never gets chips: a `[0]` in code is an index, in a link a label. */
export const MARKER_FREE = "code, pre, a";

/**
 * Splits one text node's text at its citation markers.
 *
 * Returns null when no marker names a known source; otherwise strings (text, kept verbatim,
 * possibly empty) alternating with arrays (the known, distinct numbers of one marker group), so
 * `citationParts("See [1].", known)` is `["See ", [1], "."]`. A marker whose numbers are all
 * unknown stays text.
 */
export function citationParts(text, isKnown) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(",").map((n) => Number(n.trim()));
    const known = numbers.filter((n, i) => isKnown(n) && numbers.indexOf(n) === i);
    if (!known.length) continue;
    parts.push(text.slice(last, match.index), known);
    last = match.index + match[0].length;
  }
  if (!parts.length) return null;
  parts.push(text.slice(last));
  return parts;
}

/** Letters and digits only: the stored sentence is the model's markdown, the page shows it rendered. */
export function squashed(text) {
  return (text || "").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
}

export function unsupportedLabel(numbers) {
  return "not found in " + (numbers.length === 1 ? "source " : "sources ") + numbers.join(", ");
}

/** The well-formed entries of a message's `unsupported` list (it comes from the server as JSON). */
export function unsupportedEntries(list) {
  return (Array.isArray(list) ? list : []).filter(
    (u) => u && typeof u.sentence === "string" && Array.isArray(u.numbers) && u.numbers.length
  );
}

/**
 * Where each unsupported sentence's note goes: after the last marker group whose preceding text
 * (letters and digits) ends like the sentence and which cites one of the sentence's sources.
 *
 * `groups` lists the answer's marker groups in document order as `{ before, numbers }`: the
 * text of the group's block before it (without the chips' numbers) and the numbers it shows.
 * Returns, for each entry in order, `{ entry, group }` with the group's index, or -1 when the
 * sentence was not found on the page (it is then listed under the answer).
 */
export function placeUnsupported(groups, entries) {
  const tails = entries.map((entry) => squashed(entry.sentence).slice(-40));
  const places = entries.map(() => -1);
  groups.forEach((group, index) => {
    const before = squashed(group.before);
    entries.forEach((entry, i) => {
      const tail = tails[i];
      if (tail && before.endsWith(tail) && group.numbers.some((n) => entry.numbers.includes(n))) places[i] = index;
    });
  });
  return entries.map((entry, i) => ({ entry, group: places[i] }));
}
