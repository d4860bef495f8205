/*
 * The citation panel: the passage behind a chip or a source, and a link to its original.
 */

import { sourceDetails, sourceFor, sourceLink, sourceName } from "./model.js";
import { $, config, els, root } from "./page.js";
import { state } from "./state.js";

export function openPanel(message, n, trigger) {
  const source = sourceFor(message, n);
  if (!source) return;
  const panel = els.panel;
  $("[data-panel-number]", panel).textContent = "[" + n + "]";
  $("[data-panel-title]", panel).textContent = sourceName(source);
  const meta = sourceDetails(source);
  $("[data-panel-meta]", panel).textContent = meta;
  $("[data-panel-meta]", panel).hidden = !meta;
  $("[data-panel-quote]", panel).textContent = source.unavailable
    ? "This passage is no longer available: you can no longer read the document it came from."
    : source.text || "(The passage is not available.)";
  $("[data-panel-note]", panel).hidden = !message.notUsed;
  const link = $("[data-panel-link]", panel);
  const href = sourceLink(source, config.sourceUrl);
  link.hidden = !href;
  if (href) {
    link.href = href;
    link.textContent = /^https?:/i.test(href) && source.url ? "Open the original" : "Open the document's passages";
  }
  panel.hidden = false;
  root.classList.add("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (trigger) trigger.classList.add("is-active-cite");
  state.panelTrigger = trigger || null;
  $("#citation-panel-title", panel).focus();
}

export function closePanel({ restoreFocus = false } = {}) {
  if (els.panel.hidden) return;
  els.panel.hidden = true;
  root.classList.remove("panel-open");
  for (const chip of els.messages.querySelectorAll(".is-active-cite")) chip.classList.remove("is-active-cite");
  if (restoreFocus && state.panelTrigger && state.panelTrigger.isConnected) state.panelTrigger.focus();
  state.panelTrigger = null;
}
