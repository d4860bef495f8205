/*
 * Messages to DOM: questions and answers cloned from chat.html's <template>s and filled with
 * textContent (an answer's body comes from markdown.js), re-rendered at most once a frame
 * while streaming, and the page chrome that depends on the whole conversation.
 */

import { renderMarkdown } from "./markdown.js";
import { offersRetry, readingText, signature } from "./model.js";
import { els, isNearBottom, root, scrollToBottom, template } from "./page.js";
import { GREYED, groupSources, passageTitle } from "./sources.js";
import { isLive, lastOf, state } from "./state.js";
import { renderVersions } from "./versions.js";

export const messageOf = new WeakMap(); // <li> -> message

let afterChrome = () => {};

/**
 * Runs `callback` after every refreshChrome(). conversations.js hooks its polling here: the
 * callback keeps this module from importing it (module imports form no cycle, see main.js).
 */
export function onChromeRefreshed(callback) {
  afterChrome = callback;
}

export function buildMessage(m) {
  const li = template(m.role === "user" ? "tpl-question" : "tpl-answer");
  messageOf.set(li, m);
  m.el = li;
  if (m.role === "user") renderQuestion(m);
  else renderAnswer(m);
  return li;
}

export function renderQuestion(m) {
  m.el.dataset.messageId = m.id || "";
  if (m.id) m.el.id = "message-" + m.id; // the memory page links here (#message-<id>)
  m.el.querySelector(".question-text").textContent = m.content;
  renderVersions(m, m.el.querySelector(".question-tools"));
}

function renderAnswer(m) {
  const li = m.el;
  const writing = m.status === "streaming" || m.status === "pending";
  li.dataset.messageId = m.id || "";
  li.dataset.status = m.status;
  li.classList.toggle("is-streaming", writing);
  li.classList.toggle("is-live", isLive(m));
  const body = li.querySelector(".answer-body");
  body.replaceChildren(renderMarkdown(m.content, m));
  body.setAttribute("aria-busy", String(writing));
  renderAnswerStatus(m);
  renderMemory(m);
  m.el.querySelector(".answer-cached").hidden = !m.fromCache || writing;
  m.el.querySelector(".answer-extractive").hidden = !m.extractive || writing;
  m.el.querySelector(".answer-client-written").hidden = !m.clientWritten;
  renderRetry(m, canRegenerate(m));
  renderSources(m);
  renderVersions(m, li.querySelector('.answer-tools [data-action="copy"]'));
  li.querySelector(".answer-tools").hidden = writing || !m.id;
  // Nothing to copy or rate when the answer failed before writing anything.
  li.querySelector('[data-action="copy"]').hidden = !m.content;
  for (const action of ["thumbs-up", "thumbs-down"]) {
    li.querySelector('[data-action="' + action + '"]').hidden = !m.content;
  }
  setPressed(li, m.feedback ? m.feedback.rating : 0);
}

function renderAnswerStatus(m) {
  const line = m.el.querySelector(".answer-status");
  let text = "";
  let kind = "info";
  if (isLive(m) && state.live.stopRequested) text = "Stopping…";
  else if (m.status === "pending") text = "Searching the knowledge…";
  else if (m.status === "streaming" && isLive(m)) text = m.content ? "" : readingText(m);
  else if (m.status === "streaming") text = "Still writing… this answer refreshes when it is finished.";
  else if (m.status === "stopped") text = "Stopped";
  else if (m.status === "failed") {
    text = m.error || "The answer could not be written.";
    kind = "error";
  }
  line.textContent = text;
  line.dataset.kind = kind;
  line.hidden = !text;
}

/**
 * "Try again" beside a failed answer's note or an extractive answer's: only where regenerate
 * is offered (the conversation's last answer, nothing being written), as it regenerates.
 */
function renderRetry(m, allowed) {
  m.el.querySelector(".answer-retry").hidden = !allowed || m.extractive || !offersRetry(m);
  for (const button of m.el.querySelectorAll('[data-action="try-again"]')) button.hidden = !allowed;
}

function isBusy() {
  return Boolean(state.live) || state.messages.some((m) => m.status === "streaming");
}

function canRegenerate(m) {
  return !isBusy() && m === lastOf("assistant") && Boolean(m.id);
}

/** Which of the user's memory items the answer was given (their own, shown only to them). */
function renderMemory(m) {
  const line = m.el.querySelector(".answer-memory");
  const items = m.memory || [];
  line.querySelector(".answer-memory-items").textContent = items.map((item) => item.text).join("; ");
  line.hidden = items.length === 0;
}

