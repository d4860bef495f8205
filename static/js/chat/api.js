/*
 * The JSON API (docs/websocket-protocol.md): one helper for every request, with the CSRF token
 * and the "session ended" redirect handled once.
 */

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  if (match) return decodeURIComponent(match[1]);
  const input = document.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}

/** Resolves to the response's JSON ({} when empty); rejects with the server's error text and `status`. */
export async function api(url, { method = "GET", body } = {}) {
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
