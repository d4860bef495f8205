/*
 * The chat page's entry point (templates/assistant/chat.html loads only this module): the
 * sidebar of conversations, one conversation, answers streaming in with citations. See
 * docs/websocket-protocol.md for the frames and the JSON API.
 *
 * No framework and no build step: plain ES modules, served as they are. `state` (state.js) is
 * the truth; DOM is cloned from the page's <template>s and filled with textContent; the one
 * place HTML is made from data is markdown.js. Globals set by classic scripts (the vendored
 * libraries and AppEvents) are read in globals.js only.
 *
 * The modules that touch no DOM or globals (citations, history, model, sanitizing, sources,
 * state, stream, urls) are imported by Node's tests in tests/js/. Imports between modules form no
 * cycle (a module that must call back up takes a callback, see render.onChromeRefreshed): a
 * cycle would also stop a hashing static storage from naming the files (each name would
 * depend on the other's).
 */

import { onInput } from "./composer.js";
import {
  confirmDelete,
  loadConversation,
  loadConversations,
  newChat,
  saveRemember,
  selectConversation,
  startRename,
  updatePolling,
} from "./conversations.js";
import { AppEvents } from "./globals.js";
import {
  ask,
  attachToWriting,
  onAck,
  onAttached,
  onCitation,
  onDelta,
  onDone,
  onError,
  onFeedbackSaved,
  onRetrieval,
  stop,
} from "./live.js";
import { els, hideNotice, root } from "./page.js";
import { closePanel } from "./panel.js";
import { onChromeRefreshed, onConversationRendered, refreshChrome } from "./render.js";
import { isNarrow, onLayoutChange, syncSidebarToggle, toggleSidebar } from "./sidebar.js";
import { state } from "./state.js";
import {
  onConversationEvent,
  onHello,
  onMessageFinished,
  onReconnected,
  onSocketClose,
  onSocketOpen,
  onVersionSwitched,
} from "./sync.js";
import { onFeedbackSubmit, onListClick } from "./tools.js";
import { conversationIdFromPath } from "./urls.js";

function submitComposer() {
  if (ask(els.input.value)) {
    els.input.value = "";
    onInput();
  }
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
  els.rememberBox.addEventListener("change", saveRemember);
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
    const id = conversationIdFromPath(window.location.pathname);
    if (id) selectConversation(id, { push: false });
    else newChat({ push: false });
  });
  onLayoutChange(() => {
    root.classList.remove("sidebar-open");
    syncSidebarToggle();
  });

  AppEvents.on("open", onSocketOpen);
  AppEvents.on("hello", onHello);
  AppEvents.on("close", onSocketClose);
  AppEvents.on("reconnected", onReconnected);
  AppEvents.on("ack", onAck);
  AppEvents.on("retrieval", onRetrieval);
  AppEvents.on("delta", onDelta);
  AppEvents.on("citation", onCitation);
  AppEvents.on("done", onDone);
  AppEvents.on("error", onError);
  AppEvents.on("feedback.saved", onFeedbackSaved);
  AppEvents.on("attached", onAttached);
  AppEvents.on("version.switched", onVersionSwitched);
  for (const type of ["conversation.created", "conversation.updated", "conversation.renamed", "conversation.deleted"]) {
    AppEvents.on(type, onConversationEvent);
  }
  AppEvents.on("message.finished", onMessageFinished);
}

function start() {
  onChromeRefreshed(updatePolling);
  onConversationRendered(attachToWriting);
  wire();
  syncSidebarToggle();
  onInput();
  refreshChrome();
  loadConversations();
  const id = root.dataset.startConversation || conversationIdFromPath(window.location.pathname);
  if (id) {
    state.conversationId = id;
    loadConversation(id);
  } else {
    els.input.focus();
  }
  root.dataset.ready = "1";
}

start();
