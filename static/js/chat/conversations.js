/*
 * Conversations: loading one (and following an answer written elsewhere), the list, switching
 * between them, a new chat, and renaming, deleting and the memory switch.
 */

import { api } from "./api.js";
import { withConversation } from "./history.js";
import { fromApi } from "./model.js";
import { els, config, hideNotice, isNearBottom, root, scrollToBottom, showNotice, template } from "./page.js";
import { closePanel } from "./panel.js";
import { refreshChrome, renderConversation } from "./render.js";
import { closeSidebarIfNarrow, renderSidebar } from "./sidebar.js";
import { isLive, state } from "./state.js";
import { conversationApiUrl, conversationListUrl, conversationPageUrl } from "./urls.js";

const POLL_MS = 2000;

export function scheduleRefetch(delay = 150) {
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
export function updatePolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = null;
  const waiting = state.messages.some((m) => m.status === "streaming" && !isLive(m));
  if (waiting) state.pollTimer = setTimeout(() => scheduleRefetch(0), POLL_MS);
}

export async function loadConversation(id, { quiet = false } = {}) {
  const token = ++state.loadToken;
  if (!quiet) {
    els.loading.hidden = false;
    els.messages.replaceChildren();
    els.empty.hidden = true;
  }
  let data;
  try {
    data = await api(conversationApiUrl(config.listUrl, id));
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
  // A link to one message (from the memory page: #message-<id>) opens the conversation there.
  const linked = quiet ? null : document.getElementById(location.hash.slice(1) || "-");
  if (linked && linked.id.startsWith("message-")) {
    linked.classList.add("is-linked");
    linked.scrollIntoView({ block: "center" });
  } else if (stick) scrollToBottom();
  else els.scroll.scrollTop = scrollTop;
  root.dataset.loaded = id;
}

export async function loadConversations() {
  const query = state.query;
  try {
    const data = await api(conversationListUrl(config.listUrl, query));
    if (query !== state.query) return;
    state.conversations = data.conversations || [];
    renderSidebar();
  } catch (error) {
    showNotice("Your conversations could not be loaded: " + error.message);
  }
}

export function upsertConversation(conversation) {
  state.conversations = withConversation(state.conversations, conversation);
}

// --- the per-conversation memory switch ---------------------------------------------------

export function renderRememberToggle(conversation) {
  els.rememberToggle.hidden = !conversation;
  if (conversation) els.rememberBox.checked = conversation.remember !== false;
}

export async function saveRemember() {
  const id = state.conversationId;
  if (!id) return;
  const wanted = els.rememberBox.checked;
  try {
    await api(conversationApiUrl(config.listUrl, id) + "/remember", { method: "POST", body: { remember: wanted } });
  } catch (error) {
    els.rememberBox.checked = !wanted;
    showNotice("The memory setting could not be saved: " + error.message);
  }
}

// --- switching ----------------------------------------------------------------------------

function detachLive() {
  // Answers keep being written on the server; this tab just stops following one.
  if (state.live) state.live = null;
  state.refetchAfterLive = false;
}

export function selectConversation(id, { push = true } = {}) {
  if (push && id === state.conversationId) {
    closeSidebarIfNarrow();
    return;
  }
  detachLive();
  hideNotice();
  closePanel();
  if (push) history.pushState({ conversationId: id }, "", conversationPageUrl(config.homeUrl, id));
  state.conversationId = id;
  state.messages = [];
  state.title = (state.conversations.find((c) => c.id === id) || {}).title || "";
  refreshChrome();
  renderSidebar();
  closeSidebarIfNarrow();
  loadConversation(id);
  els.title.focus();
}

export function newChat({ push = true, replace = false } = {}) {
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

// --- renaming and deleting ----------------------------------------------------------------

export function startRename(li) {
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
        const data = await api(conversationApiUrl(config.listUrl, conversation.id, "rename"), {
          method: "POST",
          body: { title },
        });
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

export function confirmDelete(li) {
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
        await api(conversationApiUrl(config.listUrl, conversation.id, "delete"), { method: "POST", body: {} });
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
