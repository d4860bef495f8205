/*
 * The chat page: the sidebar of conversations, one conversation, answers streaming in with
 * citations. See docs/websocket-protocol.md for the frames and the JSON API.
 *
 * No framework and no build step. A small `state` object is the truth; DOM is cloned from the
 * <template> elements in templates/assistant/chat.html and filled with textContent. The one
 * place HTML is made from data is model output: marked renders it, DOMPurify sanitises the
 * result (always after rendering), and only then are citation chips and highlighting added to
 * the sanitised DOM.
 *
 * Depends on window.marked, window.DOMPurify, window.hljs (static/vendor/) and
 * window.AppEvents (static/js/events.js), all loaded with `defer` before this module runs.
 */

const root = document.getElementById("chat");

const config = {
  maxChars: Number(root.dataset.maxQuestionChars) || 4000,
  homeUrl: root.dataset.homeUrl || "/",
  listUrl: root.dataset.conversationsUrl || "/api/conversations",
  sourceUrl: root.dataset.sourceUrl || "/knowledge/sources/0/",
};
const COUNTER_FROM = 0.8; // show the character counter from this share of the limit
const POLL_MS = 2000;
const NARROW = window.matchMedia("(max-width: 800px)");

const $ = (selector, scope = root) => scope.querySelector(selector);
const els = {
  sidebar: $("#chat-sidebar"),
  backdrop: $(".sidebar-backdrop"),
  toggles: root.querySelectorAll('[data-action="toggle-sidebar"]'),
  headerToggle: $(".sidebar-toggle"),
  groups: $("[data-conversation-groups]"),
  sidebarEmpty: $("[data-sidebar-empty]"),
  search: $("#conversation-search"),
  title: $("#conversation-title"),
  connection: $("[data-connection-status]"),
  scroll: $("[data-scroll]"),
  empty: $("[data-empty-state]"),
  loading: $("[data-loading]"),
  messages: $("[data-messages]"),
  notice: $("[data-notice]"),
  noticeText: $("[data-notice-text]"),
  composer: $("[data-composer]"),
  input: $("#question"),
  counter: $("[data-char-count]"),
  send: $("[data-send]"),
  stop: $('[data-action="stop"]'),
  panel: $("[data-citation-panel]"),
  deleteDialog: document.querySelector("[data-delete-dialog]"),
};

const state = {
  conversationId: null,
  title: "",
  messages: [], // in display order; see fromApi() for the shape
  conversations: [], // the sidebar, newest first
  query: "",
  live: null, // the request this tab is streaming: {requestId, kind, question, answer, acked, sent, stopRequested}
  finishedHere: new Set(), // answers this tab streamed itself: their message.finished needs no refetch
  outbox: [], // frames waiting for the socket
  loadToken: 0,
  refetchTimer: null,
  refetchAfterLive: false,
  pollTimer: null,
  panelTrigger: null,
};

const messageOf = new WeakMap(); // <li> -> message

// --- small helpers ------------------------------------------------------------------------

function template(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

function requestId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return "r" + Date.now().toString(36) + Math.random().toString(36).slice(2);
}

function conversationPageUrl(id) {
  return config.homeUrl.replace(/\/?$/, "/") + "c/" + encodeURIComponent(id);
}

function conversationApiUrl(id, action) {
  return config.listUrl + "/" + encodeURIComponent(id) + (action ? "/" + action : "");
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

async function api(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") {
    headers["X-CSRFToken"] = csrfToken();
    headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  if (response.redirected && new URL(response.url).pathname.startsWith("/accounts/")) {
    window.location.assign(response.url); // the session ended: go and sign in again
    throw new Error("Your session has ended.");
  }
  let data = null;
  try {
    data = await response.json();
  } catch (error) {
    data = null;
  }
  if (!response.ok) {
    const error = new Error((data && data.error) || "The server answered " + response.status + ".");
    error.status = response.status;
    throw error;
  }
  return data || {};
}

function isNearBottom() {
  const s = els.scroll;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

function scrollToBottom() {
  els.scroll.scrollTop = els.scroll.scrollHeight;
}

function plural(n, word) {
  return n + " " + word + (n === 1 ? "" : "s");
}

// --- notices ------------------------------------------------------------------------------

const FALLBACK_MESSAGES = {
  rate_limited: "You are asking too fast. Wait a moment and try again.",
  busy: "An answer in this conversation is still being written; stop it or wait.",
  llm_unavailable: "The language model is not reachable right now. Try again in a moment.",
  llm_stream_broken: "The answer was cut off. Try regenerating it.",
  retrieval_failed: "Searching the knowledge failed. Try again in a moment.",
  too_long: "That question is too long.",
  not_found: "That conversation or message no longer exists.",
};

function showNotice(text, kind = "error") {
  els.noticeText.textContent = text;
  els.notice.dataset.kind = kind;
  els.notice.hidden = false;
}

function hideNotice() {
  els.notice.hidden = true;
  els.noticeText.textContent = "";
}

function errorText(frame) {
  return frame.message || FALLBACK_MESSAGES[frame.code] || "Something went wrong.";
}

// --- the socket ---------------------------------------------------------------------------

function sendFrame(frame) {
  if (window.AppEvents.send(frame)) return true;
  state.outbox.push(frame);
  els.connection.hidden = false;
  return false;
}

function flushOutbox() {
  const waiting = state.outbox.splice(0);
  for (const frame of waiting) {
    if (!window.AppEvents.send(frame)) {
      state.outbox.unshift(frame);
      return;
    }
    if (state.live && frame.request_id === state.live.requestId) state.live.sent = true;
  }
}

// --- markdown, sanitising, citations ------------------------------------------------------

const markdown = new window.marked.Marked({ gfm: true, breaks: false });
const SAFE_HREF = /^(?:https?:|mailto:)/i;
const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    "script", "style", "iframe", "object", "embed", "form", "input", "button", "textarea",
    "select", "option", "img", "picture", "source", "video", "audio", "link", "meta", "base",
  ],
  // id/name could clobber the page's own globals and ids; style could dress output as page UI.
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false, // data-action / data-cite in output must not drive the page's buttons
  RETURN_DOM_FRAGMENT: true,
};

