/*
 * Keeping this tab in step with the user's other tabs and with the server: coarse events
 * (conversations created, renamed, updated, deleted; answers finished) and the socket dropping
 * and coming back.
 */

import { onInput } from "./composer.js";
import { loadConversation, loadConversations, newChat, scheduleRefetch, upsertConversation } from "./conversations.js";
import { els, showNotice } from "./page.js";
import { refreshChrome, removeMessage, renderNow } from "./render.js";
import { renderSidebar } from "./sidebar.js";
import { flushOutbox } from "./socket.js";
import { liveAnswer, state } from "./state.js";

export function onConversationEvent(event) {
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

export function onMessageFinished(event) {
  if (event.conversation_id !== state.conversationId) return;
  if (state.finishedHere.has(event.message_id) || liveAnswer(event.message_id)) return;
  scheduleRefetch();
}

export function onSocketOpen() {
  els.connection.hidden = true;
  state.greeted = false;
  flushOutbox();
}

export function onHello() {
  state.greeted = true;
}

/** The version chosen here is stored: show the conversation as a reload would. */
export function onVersionSwitched(frame) {
  if (frame.conversation_id === state.conversationId) scheduleRefetch(0);
}

export function onSocketClose() {
  els.connection.hidden = false;
  state.attaching = null; // a follow asked before the drop is asked again after the reload
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
  showNotice(
    "The connection dropped before your question was confirmed. Check the conversation, then send it again if it is missing.",
    "info"
  );
}

export function onReconnected() {
  loadConversations();
  if (state.conversationId) loadConversation(state.conversationId, { quiet: true });
}
