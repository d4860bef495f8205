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

/**
 * A source's page in the knowledge UI (`sourceUrl` is that page's address for source 0),
 * scrolled to one passage when its chunk is known: the page gives each passage the anchor
 * `chunk-<id>` and highlights the target. "" when the source is unknown.
 */
export function passageUrl(sourceUrl, sourceId, chunkId) {
  if (!sourceId) return "";
  const page = sourceUrl.replace(/\/0\/$/, "/" + encodeURIComponent(sourceId) + "/");
  // ?chunk= opens the page of passages that holds it (50 a page); #chunk- marks and highlights it.
  return isId(chunkId) ? page + "?chunk=" + chunkId + "#chunk-" + chunkId : page;
}

// Ids come from JSON: only a positive whole number becomes an anchor (the source id is escaped).
function isId(value) {
  return (typeof value === "number" && Number.isSafeInteger(value) && value > 0) || (typeof value === "string" && /^[1-9]\d{0,17}$/.test(value));
}