window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    const href = (node.getAttribute("href") || "").trim();
    if (href && SAFE_HREF.test(href)) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else {
      node.removeAttribute("href");
    }
  }
  if (node.hasAttribute && node.hasAttribute("class")) {
    // Only marked's language class on code blocks survives (highlight.js reads it).
    const keep = node.nodeName === "CODE" ? [...node.classList].filter((c) => /^language-[\w+#-]+$/.test(c)) : [];
    if (keep.length) node.setAttribute("class", keep.join(" "));
    else node.removeAttribute("class");
  }
});

if (window.hljs) window.hljs.configure({ ignoreUnescapedHTML: true });

const MARKER = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;

function renderMarkdown(text, message) {
  const html = markdown.parse(text || "");
  const fragment = window.DOMPurify.sanitize(html, PURIFY_CONFIG);
  addCitationChips(fragment, message);
  markUnsupported(fragment, message);
  enhanceCode(fragment);
  return fragment;
}

// --- sentences the citation check did not find in their source --------------------------------

/** Letters and digits only: the stored sentence is the model's markdown, the page shows it rendered. */
function squashed(text) {
  return (text || "").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");
}

/** The text of `block` before `group`, without the chips' numbers. */
function textBefore(block, group) {
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
  let text = "";
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (group.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) break;
    if (!node.parentElement || !node.parentElement.closest(".cite-group")) text += node.nodeValue;
  }
  return text;
}

function unsupportedLabel(numbers) {
  return "not found in " + (numbers.length === 1 ? "source " : "sources ") + numbers.join(", ");
}

function unsupportedMark(entry) {
  const mark = document.createElement("span");
  mark.className = "cite-unsupported";
  mark.textContent = unsupportedLabel(entry.numbers);
  mark.title = "The citation check did not find this sentence in its source" + (entry.reason ? ": " + entry.reason : "");
  return mark;
}

/**
 * Puts a discreet "not found in source n" after the markers of each sentence the citation
 * check marked unsupported: the last marker group of that sentence whose text (letters and
 * digits) ends like the sentence. A sentence not found on the page is listed under the answer.
 */
function markUnsupported(fragment, message) {
  const entries = (message.unsupported || []).filter(
    (u) => u && typeof u.sentence === "string" && Array.isArray(u.numbers) && u.numbers.length
  );
  if (!entries.length) return;
  const places = new Map();
  for (const group of fragment.querySelectorAll(".cite-group")) {
    const block = group.closest("p, li, td, th, h1, h2, h3, h4, h5, h6, blockquote") || fragment;
    const before = squashed(textBefore(block, group));
    const numbers = [...group.querySelectorAll(".cite-chip")].map((chip) => Number(chip.dataset.cite));
    for (const entry of entries) {
      const tail = squashed(entry.sentence).slice(-40);
      if (tail && before.endsWith(tail) && numbers.some((n) => entry.numbers.includes(n))) places.set(entry, group);
    }
  }
  const missing = [];
  for (const entry of entries) {
    const group = places.get(entry);
    if (group) group.after(unsupportedMark(entry));
    else missing.push(entry);
  }
  if (!missing.length) return;
  const list = document.createElement("ul");
  list.className = "unsupported-list";
  for (const entry of missing) {
    const item = document.createElement("li");
    item.append(unsupportedMark(entry), document.createTextNode(" " + entry.sentence));
    list.append(item);
  }
  fragment.append(list);
}

/** Swaps `[n]` markers in text nodes (not in code or links) for chip buttons. */
function addCitationChips(fragment, message) {
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const parent = node.parentElement;
      if (parent && parent.closest("code, pre, a")) return NodeFilter.FILTER_REJECT;
      return node.nodeValue.includes("[") ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    },
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) replaceMarkers(node, message);
}

function replaceMarkers(node, message) {
  const text = node.nodeValue;
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const numbers = match[1].split(",").map((n) => Number(n.trim()));
    const known = numbers.filter((n, i) => sourceFor(message, n) && numbers.indexOf(n) === i);
    if (!known.length) continue;
    parts.push(document.createTextNode(text.slice(last, match.index)));
    const group = document.createElement("span");
    group.className = "cite-group";
    for (const n of known) group.append(citationChip(message, n));
    parts.push(group);
    last = match.index + match[0].length;
  }
  if (!parts.length) return;
  parts.push(document.createTextNode(text.slice(last)));
  node.replaceWith(...parts);
}

function citationChip(message, n) {
  const source = sourceFor(message, n);
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = "cite-chip";
  chip.dataset.cite = String(n);
  chip.textContent = String(n);
  chip.setAttribute("aria-label", "Source " + n + ": " + sourceName(source));
  chip.title = sourceName(source);
  if (source && source.unavailable) chip.classList.add("is-unavailable");
  return chip;
}

function enhanceCode(fragment) {
  for (const code of fragment.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    const language = [...code.classList].find((c) => c.startsWith("language-"));
    const name = language ? language.slice("language-".length) : "";
    if (window.hljs && (!name || window.hljs.getLanguage(name))) {
      window.hljs.highlightElement(code);
    } else {
      code.classList.add("hljs");
    }
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const label = document.createElement("span");
    label.textContent = name || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "code-copy";
    copy.dataset.action = "copy-code";
    copy.textContent = "Copy";
    bar.append(label, copy);
    pre.prepend(bar);
  }
}

// --- sources ------------------------------------------------------------------------------

