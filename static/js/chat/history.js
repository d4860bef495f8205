/*
 * The sidebar's list of conversations as data: grouping by date, ordering, labels.
 *
 * Pure: no DOM and no globals (tests/js/ imports it); sidebar.js draws the result.
 */

export const GROUPS = ["Today", "Yesterday", "Previous 7 days", "Older"];

const DAY_MS = 24 * 60 * 60 * 1000;

/** The group of a conversation last updated at `iso`, counted in local days before `now`. */
export function groupOf(iso, now) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "Older";
  const today = new Date(now.getFullYear(), now.getMonth(), now.getDate()).getTime();
  if (date.getTime() >= today) return "Today";
  if (date.getTime() >= today - DAY_MS) return "Yesterday";
  if (date.getTime() >= today - 7 * DAY_MS) return "Previous 7 days";
  return "Older";
}

/** `[[name, conversations], ...]` in GROUPS order, empty groups left out, order kept inside. */
export function groupConversations(conversations, now) {
  const grouped = new Map(GROUPS.map((g) => [g, []]));
  for (const c of conversations) grouped.get(groupOf(c.updated_at, now)).push(c);
  return [...grouped].filter(([, list]) => list.length > 0);
}

/** The list with `conversation` added or replaced, newest first; a new array. */
export function withConversation(list, conversation) {
  if (!conversation || !conversation.id) return list;
  const others = list.filter((c) => c.id !== conversation.id);
  others.push(conversation);
  others.sort((a, b) => String(b.updated_at).localeCompare(String(a.updated_at)));
  return others;
}

/** The badge of a conversation started elsewhere than the web page, or "" for none. */
export function originLabel(origin) {
  if (!origin || origin === "web") return "";
  return origin === "slack" ? "Slack" : origin === "cli" ? "CLI" : origin.toUpperCase();
}

export function emptyListText(query) {
  return query ? "No conversations match “" + query + "”." : "No conversations yet. Ask something to start one.";
}
