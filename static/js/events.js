/*
 * AppEvents: one WebSocket per tab to /ws/events/, carrying the signed-in user's own events.
 *
 * Usage (any page; no build step, no dependencies):
 *
 *   <script src="{% static 'js/events.js' %}" defer></script>
 *   const off = window.AppEvents.on("source.updated", (event) => { ... });  // event = parsed JSON
 *   window.AppEvents.on("reconnected", () => { ... re-fetch state over HTTP ... });
 *   off();                                   // unsubscribe
 *   window.AppEvents.send({ type: "ping" }); // false when not connected
 *
 * Server events are JSON objects with a string "type"; subscribers get the whole object.
 * Three names are reserved for the connection itself (the server never sends them):
 *   "open"        the socket is connected (first time and after every reconnect);
 *   "reconnected" connected again after a drop: events may have been missed, so refresh;
 *   "close"       the socket dropped ({ code }); a reconnect is already scheduled (closed
 *                 with 4503, "try again later", it backs off as if the connection had failed).
 * `on("*", fn)` receives every server event.
 *
 * The socket opens on the first subscription, reconnects with exponential backoff and full
 * jitter (capped at 15 s), reconnects at once when the browser comes back online or the tab
 * becomes visible, and sends a ping every 25 s so idle proxies keep it open and a dead
 * connection is noticed (no pong in 10 s -> reconnect).
 */
(function () {
  "use strict";

  const PATH = "/ws/events/";
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 15000;
  const PING_EVERY_MS = 25000;
  const PONG_TIMEOUT_MS = 10000;

  const subscribers = new Map(); // type -> Set of callbacks
  let socket = null;
  let attempt = 0;
  let hadConnection = false;
  let retryTimer = null;
  let pingTimer = null;
  let pongTimer = null;
  let started = false;

  const SIGNED_OUT = 4401; // the server's close code for "no longer signed in"
  // "Try again later": the server is up but a service it needs (Redis) is not. The socket
  // opened, yet the backoff keeps growing, so tabs do not reconnect twice a second meanwhile.
  const TRY_AGAIN = 4503;
  let attemptsBeforeOpen = 0;

  function url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + PATH;
  }

  function emit(type, payload) {
    const lifecycle = type === "open" || type === "close" || type === "reconnected";
    const targets = [subscribers.get(type), lifecycle ? null : subscribers.get("*")];
    for (const set of targets) {
      if (!set) continue;
      for (const callback of Array.from(set)) {
        try {
          callback(payload);
        } catch (error) {
          console.error("AppEvents subscriber for " + type + " failed", error);
        }
      }
    }
  }

  function clearTimers() {
    clearTimeout(retryTimer);
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    retryTimer = pingTimer = pongTimer = null;
  }

  function connect() {
    clearTimers();
    if (socket) return;
    let ws;
    try {
      ws = new WebSocket(url());
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket = ws;

    ws.addEventListener("open", function () {
      attemptsBeforeOpen = attempt;
      attempt = 0;
      const isReconnect = hadConnection;
      hadConnection = true;
      pingTimer = setInterval(ping, PING_EVERY_MS);
      emit("open", {});
      if (isReconnect) emit("reconnected", {});
    });

    ws.addEventListener("message", function (message) {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch (error) {
        return;
      }
      if (!event || typeof event.type !== "string") return;
      if (event.type === "pong") {
        clearTimeout(pongTimer);
        pongTimer = null;
      }
      emit(event.type, event);
    });

    ws.addEventListener("close", function (closeEvent) {
      if (socket !== ws) return;
      socket = null;
      clearTimers();
      emit("close", { code: closeEvent.code });
      if (closeEvent.code === SIGNED_OUT) {
        // The account was deactivated or the session ended: reconnecting cannot help.
        window.location.assign("/accounts/login/?next=" + encodeURIComponent(window.location.pathname));
        return;
      }
      if (closeEvent.code === TRY_AGAIN) attempt = attemptsBeforeOpen + 1;
      scheduleReconnect();
    });
    // "error" is always followed by "close", which does the work.
  }

  function scheduleReconnect() {
    clearTimeout(retryTimer);
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, attempt));
    attempt += 1;
    // Full jitter: many tabs reconnecting after a server restart do not arrive together.
    const delay = Math.max(250, Math.random() * ceiling);
    retryTimer = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!started || socket) return;
    attempt = 0;
    connect();
  }

  function ping() {
    if (!send({ type: "ping" })) return;
    clearTimeout(pongTimer);
    pongTimer = setTimeout(function () {
      // No answer: the connection is dead even if the browser has not noticed yet.
      if (socket) socket.close(4000, "no pong");
    }, PONG_TIMEOUT_MS);
  }

  function send(message) {
    if (!socket || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(message));
    return true;
  }

  function start() {
    if (started) return;
    started = true;
    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") reconnectNow();
    });
    connect();
  }

  function on(type, callback) {
    if (typeof callback !== "function") throw new TypeError("AppEvents.on needs a function");
    if (!subscribers.has(type)) subscribers.set(type, new Set());
    subscribers.get(type).add(callback);
    start();
    return function () {
      off(type, callback);
    };
  }

  function off(type, callback) {
    const set = subscribers.get(type);
    if (set) set.delete(callback);
  }

  window.AppEvents = Object.freeze({
    on: on,
    off: off,
    send: send,
    start: start,
    get connected() {
      return Boolean(socket && socket.readyState === WebSocket.OPEN);
    },
  });
})();