function asSource(raw) {
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

function sourceFor(message, n) {
  return (
    (message.citations || []).find((s) => s.n === n) || (message.sources || []).find((s) => s.n === n) || null
  );
}

const UNAVAILABLE = "No longer available";

function sourceName(source) {
  if (!source) return "Unknown source";
  if (source.unavailable) return UNAVAILABLE;
  return source.title || source.source_name || "Untitled document";
}

function sourceDetails(source) {
  const bits = [];
  if (source.title && source.source_name && source.source_name !== source.title) bits.push(source.source_name);
  if (source.heading) bits.push(source.heading);
  if (source.page) bits.push("page " + source.page);
  return bits.join(" · ");
}

function sourceLink(source) {
  if (source.unavailable) return "";
  if (source.url && /^https?:\/\//i.test(source.url)) return source.url;
  if (source.source_id) return config.sourceUrl.replace(/\/0\/$/, "/" + encodeURIComponent(source.source_id) + "/");
  return "";
}

// --- messages -----------------------------------------------------------------------------

function fromApi(raw) {
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
    feedback: raw.feedback || null,
    replyTo: raw.reply_to || null,
    notUsed: raw.status === "failed",
    memory: raw.memory_used || [],
    el: null,
  };
}

function localMessage(role, content) {
  return {
    id: null, role, content, status: role === "user" ? "complete" : "pending", error: "", sources: [],
    citations: [], cited: new Set(), unsupported: [], fromCache: false, feedback: null, replyTo: null, notUsed: false,
    memory: [], el: null,
  };
}

function signature(m) {
  return JSON.stringify([
    m.role, m.content, m.status, m.error, m.feedback && m.feedback.rating, m.sources.length, [...m.cited],
    m.unsupported, m.fromCache,
  ]);
}

function buildMessage(m) {
  const li = template(m.role === "user" ? "tpl-question" : "tpl-answer");
  messageOf.set(li, m);
  m.el = li;
  if (m.role === "user") renderQuestion(m);
  else renderAnswer(m);
  return li;
}

function renderQuestion(m) {
  m.el.dataset.messageId = m.id || "";
  m.el.querySelector(".question-text").textContent = m.content;
}

function isLive(m) {
  return Boolean(state.live && state.live.answer === m);
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
  renderSources(m);
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

/** While the model reads its prompt (before the first token) the wait says what it is reading. */
function readingText(m) {
  const found = m.sources.length;
  return found ? "Reading " + plural(found, "source") + "…" : "Thinking…";
}

/** Which of the user's memory items the answer was given (their own, shown only to them). */
function renderMemory(m) {
  const line = m.el.querySelector(".answer-memory");
  const items = m.memory || [];
  line.querySelector(".answer-memory-items").textContent = items.map((item) => item.text).join("; ");
  line.hidden = items.length === 0;
}

function renderSources(m) {
  const section = m.el.querySelector(".answer-sources");
  const list = section.querySelector(".sources-list");
  list.replaceChildren();
  for (const source of m.sources) {
    const item = template("tpl-source-item");
    const button = item.querySelector(".source-button");
    button.dataset.cite = String(source.n);
    item.querySelector(".source-number").textContent = String(source.n);
    const label = item.querySelector(".source-label");
    const details = sourceDetails(source);
    label.textContent = sourceName(source) + (details ? " — " + details : "");
    if (source.unavailable) {
      item.classList.add("is-unavailable");
      button.title = "You can no longer read this document";
    } else if (m.notUsed) {
      const note = document.createElement("span");
      note.className = "source-note";
      note.textContent = "found, not used in an answer";
      button.append(note);
      item.classList.add("is-unused");
    } else if (m.status !== "streaming" && m.status !== "pending" && !m.cited.has(source.n)) {
      item.classList.add("is-uncited");
      button.title = "Found for this question; not cited in the answer";
    }
    list.append(item);
  }
  section.querySelector(".sources-title").textContent = m.notUsed ? "Passages found" : "Sources";
  section.hidden = m.sources.length === 0;
}

function setPressed(li, rating) {
  li.querySelector('[data-action="thumbs-up"]').setAttribute("aria-pressed", String(rating === 1));
  li.querySelector('[data-action="thumbs-down"]').setAttribute("aria-pressed", String(rating === -1));
}

const pendingRenders = new Set();
let renderFrame = 0;

/** Re-renders an answer at the next animation frame (many deltas, one render). */
function scheduleRender(m) {
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

function renderNow(m) {
  pendingRenders.delete(m);
  const stick = isNearBottom();
  if (m.el) renderAnswer(m);
  if (stick) scrollToBottom();
}

/** Rebuilds the list, reusing the element of every message that did not change. */
function renderConversation(previous = []) {
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
}

function appendMessages(...messages) {
  for (const m of messages) els.messages.append(buildMessage(m));
  refreshChrome();
  scrollToBottom();
}

function removeMessage(m) {
  state.messages = state.messages.filter((x) => x !== m);
  if (m.el) m.el.remove();
}

function lastOf(role) {
  for (let i = state.messages.length - 1; i >= 0; i -= 1) if (state.messages[i].role === role) return state.messages[i];
  return null;
}

/** Everything that depends on the whole page state: title, empty state, tools, composer. */
function refreshChrome() {
  const hasMessages = state.messages.length > 0;
  els.empty.hidden = hasMessages || Boolean(state.conversationId);
  els.title.textContent = state.title || (state.conversationId ? "Untitled conversation" : "New chat");
  document.title = (state.title || "Chat") + " · Assistant";
  const busy = Boolean(state.live) || state.messages.some((m) => m.status === "streaming");
  const lastAnswer = lastOf("assistant");
  const lastQuestion = lastOf("user");
  for (const m of state.messages) {
    if (!m.el) continue;
    if (m.role === "assistant") {
      const canRegenerate = !busy && m === lastAnswer && Boolean(m.id);
      m.el.querySelector('[data-action="regenerate"]').hidden = !canRegenerate;
      m.el.querySelector('[data-action="ask-afresh"]').hidden = !canRegenerate;
    } else {
      m.el.querySelector('[data-action="edit"]').hidden = busy || m !== lastQuestion || !m.id;
    }
  }
  els.stop.hidden = !state.live;
  els.send.hidden = Boolean(state.live);
  root.dataset.live = state.live ? "1" : "";
  updatePolling();
}

// --- asking -------------------------------------------------------------------------------

function checkLength(text) {
  if (text.length <= config.maxChars) return true;
  showNotice(
    "Your question is " + text.length.toLocaleString() + " characters long; the limit is " +
      config.maxChars.toLocaleString() + ". Shorten it and send again."
  );
  return false;
}

function refuseWhileBusy() {
  if (!state.live && !state.messages.some((m) => m.status === "streaming")) return false;
  showNotice("An answer is still being written. Stop it (Esc) or wait for it to finish.", "info");
  return true;
}

function startLive(kind, question, answer) {
  state.live = { requestId: requestId(), kind, question, answer, acked: false, sent: false, stopRequested: false };
  return state.live;
}

function ask(rawText) {
  const text = rawText.trim();
  if (!text) return false;
  if (!checkLength(text) || refuseWhileBusy()) return false;
  hideNotice();
  const question = localMessage("user", text);
  const answer = localMessage("assistant", "");
  const live = startLive("ask", question, answer);
  live.text = text;
  state.messages.push(question, answer);
  appendMessages(question, answer);
  live.sent = sendFrame({ type: "ask", request_id: live.requestId, conversation_id: state.conversationId, text });
  return true;
}

function regenerate(answer) {
  if (refuseWhileBusy()) return;
  hideNotice();
  const question = state.messages.find((m) => m.id && m.id === answer.replyTo) || lastOf("user");
  const fresh = localMessage("assistant", "");
  fresh.replyTo = question ? question.id : null;
  const live = startLive("regenerate", question, fresh);
  const index = state.messages.indexOf(answer);
  state.messages.splice(index, 1, fresh);
  answer.el.replaceWith(buildMessage(fresh));
  refreshChrome();
  live.sent = sendFrame({ type: "regenerate", request_id: live.requestId, message_id: answer.id });
}

function submitEdit(question, rawText) {
  const text = rawText.trim();
  if (!text || !checkLength(text) || refuseWhileBusy()) return false;
  hideNotice();
  const index = state.messages.indexOf(question);
  for (const m of state.messages.slice(index)) if (m.el) m.el.remove();
  state.messages = state.messages.slice(0, index);
  const edited = localMessage("user", text);
  const answer = localMessage("assistant", "");
  const live = startLive("edit", edited, answer);
  state.messages.push(edited, answer);
  appendMessages(edited, answer);
  live.sent = sendFrame({ type: "edit", request_id: live.requestId, message_id: question.id, text });
  return true;
}

function stop() {
  const live = state.live;
  if (!live) return;
  live.stopRequested = true;
  if (live.answer.id) sendFrame({ type: "stop", message_id: live.answer.id });
  renderNow(live.answer);
}

function finishLive() {
  const live = state.live;
  state.live = null;
  if (live.answer.id) state.finishedHere.add(live.answer.id);
  if (live.answer.el) renderNow(live.answer);
  refreshChrome();
  if (state.refetchAfterLive) {
    state.refetchAfterLive = false;
    scheduleRefetch();
  }
}

/** The request was refused before anything was stored: put things back as they were. */
function abandonLive(frame) {
  const live = state.live;
  state.live = null;
  if (live.kind === "ask") {
    removeMessage(live.answer);
    removeMessage(live.question);
    if (!els.input.value.trim()) {
      els.input.value = live.text;
      onInput();
    }
    refreshChrome();
  } else if (state.conversationId) {
    loadConversation(state.conversationId, { quiet: true });
  }
  showNotice(errorText(frame), frame.code === "busy" || frame.code === "rate_limited" ? "info" : "error");
  els.input.focus();
}

// --- frames from the server ---------------------------------------------------------------

function onAck(frame) {
  const live = state.live;
  if (!live || frame.request_id !== live.requestId) return;
  live.acked = true;
  live.question.id = frame.question_id;
  renderQuestion(live.question);
  if (state.conversationId !== frame.conversation_id) {
    if (state.conversationId) {
      // Asked in a Slack thread's conversation: the server started a new conversation for it,
      // so the thread's turns leave the screen and only this question and its answer stay.
      for (const m of state.messages) if (m !== live.question && m !== live.answer && m.el) m.el.remove();
      state.messages = state.messages.filter((m) => m === live.question || m === live.answer);
    }
    state.conversationId = frame.conversation_id;
    const known = state.conversations.find((c) => c.id === frame.conversation_id);
    state.title = known ? known.title : live.question.content.slice(0, 60);
    history.pushState({ conversationId: frame.conversation_id }, "", conversationPageUrl(frame.conversation_id));
    renderSidebar();
    renderRememberToggle({ remember: known ? known.remember !== false : true });
  }
  refreshChrome();
}

function onRetrieval(frame) {
  const live = state.live;
  if (!live || !live.acked || frame.question_id !== live.question.id) return;
  const answer = live.answer;
  answer.id = frame.message_id;
  answer.replyTo = frame.question_id;
  answer.status = "streaming";
  answer.sources = (frame.sources || []).map(asSource);
  answer.memory = frame.memory || [];
  if (live.stopRequested) sendFrame({ type: "stop", message_id: answer.id });
  renderNow(answer);
}

function liveAnswer(messageId) {
  return state.live && state.live.answer.id && state.live.answer.id === messageId ? state.live.answer : null;
}

function onDelta(frame) {
  const answer = liveAnswer(frame.message_id);
  if (!answer) return;
  answer.content += frame.text || "";
  scheduleRender(answer);
}

function onCitation(frame) {
  const answer = liveAnswer(frame.message_id);
  if (!answer) return;
  const source = asSource({ ...frame.source, n: frame.number });
  if (!sourceFor(answer, source.n)) answer.sources.push(source);
  answer.cited.add(source.n);
  scheduleRender(answer);
}

function onDone(frame) {
  const message = frame.message || {};
  const answer = liveAnswer(message.id);
  if (!answer) return;
  answer.status = message.status || "complete";
  if (typeof message.content === "string" && answer.status === "complete") answer.content = message.content;
  answer.error = message.error || "";
  answer.unsupported = Array.isArray(message.unsupported) ? message.unsupported : [];
  answer.fromCache = message.from_cache === true;
  finishLive();
}

const PIPELINE_ERRORS = new Set(["llm_unavailable", "llm_stream_broken", "retrieval_failed", "internal"]);

function onError(frame) {
  const live = state.live;
  if (live && frame.request_id && frame.request_id === live.requestId && !live.acked) {
    abandonLive(frame);
    return;
  }
  const answer = frame.message_id ? liveAnswer(frame.message_id) : null;
  if (answer || (live && live.acked && !frame.message_id && PIPELINE_ERRORS.has(frame.code))) {
    const target = answer || live.answer;
    target.status = "failed";
    target.error = errorText(frame);
    target.notUsed = true;
    if (Array.isArray(frame.sources) && frame.sources.length) target.sources = frame.sources.map(asSource);
    finishLive();
    return;
  }
  showNotice(errorText(frame));
}

function onFeedbackSaved(frame) {
  const m = state.messages.find((x) => x.id === frame.message_id);
  if (!m) return;
  m.feedback = { ...(m.feedback || {}), rating: frame.rating };
  setPressed(m.el, frame.rating);
}

// --- coarse events (every tab of the user) ------------------------------------------------

function upsertConversation(conversation) {
  if (!conversation || !conversation.id) return;
  const list = state.conversations.filter((c) => c.id !== conversation.id);
  list.push(conversation);
  list.sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
  state.conversations = list;
}

function onConversationEvent(event) {
  const conversation = event.conversation || {};
  if (state.query) loadConversations();
  if (event.type === "conversation.deleted") {
    state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
    renderSidebar();
    if (conversation.id === state.conversationId) {
      newChat({ push: true });
      showNotice("This conversation was deleted.", "info");
    }
    return;
  }
  if (!state.query) {
    upsertConversation(conversation);
    renderSidebar();
  }
  if (conversation.id !== state.conversationId) return;
  if (conversation.title) {
    state.title = conversation.title;
    refreshChrome();
  }
  // Another tab asked here: show its question and follow its answer.
  if (event.type === "conversation.updated") scheduleRefetch();
}

function onMessageFinished(event) {
  if (event.conversation_id !== state.conversationId) return;
  if (state.finishedHere.has(event.message_id) || liveAnswer(event.message_id)) return;
  scheduleRefetch();
}

function onSocketOpen() {
  els.connection.hidden = true;
  flushOutbox();
}

function onSocketClose() {
  els.connection.hidden = false;
  const live = state.live;
  if (!live || !live.sent) return; // still queued: it goes out on reconnect
  state.live = null;
  if (live.acked) {
    // The answer goes on without us; the reload on reconnect picks it up.
    if (live.answer.id) live.answer.status = "streaming";
    else removeMessage(live.answer);
    if (live.answer.el) renderNow(live.answer);
    refreshChrome();
    return;
  }
  removeMessage(live.answer);
  removeMessage(live.question);
  refreshChrome();
  if (live.kind === "ask" && !els.input.value.trim()) {
    els.input.value = live.text;
    onInput();
  }
  showNotice("The connection dropped before your question was confirmed. Check the conversation, then send it again if it is missing.", "info");
}

function onReconnected() {
  loadConversations();
  if (state.conversationId) loadConversation(state.conversationId, { quiet: true });
}

// --- loading ------------------------------------------------------------------------------

function scheduleRefetch(delay = 150) {
  if (!state.conversationId) return;
  if (state.live) {
    state.refetchAfterLive = true;
    return;
  }
  clearTimeout(state.refetchTimer);
  const id = state.conversationId;
  state.refetchTimer = setTimeout(() => {
    if (state.conversationId === id && !state.live) loadConversation(id, { quiet: true });
  }, delay);
}

/** While an answer written elsewhere is streaming, look again every 2 s. */
function updatePolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
  const waiting = state.messages.some((m) => m.status === "streaming" && !isLive(m));
  if (waiting) state.pollTimer = setTimeout(() => scheduleRefetch(0), POLL_MS);
}

async function loadConversation(id, { quiet = false } = {}) {
  const token = ++state.loadToken;
  if (!quiet) {
    els.loading.hidden = false;
    els.messages.replaceChildren();
    els.empty.hidden = true;
  }
  let data;
  try {
    data = await api(conversationApiUrl(id));
  } catch (error) {
    if (token !== state.loadToken) return;
    els.loading.hidden = true;
    if (error.status === 404) {
      newChat({ replace: true });
      showNotice("That conversation does not exist, or it is not yours.");
    } else {
      showNotice("The conversation could not be loaded: " + error.message);
    }
    return;
  }
  if (token !== state.loadToken) return; // a newer load (or a new chat) won
  if (state.live && state.conversationId === id) {
    state.refetchAfterLive = true; // an answer started meanwhile; look again when it ends
    els.loading.hidden = true;
    return;
  }
  const stick = quiet ? isNearBottom() : true;
  const previous = state.conversationId === id ? state.messages : [];
  const scrollTop = els.scroll.scrollTop;
  state.conversationId = id;
  state.title = data.conversation.title || "";
  state.messages = (data.messages || []).map(fromApi);
  renderRememberToggle(data.conversation);
  els.loading.hidden = true;
  renderConversation(previous);
  renderSidebar();
  if (stick) scrollToBottom();
  else els.scroll.scrollTop = scrollTop;
  root.dataset.loaded = id;
}

// --- the per-conversation memory switch ---------------------------------------------------

const rememberToggle = $("[data-remember-toggle]");
const rememberBox = $("[data-remember-checkbox]");

function renderRememberToggle(conversation) {
  rememberToggle.hidden = !conversation;
  if (conversation) rememberBox.checked = conversation.remember !== false;
}

rememberBox.addEventListener("change", async () => {
  const id = state.conversationId;
  if (!id) return;
  const wanted = rememberBox.checked;
  try {
    await api(conversationApiUrl(id) + "/remember", { method: "POST", body: { remember: wanted } });
  } catch (error) {
    rememberBox.checked = !wanted;
    showNotice("The memory setting could not be saved: " + error.message);
  }
});

async function loadConversations() {
  const query = state.query;
  const url = query ? config.listUrl + "?q=" + encodeURIComponent(query) : config.listUrl;
  try {
    const data = await api(url);
    if (query !== state.query) return;
    state.conversations = data.conversations || [];
    renderSidebar();
  } catch (error) {
    showNotice("Your conversations could not be loaded: " + error.message);
  }
}

function detachLive() {
  // Answers keep being written on the server; this tab just stops following one.
  if (state.live) state.live = null;
  state.refetchAfterLive = false;
}

function selectConversation(id, { push = true } = {}) {
  if (push && id === state.conversationId) {
    closeSidebarIfNarrow();
    return;
  }
  detachLive();
  hideNotice();
  closePanel();
  if (push) history.pushState({ conversationId: id }, "", conversationPageUrl(id));
  state.conversationId = id;
  state.messages = [];
  state.title = (state.conversations.find((c) => c.id === id) || {}).title || "";
  refreshChrome();
  renderSidebar();
  closeSidebarIfNarrow();
  loadConversation(id);
  els.title.focus();
}

function newChat({ push = true, replace = false } = {}) {
  detachLive();
  ++state.loadToken;
  closePanel();
  state.conversationId = null;
  state.title = "";
  state.messages = [];
  renderRememberToggle(null);
  els.messages.replaceChildren();
  els.loading.hidden = true;
  if (replace) history.replaceState({}, "", config.homeUrl);
  else if (push && window.location.pathname !== config.homeUrl) history.pushState({}, "", config.homeUrl);
  refreshChrome();
  renderSidebar();
  closeSidebarIfNarrow();
  els.input.focus();
}

function conversationIdFromPath() {
  const match = window.location.pathname.match(/\/c\/([0-9a-f-]{36})\/?$/i);
  return match ? match[1] : null;
}

// --- sidebar ------------------------------------------------------------------------------

const GROUPS = ["Today", "Yesterday", "Previous 7 days", "Older"];

function groupOf(iso, now) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "Older";
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  const day = 24 * 60 * 60 * 1000;
  if (date.getTime() >= today) return "Today";
  if (date.getTime() >= today - day) return "Yesterday";
  if (date.getTime() >= today - 7 * day) return "Previous 7 days";
  return "Older";
}

function renderSidebar() {
  const now = new Date();
  const grouped = new Map(GROUPS.map((g) => [g, []]));
  for (const c of state.conversations) grouped.get(groupOf(c.updated_at, now)).push(c);
  const sections = [];
  for (const [name, conversations] of grouped) {
    if (!conversations.length) continue;
    const section = template("tpl-conversation-group");
    section.querySelector(".group-title").textContent = name;
    section.querySelector(".conversation-list").append(...conversations.map(conversationItem));
    sections.push(section);
  }
  els.groups.replaceChildren(...sections);
  els.sidebarEmpty.hidden = sections.length > 0;
  els.sidebarEmpty.textContent = state.query
    ? "No conversations match “" + state.query + "”."
    : "No conversations yet. Ask something to start one.";
}

function conversationItem(c) {
  const li = template("tpl-conversation-item");
  const title = c.title || "Untitled conversation";
  li.dataset.conversationId = c.id;
  const link = li.querySelector(".conversation-link");
  link.href = conversationPageUrl(c.id);
  li.querySelector(".conversation-name").textContent = title;
  link.title = title;
  if (c.origin && c.origin !== "web") {
    const badge = li.querySelector(".origin-badge");
    badge.textContent = c.origin === "slack" ? "Slack" : c.origin === "cli" ? "CLI" : c.origin.toUpperCase();
    badge.hidden = false;
  }
  if (c.id === state.conversationId) {
    link.setAttribute("aria-current", "page");
    li.classList.add("is-current");
  }
  li.querySelector('[data-action="rename"]').setAttribute("aria-label", "Rename “" + title + "”");
  li.querySelector('[data-action="delete"]').setAttribute("aria-label", "Delete “" + title + "”");
  return li;
}

function startRename(li) {
  const conversation = state.conversations.find((c) => c.id === li.dataset.conversationId);
  if (!conversation || li.querySelector(".rename-form")) return;
  const form = template("tpl-rename-form");
  const input = form.querySelector("input");
  input.id = "rename-" + conversation.id;
  form.querySelector("label").htmlFor = input.id;
  input.value = conversation.title || "";
  const link = li.querySelector(".conversation-link");
  link.hidden = true;
  li.classList.add("is-renaming");
  li.prepend(form);
  input.focus();
  input.select();
  let done = false;
  const finish = async (save) => {
    if (done) return;
    done = true;
    const title = input.value.trim();
    if (save && title && title !== conversation.title) {
      try {
        const data = await api(conversationApiUrl(conversation.id, "rename"), { method: "POST", body: { title } });
        upsertConversation({ ...conversation, ...(data.conversation || { title }) });
        if (conversation.id === state.conversationId) {
          state.title = (data.conversation && data.conversation.title) || title;
          refreshChrome();
        }
      } catch (error) {
        showNotice("The conversation could not be renamed: " + error.message);
      }
    }
    renderSidebar();
    const again = els.groups.querySelector('[data-conversation-id="' + CSS.escape(conversation.id) + '"] [data-action="rename"]');
    if (again && !save) again.focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    finish(true);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}

function confirmDelete(li) {
  const conversation = state.conversations.find((c) => c.id === li.dataset.conversationId);
  if (!conversation) return;
  const dialog = els.deleteDialog;
  dialog.querySelector("[data-delete-title]").textContent = conversation.title || "Untitled conversation";
  dialog.returnValue = "";
  dialog.addEventListener(
    "close",
    async () => {
      if (dialog.returnValue !== "delete") return;
      try {
        await api(conversationApiUrl(conversation.id, "delete"), { method: "POST", body: {} });
      } catch (error) {
        showNotice("The conversation could not be deleted: " + error.message);
        return;
      }
      state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
      renderSidebar();
      if (conversation.id === state.conversationId) newChat();
      else els.input.focus();
    },
    { once: true }
  );
  dialog.showModal();
}

function isNarrow() {
  return NARROW.matches;
}

function toggleSidebar() {
  if (isNarrow()) root.classList.toggle("sidebar-open");
  else root.classList.toggle("sidebar-collapsed");
  syncSidebarToggle();
  if (isNarrow() && root.classList.contains("sidebar-open")) els.search.focus();
}

function closeSidebarIfNarrow() {
  if (isNarrow() && root.classList.contains("sidebar-open")) {
    root.classList.remove("sidebar-open");
    syncSidebarToggle();
  }
}

function syncSidebarToggle() {
  const open = isNarrow() ? root.classList.contains("sidebar-open") : !root.classList.contains("sidebar-collapsed");
  els.headerToggle.setAttribute("aria-expanded", String(open));
  els.headerToggle.setAttribute("aria-label", open ? "Hide conversations" : "Show conversations");
  els.backdrop.hidden = !(isNarrow() && open);
  els.sidebar.toggleAttribute("inert", !open);
}

// --- the citation panel -------------------------------------------------------------------

function openPanel(message, n, trigger) {
  const source = sourceFor(message, n);
  if (!source) return;
  const panel = els.panel;
  $("[data-panel-number]", panel).textContent = "[" + n + "]";
  $("[data-panel-title]", panel).textContent = sourceName(source);
  const meta = sourceDetails(source);
  $("[data-panel-meta]", panel).textContent = meta;
  $("[data-panel-meta]", panel).hidden = !meta;
  $("[data-panel-quote]", panel).textContent = source.unavailable
    ? "This passage is no longer available: you can no longer read the document it came from."
    : source.text || "(The passage is not available.)";
  $("[data-panel-note]", panel).hidden = !message.notUsed;
  const link = $("[data-panel-link]", panel);
  const href = sourceLink(source);
  link.hidden = !href;
  if (href) {
    link.href = href;
    link.textContent = /^https?:/i.test(href) && source.url ? "Open the original" : "Open the document's passages";
  }
  panel.hidden = false;
  root.classList.add("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (trigger) trigger.classList.add("is-active-cite");
  state.panelTrigger = trigger || null;
  $("#citation-panel-title", panel).focus();
}

function closePanel({ restoreFocus = false } = {}) {
  if (els.panel.hidden) return;
  els.panel.hidden = true;
  root.classList.remove("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (restoreFocus && state.panelTrigger && state.panelTrigger.isConnected) state.panelTrigger.focus();
  state.panelTrigger = null;
}

// --- answer and question tools ------------------------------------------------------------

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (error) {
    // fall through to the old way
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (error) {
    ok = false;
  }
  area.remove();
  return ok;
}

async function copyAnswer(m, button) {
  const ok = await copyText(m.content);
  const label = button.querySelector(".tool-label") || button;
  label.textContent = ok ? "Copied" : "Copy failed";
  setTimeout(() => {
    label.textContent = "Copy";
  }, 1500);
}

function giveFeedback(m, rating, comment) {
  const frame = { type: "feedback", message_id: m.id, rating };
  if (comment !== undefined) frame.comment = comment;
  sendFrame(frame);
  m.feedback = { rating, comment: comment || (m.feedback && m.feedback.comment) || "" };
  setPressed(m.el, rating);
}

function openFeedbackForm(m) {
  const form = m.el.querySelector(".feedback-form");
  const area = form.querySelector("textarea");
  area.id = area.id || "feedback-" + m.id;
  form.querySelector("label").htmlFor = area.id;
  area.value = (m.feedback && m.feedback.comment) || "";
  form.hidden = false;
  area.focus();
}

function startEdit(m) {
  if (refuseWhileBusy() || m.el.querySelector(".edit-form")) return;
  const form = template("tpl-edit-form");
  const area = form.querySelector("textarea");
  area.id = "edit-" + m.id;
  form.querySelector("label").htmlFor = area.id;
  area.value = m.content;
  const bubble = m.el.querySelector(".bubble");
  bubble.hidden = true;
  m.el.querySelector(".question-tools").hidden = true;
  m.el.classList.add("is-editing");
  bubble.after(form);
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  const cancel = () => {
    form.remove();
    bubble.hidden = false;
    m.el.classList.remove("is-editing");
    m.el.querySelector(".question-tools").hidden = false;
    m.el.querySelector('[data-action="edit"]').focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!submitEdit(m, area.value)) return;
    els.input.focus();
  });
  form.querySelector('[data-action="cancel-edit"]').addEventListener("click", cancel);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      cancel();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

// --- the composer -------------------------------------------------------------------------

function onInput() {
  const input = els.input;
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4)) + "px";
  const length = input.value.length;
  const show = length >= config.maxChars * COUNTER_FROM;
  els.counter.textContent = show ? length.toLocaleString() + " / " + config.maxChars.toLocaleString() : "";
  els.counter.classList.toggle("is-over", length > config.maxChars);
  els.composer.classList.toggle("is-over", length > config.maxChars);
}

function submitComposer() {
  if (ask(els.input.value)) {
    els.input.value = "";
    onInput();
  }
}

// --- wiring -------------------------------------------------------------------------------

function onListClick(event) {
  const target = event.target.closest("button, a");
  if (!target) return;
  const li = target.closest(".message");
  const m = li && messageOf.get(li);
  if (!m) return;
  if (target.dataset.cite) {
    openPanel(m, Number(target.dataset.cite), target);
    return;
  }
  switch (target.dataset.action) {
    case "copy":
      copyAnswer(m, target);
      break;
    case "copy-code": {
      const code = target.closest("pre").querySelector("code");
      copyText(code ? code.textContent : "").then((ok) => {
        target.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (target.textContent = "Copy"), 1500);
      });
      break;
    }
    case "thumbs-up":
      giveFeedback(m, 1);
      m.el.querySelector(".feedback-form").hidden = true;
      break;
    case "thumbs-down":
      giveFeedback(m, -1);
      openFeedbackForm(m);
      break;
    case "close-feedback":
      m.el.querySelector(".feedback-form").hidden = true;
      m.el.querySelector('[data-action="thumbs-down"]').focus();
      break;
    case "regenerate":
    case "ask-afresh":
      regenerate(m);
      break;
    case "edit":
      startEdit(m);
      break;
    default:
  }
}

