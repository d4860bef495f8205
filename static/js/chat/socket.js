/*
 * Frames to the server over the tab's one socket (AppEvents, static/js/events.js). A frame sent
 * while disconnected waits in the outbox and goes out, in order, when the socket opens again,
 * unless the server says it cannot work now (an `unavailable` error on a socket it then closes:
 * Redis is restarting): a question waiting then is given back to the person at once.
 */

import { AppEvents } from "./globals.js";
import { els } from "./page.js";
import { state } from "./state.js";

export function sendFrame(frame) {
  if (AppEvents.send(frame)) return true;
  state.outbox.push(frame);
  els.connection.hidden = false;
  return false;
}

export function flushOutbox() {
  const waiting = state.outbox.splice(0);
  for (const frame of waiting) {
    if (!AppEvents.send(frame)) {
      state.outbox.unshift(frame);
      return;
    }
    if (state.live && frame.request_id === state.live.requestId) state.live.sent = true;
  }
}

export function dropFromOutbox(requestId) {
  state.outbox = state.outbox.filter((frame) => frame.request_id !== requestId);
}
