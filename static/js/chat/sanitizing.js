/*
 * What survives sanitising of model output, as data and small predicates. markdown.js hands
 * them to DOMPurify (always after markdown is rendered).
 *
 * Pure: no DOM and no globals (tests/js/ imports it).
 */

export const PURIFY_CONFIG = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: [
    "script", "style", "iframe", "object", "embed", "form", "input", "button", "textarea",
    "select", "option", "img", "picture", "source", "video", "audio", "link", "meta", "base",
  ],
  // id/name could clobber the page's own globals and ids; style could dress output as page UI.
  FORBID_ATTR: ["style", "id", "name"],
  ALLOW_DATA_ATTR: false, // data-action / data-cite in output must not drive the page's buttons
  RETURN_DOM_FRAGMENT: true,
};

const SAFE_HREF = /^(?:https?:|mailto:)/i;
const LANGUAGE_CLASS = /^language-[\w+#-]+$/;

/** Whether a link in model output keeps its address (web and mail only; no javascript: or data:). */
export function isSafeHref(href) {
  const trimmed = (href || "").trim();
  return Boolean(trimmed) && SAFE_HREF.test(trimmed);
}

/** The classes an element of model output keeps: marked's language class on code (highlight.js reads it). */
export function keptClasses(nodeName, classes) {
  return nodeName === "CODE" ? [...classes].filter((c) => LANGUAGE_CLASS.test(c)) : [];
}
