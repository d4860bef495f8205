/*
 * The addresses the chat page uses, from the ones the template gives it (data-* attributes).
 *
 * Pure: no DOM and no globals (tests/js/ imports it).
 */

export function conversationPageUrl(homeUrl, id) {
  return homeUrl.replace(/\/?$/, "/") + "c/" + encodeURIComponent(id);
}

export function conversationApiUrl(listUrl, id, action) {
  return listUrl + "/" + encodeURIComponent(id) + (action ? "/" + action : "");
}

export function conversationListUrl(listUrl, query) {
  return query ? listUrl + "?q=" + encodeURIComponent(query) : listUrl;
}

/** The conversation a page address shows (`.../c/<uuid>`), or null. */
export function conversationIdFromPath(pathname) {
  const match = pathname.match(/\/c\/([0-9a-f-]{36})\/?$/i);
  return match ? match[1] : null;
}