/** One entry per document (sources.js groups them): its passages' numbers, then its label. */
function renderSources(m) {
  const section = m.el.querySelector(".answer-sources");
  const list = section.querySelector(".sources-list");
  list.replaceChildren(...groupSources(m).map(sourceEntry));
  section.querySelector(".sources-title").textContent = m.notUsed ? "Passages found" : "Sources";
  section.hidden = m.sources.length === 0;
}

function sourceEntry(group) {
  const item = template("tpl-source-item");
  if (group.state) item.classList.add("is-" + group.state);
  const numbers = item.querySelector(".source-numbers");
  for (const passage of group.passages) {
    const number = template("tpl-source-number");
    number.dataset.cite = String(passage.n);
    number.textContent = String(passage.n);
    number.title = passageTitle(passage, group);
    number.setAttribute("aria-label", number.title);
    if (passage.state && !group.state) number.classList.add("is-" + passage.state);
    numbers.append(number);
  }
  const button = item.querySelector(".source-button");
  button.dataset.cite = String(group.passages[0].n);
  button.title = group.title;
  item.querySelector(".source-label").textContent = group.label;
  const note = item.querySelector(".source-note");
  note.textContent = group.state ? GREYED[group.state].note : "";
  note.hidden = !group.state;
  return item;
}

export function setPressed(li, rating) {
  li.querySelector('[data-action="thumbs-up"]').setAttribute("aria-pressed", String(rating === 1));
  li.querySelector('[data-action="thumbs-down"]').setAttribute("aria-pressed", String(rating === -1));
}

const pendingRenders = new Set();
let renderFrame = 0;

/** Re-renders an answer at the next animation frame (many deltas, one render). */
export function scheduleRender(m) {
  pendingRenders.add(m);
  if (renderFrame) return;
  renderFrame = window.requestAnimationFrame(() => {
    renderFrame = 0;
    const stick = isNearBottom();
    for (const message of pendingRenders) if (message.el) renderAnswer(message);
    pendingRenders.clear();
    if (stick) scrollToBottom();
  });
}

export function renderNow(m) {
  pendingRenders.delete(m);
  const stick = isNearBottom();
  if (m.el) renderAnswer(m);
  if (stick) scrollToBottom();
}

let afterConversation = () => {};

/** Runs `callback` after every renderConversation() (live.js attaches to an answer being
 * written; a callback, as for onChromeRefreshed, keeps the imports free of cycles). */
export function onConversationRendered(callback) {
  afterConversation = callback;
}

/** Rebuilds the list, reusing the element of every message that did not change. */
export function renderConversation(previous = []) {
  const old = new Map(previous.filter((m) => m.id).map((m) => [m.id, m]));
  const items = state.messages.map((m) => {
    const before = m.id && old.get(m.id);
    if (before && before.el && signature(before) === signature(m)) {
      m.el = before.el;
      messageOf.set(m.el, m);
      return m.el;
    }
    return buildMessage(m);
  });
  els.messages.replaceChildren(...items);
  refreshChrome();
  afterConversation();
}

export function appendMessages(...messages) {
  for (const m of messages) els.messages.append(buildMessage(m));
  refreshChrome();
  scrollToBottom();
}

export function removeMessage(m) {
  state.messages = state.messages.filter((x) => x !== m);
  if (m.el) m.el.remove();
}

/** Everything that depends on the whole page state: title, empty state, tools, composer. */
export function refreshChrome() {
  const hasMessages = state.messages.length > 0;
  els.empty.hidden = hasMessages || Boolean(state.conversationId);
  els.title.textContent = state.title || (state.conversationId ? "Untitled conversation" : "New chat");
  document.title = (state.title || "Chat") + " · Assistant";
  const busy = isBusy();
  const lastQuestion = lastOf("user");
  for (const m of state.messages) {
    if (!m.el) continue;
    if (m.role === "assistant") {
      const allowed = canRegenerate(m);
      m.el.querySelector('[data-action="regenerate"]').hidden = !allowed;
      m.el.querySelector('[data-action="ask-afresh"]').hidden = !allowed;
      renderRetry(m, allowed);
    } else {
      m.el.querySelector('[data-action="edit"]').hidden = busy || m !== lastQuestion || !m.id;
    }
  }
  els.stop.hidden = !state.live;
  els.send.hidden = Boolean(state.live);
  root.dataset.live = state.live ? "1" : "";
  afterChrome();
}
