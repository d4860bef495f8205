/*
 * Messages and their sources as the page keeps them: built from the JSON API and the
 * socket's frames, and the words shown for them.
 *
 * Pure: no DOM and no globals (tests/js/ imports it). A message is a plain object; `el` is
 * filled by render.js.
 */

import { passageUrl } from "./urls.js";

export const UNAVAILABLE = "No longer available";

export function asSource(raw) {
  // A passage the reader can no longer read arrives as its number only: it keeps its place in
  // the answer and says so, instead of vanishing and leaving dangling markers.
  if (raw.unavailable) {
    return {
      n: raw.n !== undefined ? raw.n : raw.number, unavailable: true, chunk_id: null, source_id: null,
      title: "", source_name: "", url: "", heading: "", page: null, text: "",
    };
  }
  return {
    n: raw.n !== undefined ? raw.n : raw.number,
    chunk_id: raw.chunk_id,
    source_id: raw.source_id,
    title: raw.title || "",
    source_name: raw.source_name || "",
    url: raw.url || "",
    heading: raw.heading || "",
    page: raw.page,
    text: raw.text || "",
  };
}

/** Source `n` of a message: a resolved citation first, else a passage found for it. */
export function sourceFor(message, n) {
  return (
    (message.citations || []).find((s) => s.n === n) || (message.sources || []).find((s) => s.n === n) || null
  );
}

export function sourceName(source) {
  if (!source) return "Unknown source";
  if (source.unavailable) return UNAVAILABLE;
  return source.title || source.source_name || "Untitled document";
}

export function sourceDetails(source) {
  const bits = [];
  if (source.title && source.source_name && source.source_name !== source.title) bits.push(source.source_name);
  if (source.heading) bits.push(source.heading);
  if (source.page) bits.push("page " + source.page);
  return bits.join(" · ");
}

/**
 * Where a source opens: its web address (http or https only), else its page in the knowledge
 * UI at the cited passage (`sourceUrl` is that page's address for source 0), else nowhere ("").
 */
export function sourceLink(source, sourceUrl) {
  if (source.unavailable) return "";
  if (source.url && /^https?:\/\//i.test(source.url)) return source.url;
  return passageUrl(sourceUrl, source.source_id, source.chunk_id);
}

export function fromApi(raw) {
  const citations = (raw.citations || []).map(asSource);
  return {
    id: raw.id,
    role: raw.role,
    content: raw.content || "",
    status: raw.status || "complete",
    error: raw.error || "",
    sources: (raw.sources || []).map(asSource),
    citations,
    cited: new Set(citations.map((c) => c.n)),
    unsupported: Array.isArray(raw.unsupported) ? raw.unsupported : [],
    fromCache: raw.from_cache === true,
    extractive: raw.extractive === true,
    clientWritten: raw.client_written === true,
    feedback: raw.feedback || null,
    replyTo: raw.reply_to || null,
    notUsed: raw.status === "failed",
    memory: raw.memory_used || [],
    versions: raw.versions || null,
    el: null,
  };
}

/** A message this tab shows before the server has stored it. */
export function localMessage(role, content) {
  return {
    id: null, role, content, status: role === "user" ? "complete" : "pending", error: "", sources: [],
    citations: [], cited: new Set(), unsupported: [], fromCache: false, extractive: false, clientWritten: false, feedback: null, replyTo: null, notUsed: false,
    memory: [], versions: null, el: null,
  };
}

/** Everything a message's element shows: equal signatures let a reload keep the element. */
export function signature(m) {
  return JSON.stringify([
    m.role, m.content, m.status, m.error, m.feedback && m.feedback.rating, m.sources.length, [...m.cited],
    m.unsupported, m.fromCache, m.extractive, m.clientWritten, m.versions && [m.versions.index, m.versions.count],
  ]);
}

/**
 * Whether an answer that ended offers "Try again" beside its note: one that failed (the model
 * is worth asking again, and a cut-off answer is unfinished), and one made of quoted passages
 * because the model was unavailable.
 */
export function offersRetry(m) {
  return m.role === "assistant" && Boolean(m.id) && (m.status === "failed" || (m.status === "complete" && m.extractive === true));
}

/** The id of the version `step` (-1 or 1) away from the one shown, or null at either end. */
export function versionTarget(versions, step) {
  if (!versions || !Array.isArray(versions.ids)) return null;
  const id = versions.ids[versions.index - 1 + step];
  return typeof id === "string" ? id : null;
}

export function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

/** While the model reads its prompt (before the first token) the wait says what it is reading. */
export function readingText(m) {
  const found = m.sources.length;
  return found ? "Reading " + plural(found, "source") + "…" : "Thinking…";
}
