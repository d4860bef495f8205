/*
 * The request this tab is streaming (state.live): asking, regenerating, editing, stopping, and
 * the frames that answer it (ack, retrieval, delta, citation, done, error). stream.js says what
 * each frame does to the answer; this module decides whether a frame is ours and re-renders.
 */

import { onInput } from "./composer.js";
import { loadConversation, renderRememberToggle, scheduleRefetch } from "./conversations.js";
import { localMessage } from "./model.js";
import { config, els, hideNotice, showNotice } from "./page.js";
import {
  appendMessages,
  buildMessage,
  refreshChrome,
  removeMessage,
  renderNow,
  renderQuestion,
  scheduleRender,
  setPressed,
} from "./render.js";
import { renderSidebar } from "./sidebar.js";
import { dropFromOutbox, sendFrame } from "./socket.js";
import { lastOf, liveAnswer, state } from "./state.js";
import {
  PIPELINE_ERRORS,
  TRANSIENT_ERRORS,
  applyAttached,
  applyCitation,
  applyDelta,
  applyDone,
  applyFailure,
  applyRetrieval,
  errorText,
  refusesWaiting,
} from "./stream.js";
import { conversationPageUrl } from "./urls.js";

function requestId() {
  if (window.crypto && typeof window.crypto.randomUUID === "function") return window.crypto.randomUUID();
  return "r" + Date.now().toString(36) + Math.random().toString(36).slice(2);
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

export function refuseWhileBusy() {
  if (!state.live && !state.messages.some((m) => m.status === "streaming")) return false;
  showNotice("An answer is still being written. Stop it (Esc) or wait for it to finish.", "info");
  return true;
}

function startLive(kind, question, answer) {
  state.live = { requestId: requestId(), kind, question, answer, acked: false, sent: false, stopRequested: false };
  return state.live;
}

export function ask(rawText) {
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

export function regenerate(answer) {
  if (refuseWhileBusy()) return;
  hideNotice();
  const question = state.messages.find((m) => m.id && m.id === answer.replyTo) || lastOf("user");
  const fresh = localMessage("assistant", "");
  fresh.replyTo = question ? question.id : null;
  const live = startLive("regenerate", question, fresh);
  state.refetchAfterLive = true; // then the versions switcher shows the earlier answer too
  const index = state.messages.indexOf(answer);
  state.messages.splice(index, 1, fresh);
  answer.el.replaceWith(buildMessage(fresh));
  refreshChrome();
  live.sent = sendFrame({ type: "regenerate", request_id: live.requestId, message_id: answer.id });
}

export function submitEdit(question, rawText) {
  const text = rawText.trim();
  if (!text || !checkLength(text) || refuseWhileBusy()) return false;
  hideNotice();
  const index = state.messages.indexOf(question);
  for (const m of state.messages.slice(index)) if (m.el) m.el.remove();
  state.messages = state.messages.slice(0, index);
  const edited = localMessage("user", text);
  const answer = localMessage("assistant", "");
  const live = startLive("edit", edited, answer);
  state.refetchAfterLive = true; // then the versions switcher shows the earlier question too
  state.messages.push(edited, answer);
  appendMessages(edited, answer);
  live.sent = sendFrame({ type: "edit", request_id: live.requestId, message_id: question.id, text });
  return true;
}

export function stop() {
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
  showNotice(errorText(frame), TRANSIENT_ERRORS.has(frame.code) ? "info" : "error");
  els.input.focus();
}

// --- following an answer written elsewhere (a reload, another tab) -------------------------

/**
 * After a conversation is shown: an answer still being written (by a tab that reloaded or
 * another one) is followed live, so its text keeps coming and Stop works here too.
 */
export function attachToWriting() {
  if (state.live) return;
  const answer = state.messages.find((m) => m.role === "assistant" && m.status === "streaming" && m.id);
  if (!answer || state.attaching === answer.id) return;
  state.attaching = answer.id;
  sendFrame({ type: "attach", message_id: answer.id });
}

export function onAttached(frame) {
  if (frame.message_id !== state.attaching) return;
  state.attaching = null;
  const answer = state.messages.find((m) => m.id === frame.message_id && m.role === "assistant");
  if (state.live || !answer || answer.status !== "streaming") return;
  const question = state.messages.find((m) => m.id === answer.replyTo) || null;
  state.live = {
    requestId: null, kind: "attach", question, answer, acked: true, sent: true, stopRequested: false,
  };
  applyAttached(answer, frame);
  renderNow(answer);
  refreshChrome();
}

// --- frames from the server ---------------------------------------------------------------

export function onAck(frame) {
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
    history.pushState(
      { conversationId: frame.conversation_id },
      "",
      conversationPageUrl(config.homeUrl, frame.conversation_id)
    );
    renderSidebar();
    renderRememberToggle({ remember: known ? known.remember !== false : true });
  }
  refreshChrome();
}

export function onRetrieval(frame) {
  const live = state.live;
  if (!live || !live.acked || frame.question_id !== live.question.id) return;
  const answer = live.answer;
  applyRetrieval(answer, frame);
  if (live.stopRequested) sendFrame({ type: "stop", message_id: answer.id });
  renderNow(answer);
}

export function onDelta(frame) {
  const answer = liveAnswer(frame.message_id);
  if (!answer) return;
  applyDelta(answer, frame);
  scheduleRender(answer);
}

export function onCitation(frame) {
  const answer = liveAnswer(frame.message_id);
  if (!answer) return;
  applyCitation(answer, frame);
  scheduleRender(answer);
}

export function onDone(frame) {
  const message = frame.message || {};
  const answer = liveAnswer(message.id);
  if (!answer) {
    // Asked to follow an answer that had just ended: show it as stored.
    if (message.id && message.id === state.attaching) {
      state.attaching = null;
      scheduleRefetch(0);
    }
    return;
  }
  applyDone(answer, message);
  finishLive();
}

export function onError(frame) {
  const live = state.live;
  if (live && frame.request_id && frame.request_id === live.requestId && !live.acked) {
    abandonLive(frame);
    return;
  }
  if (refusesWaiting(frame, state.greeted)) {
    // The server took the socket but cannot work now (Redis restarting) and closes it: a
    // request waiting to go out (or just sent into the closing socket) will not be answered.
    // Give it back now rather than let it wait for a connection that may take a while. With
    // nothing waiting, "Reconnecting…" already says enough (an answer being written carries
    // on and is shown once the socket is back).
    if (live && !live.acked) {
      dropFromOutbox(live.requestId);
      abandonLive(frame);
    }
    return;
  }
  const answer = frame.message_id ? liveAnswer(frame.message_id) : null;
  if (answer || (live && live.acked && !frame.message_id && PIPELINE_ERRORS.has(frame.code))) {
    applyFailure(answer || live.answer, frame);
    finishLive();
    return;
  }
  showNotice(errorText(frame));
}

export function onFeedbackSaved(frame) {
  const m = state.messages.find((x) => x.id === frame.message_id);
  if (!m) return;
  m.feedback = { ...(m.feedback || {}), rating: frame.rating };
  setPressed(m.el, frame.rating);
}
