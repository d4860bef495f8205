/*
 * The page's state: the truth the DOM is drawn from. One object shared by the modules.
 *
 * Pure: no DOM and no globals at import.
 */

export const state = {
  conversationId: null,
  title: "",
  messages: [], // in display order; see fromApi() in model.js for the shape
  conversations: [], // the sidebar, newest first
  query: "",
  live: null, // the request this tab is streaming: {requestId, kind, question, answer, acked, sent, stopRequested}
  finishedHere: new Set(), // answers this tab streamed itself: their message.finished needs no refetch
  outbox: [], // frames waiting for the socket
  greeted: false, // the server said hello on this connection (a socket it refuses gets an error instead)
  loadToken: 0,
  refetchTimer: null,
  refetchAfterLive: false,
  pollTimer: null,
  panelTrigger: null,
  attaching: null, // the answer this tab asked to follow (attach), until the server answers
  versionFocus: null, // {id, name}: the version button to focus again after switching
};

/** Whether `m` is the answer this tab is streaming. */
export function isLive(m) {
  return Boolean(state.live && state.live.answer === m);
}

/** The answer this tab is streaming, if its id is `messageId`. */
export function liveAnswer(messageId) {
  return state.live && state.live.answer.id && state.live.answer.id === messageId ? state.live.answer : null;
}

export function lastOf(role) {
  for (let i = state.messages.length - 1; i >= 0; i -= 1) if (state.messages[i].role === role) return state.messages[i];
  return null;
}
