/*
 * What the server's frames do to the answer being streamed (docs/websocket-protocol.md):
 * `retrieval` gives it an id and its sources, `delta`s append text, `citation`s resolve
 * markers, `done` settles it, `error` fails it; `attached` picks up one written elsewhere.
 *
 * Pure: each function changes the plain message object it is given (its identity matters to
 * the page) and touches no DOM; live.js decides which answer a frame is for and re-renders.
 */

import { asSource, sourceFor } from "./model.js";

const FALLBACK_MESSAGES = {
  rate_limited: "You are asking too fast. Wait a moment and try again.",
  busy: "An answer in this conversation is still being written; stop it or wait.",
  llm_unavailable: "The language model is not reachable right now. Try again in a moment.",
  llm_stream_broken: "The answer was cut off. Try again for a complete answer.",
  retrieval_failed: "Searching the knowledge failed. Try again in a moment.",
  too_long: "That question is too long.",
  not_found: "That conversation or message no longer exists.",
  unavailable: "The assistant is briefly unavailable while a service it needs restarts. Try again in a moment.",
};

/** Refusals that say "not now" rather than "no": shown as information, not as an error. */
export const TRANSIENT_ERRORS = new Set(["busy", "rate_limited", "unavailable"]);

/** Errors of the answering pipeline itself: they fail the answer rather than the request. */
export const PIPELINE_ERRORS = new Set(["llm_unavailable", "llm_stream_broken", "retrieval_failed", "internal"]);

/**
 * A refusal of the whole socket rather than of one request: the server accepted the socket but
 * cannot work now (Redis restarting), says so instead of `hello`, and closes it. (`unavailable`
 * after `hello` is about one frame, such as a stop that could not reach Redis.)
 */
export function refusesWaiting(frame, greeted) {
  return frame.code === "unavailable" && !frame.request_id && !greeted;
}

export function errorText(frame) {
  // hasOwn: a code such as "constructor" must not find Object.prototype's members.
  const fallback = Object.hasOwn(FALLBACK_MESSAGES, frame.code) ? FALLBACK_MESSAGES[frame.code] : "";
  return frame.message || fallback || "Something went wrong.";
}

export function applyRetrieval(answer, frame) {
  answer.id = frame.message_id;
  answer.replyTo = frame.question_id;
  answer.status = "streaming";
  answer.sources = (frame.sources || []).map(asSource);
  answer.memory = frame.memory || [];
}

/**
 * Appends a delta's text. A marker split across deltas (`[` then `1]`) needs nothing here:
 * the whole text is rendered again, so it becomes a chip once its `]` has arrived.
 */
export function applyDelta(answer, frame) {
  answer.content += frame.text || "";
}

/** A marker resolved to a passage: the passage joins the sources if it was not among them. */
export function applyCitation(answer, frame) {
  const source = asSource({ ...frame.source, n: frame.number });
  if (!sourceFor(answer, source.n)) answer.sources.push(source);
  answer.cited.add(source.n);
}

/** The stored answer: a complete one's text replaces what was streamed (they can differ). */
export function applyDone(answer, message) {
  answer.status = message.status || "complete";
  if (typeof message.content === "string" && answer.status === "complete") answer.content = message.content;
  answer.error = message.error || "";
  answer.unsupported = Array.isArray(message.unsupported) ? message.unsupported : [];
  answer.fromCache = message.from_cache === true;
  answer.extractive = message.extractive === true;
}

/**
 * Following an answer written elsewhere (`attached`): the text so far replaces what the page
 * had saved (it is newer), and the citations made so far resolve their markers.
 */
export function applyAttached(answer, frame) {
  answer.status = "streaming";
  if (typeof frame.text === "string") answer.content = frame.text;
  for (const citation of frame.citations || []) applyCitation(answer, citation);
}

export function applyFailure(answer, frame) {
  answer.status = "failed";
  answer.error = errorText(frame);
  answer.notUsed = true;
  if (Array.isArray(frame.sources) && frame.sources.length) answer.sources = frame.sources.map(asSource);
}