function onFeedbackSubmit(event) {
  const form = event.target.closest(".feedback-form");
  if (!form) return;
  event.preventDefault();
  const m = messageOf.get(form.closest(".message"));
  giveFeedback(m, -1, form.querySelector("textarea").value.trim().slice(0, 2000));
  form.hidden = true;
  const status = m.el.querySelector('[data-action="thumbs-down"]');
  status.focus();
  showNotice("Thanks: your feedback was sent.", "info");
}

function onSidebarClick(event) {
  const target = event.target.closest("a, button");
  if (!target) return;
  const li = target.closest(".conversation-item");
  if (target.classList.contains("conversation-link") && li) {
    if (event.metaKey || event.ctrlKey || event.shiftKey || event.button === 1) return;
    event.preventDefault();
    selectConversation(li.dataset.conversationId);
  } else if (target.dataset.action === "rename" && li) {
    startRename(li);
  } else if (target.dataset.action === "delete" && li) {
    confirmDelete(li);
  }
}

function onKeydown(event) {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  if (els.deleteDialog.open) return;
  if (!els.panel.hidden && els.panel.contains(document.activeElement)) {
    closePanel({ restoreFocus: true });
  } else if (state.live) {
    stop();
  } else if (!els.panel.hidden) {
    closePanel({ restoreFocus: true });
  } else if (isNarrow() && root.classList.contains("sidebar-open")) {
    toggleSidebar();
    els.headerToggle.focus();
  }
}

