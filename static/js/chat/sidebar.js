/*
 * The sidebar: the conversations grouped by date (history.js) and its open/closed layout,
 * which differs on narrow screens (an overlay) and wide ones (a collapsible column).
 */

import { emptyListText, groupConversations, originLabel } from "./history.js";
import { els, root, template, config } from "./page.js";
import { state } from "./state.js";
import { conversationPageUrl } from "./urls.js";

const NARROW = window.matchMedia("(max-width: 800px)");

export function renderSidebar() {
  const sections = groupConversations(state.conversations, new Date()).map(([name, conversations]) => {
    const section = template("tpl-conversation-group");
    section.querySelector(".group-title").textContent = name;
    section.querySelector(".conversation-list").append(...conversations.map(conversationItem));
    return section;
  });
  els.groups.replaceChildren(...sections);
  els.sidebarEmpty.hidden = sections.length > 0;
  els.sidebarEmpty.textContent = emptyListText(state.query);
}

function conversationItem(c) {
  const li = template("tpl-conversation-item");
  const title = c.title || "Untitled conversation";
  li.dataset.conversationId = c.id;
  const link = li.querySelector(".conversation-link");
  link.href = conversationPageUrl(config.homeUrl, c.id);
  li.querySelector(".conversation-name").textContent = title;
  link.title = title;
  const origin = originLabel(c.origin);
  if (origin) {
    const badge = li.querySelector(".origin-badge");
    badge.textContent = origin;
    badge.hidden = false;
  }
  if (c.id === state.conversationId) {
    link.setAttribute("aria-current", "page");
    li.classList.add("is-current");
  }
  li.querySelector('[data-action="rename"]').setAttribute("aria-label", "Rename “" + title + "”");
  li.querySelector('[data-action="delete"]').setAttribute("aria-label", "Delete “" + title + "”");
  return li;
}

// --- layout -------------------------------------------------------------------------------

export function isNarrow() {
  return NARROW.matches;
}

export function toggleSidebar() {
  if (isNarrow()) root.classList.toggle("sidebar-open");
  else root.classList.toggle("sidebar-collapsed");
  syncSidebarToggle();
  if (isNarrow() && root.classList.contains("sidebar-open")) els.search.focus();
}

export function closeSidebarIfNarrow() {
  if (isNarrow() && root.classList.contains("sidebar-open")) {
    root.classList.remove("sidebar-open");
    syncSidebarToggle();
  }
}

export function syncSidebarToggle() {
  const open = isNarrow() ? root.classList.contains("sidebar-open") : !root.classList.contains("sidebar-collapsed");
  els.headerToggle.setAttribute("aria-expanded", String(open));
  els.headerToggle.setAttribute("aria-label", open ? "Hide conversations" : "Show conversations");
  els.backdrop.hidden = !(isNarrow() && open);
  els.sidebar.toggleAttribute("inert", !open);
}

/** Calls `callback` when the page crosses the narrow/wide boundary. */
export function onLayoutChange(callback) {
  NARROW.addEventListener("change", callback);
}
