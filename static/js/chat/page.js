/*
 * The chat page's fixed elements and settings (data-* attributes on #chat, see
 * templates/assistant/chat.html), cloning its <template>s, scrolling and the notice bar.
 */

export const root = document.getElementById("chat");

export const config = {
  maxChars: Number(root.dataset.maxQuestionChars) || 4000,
  homeUrl: root.dataset.homeUrl || "/",
  listUrl: root.dataset.conversationsUrl || "/api/conversations",
  sourceUrl: root.dataset.sourceUrl || "/knowledge/sources/0/",
};

export const $ = (selector, scope = root) => scope.querySelector(selector);

export const els = {
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
  rememberToggle: $("[data-remember-toggle]"),
  rememberBox: $("[data-remember-checkbox]"),
};

export function template(id) {
  return document.getElementById(id).content.firstElementChild.cloneNode(true);
}

export function isNearBottom() {
  const s = els.scroll;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 80;
}

export function scrollToBottom() {
  els.scroll.scrollTop = els.scroll.scrollHeight;
}

export function showNotice(text, kind = "error") {
  els.noticeText.textContent = text;
  els.notice.dataset.kind = kind;
  els.notice.hidden = false;
}

export function hideNotice() {
  els.notice.hidden = true;
  els.noticeText.textContent = "";
}