let searchTimer = null;

function wire() {
  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitComposer();
  });
  els.input.addEventListener("input", onInput);
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitComposer();
    }
  });
  els.stop.addEventListener("click", () => {
    stop();
    els.input.focus();
  });
  els.messages.addEventListener("click", onListClick);
  els.messages.addEventListener("submit", onFeedbackSubmit);
  els.sidebar.addEventListener("click", onSidebarClick);
  for (const toggle of els.toggles) toggle.addEventListener("click", toggleSidebar);
  root.querySelector('[data-action="new-chat"]').addEventListener("click", () => newChat());
  root.querySelector('[data-action="close-panel"]').addEventListener("click", () => closePanel({ restoreFocus: true }));
  root.querySelector('[data-action="dismiss-notice"]').addEventListener("click", () => {
    hideNotice();
    els.input.focus();
  });
  for (const button of root.querySelectorAll("[data-example]")) {
    button.addEventListener("click", () => ask(button.dataset.example));
  }
  root.querySelector("[data-search-form]").addEventListener("submit", (event) => event.preventDefault());
  els.search.addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      state.query = els.search.value.trim();
      loadConversations();
    }, 250);
  });
  document.addEventListener("keydown", onKeydown);
  window.addEventListener("popstate", () => {
    const id = conversationIdFromPath();
    if (id) selectConversation(id, { push: false });
    else newChat({ push: false });
  });
  NARROW.addEventListener("change", () => {
    root.classList.remove("sidebar-open");
    syncSidebarToggle();
  });

  const events = window.AppEvents;
  events.on("open", onSocketOpen);
  events.on("close", onSocketClose);
  events.on("reconnected", onReconnected);
  events.on("ack", onAck);
  events.on("retrieval", onRetrieval);
  events.on("delta", onDelta);
  events.on("citation", onCitation);
  events.on("done", onDone);
  events.on("error", onError);
  events.on("feedback.saved", onFeedbackSaved);
  for (const type of ["conversation.created", "conversation.updated", "conversation.renamed", "conversation.deleted"]) {
    events.on(type, onConversationEvent);
  }
  events.on("message.finished", onMessageFinished);
}

function start() {
  wire();
  syncSidebarToggle();
  onInput();
  refreshChrome();
  loadConversations();
  const id = root.dataset.startConversation || conversationIdFromPath();
  if (id) {
    state.conversationId = id;
    loadConversation(id);
  } else {
    els.input.focus();
  }
  root.dataset.ready = "1";
}

start();
