/*
 * Model output to DOM. The one place HTML is made from data: marked renders the markdown,
 * DOMPurify sanitises the result (always after rendering), and only then are citation chips,
 * "not found in source n" notes and code highlighting added to the sanitised DOM.
 */

import { MARKER_FREE, citationParts, placeUnsupported, unsupportedEntries, unsupportedLabel } from "./citations.js";
import { DOMPurify, hljs, marked } from "./globals.js";
import { sourceFor, sourceName } from "./model.js";
import { PURIFY_CONFIG, isSafeHref, keptClasses } from "./sanitizing.js";

const markdown = new marked.Marked({ gfm: true, breaks: false });

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.nodeName === "A") {
    if (isSafeHref(node.getAttribute("href"))) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    } else {
      node.removeAttribute("href");
    }
  }
  if (node.hasAttribute && node.hasAttribute("class")) {
    const keep = keptClasses(node.nodeName, node.classList);
    if (keep.length) node.setAttribute("class", keep.join(" "));
    else node.removeAttribute("class");
  }
});

if (hljs) hljs.configure({ ignoreUnescapedHTML: true });

/** The sanitised fragment for an answer's markdown `text`, with `message`'s sources as chips. */
export function renderMarkdown(text, message) {
  const html = markdown.parse(text || "");
  const fragment = DOMPurify.sanitize(html, PURIFY_CONFIG);
  addCitationChips(fragment, message);
  markUnsupported(fragment, message);
  enhanceCode(fragment);
  return fragment;
}

// --- citation chips -----------------------------------------------------------------------

/** Swaps `[n]` markers in text nodes (not in code or links) for chip buttons. */
function addCitationChips(fragment, message) {
  const walker = document.createTreeWalker(fragment, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      const parent = node.parentElement;
      if (parent && parent.closest(MARKER_FREE)) return NodeFilter.FILTER_REJECT;
      return node.nodeValue.includes("[") ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    },
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  const isKnown = (n) => Boolean(sourceFor(message, n));
  for (const node of nodes) {
    const parts = citationParts(node.nodeValue, isKnown);
    if (!parts) continue;
    node.replaceWith(
      ...parts.map((part) => (typeof part === "string" ? document.createTextNode(part) : citationGroup(message, part)))
    );
  }
}

function citationGroup(message, numbers) {
  const group = document.createElement("span");
  group.className = "cite-group";
  for (const n of numbers) group.append(citationChip(message, n));
  return group;
}

function citationChip(message, n) {
  const source = sourceFor(message, n);
  const chip = document.createElement("button");
  chip.type = "button";
  chip.className = "cite-chip";
  chip.dataset.cite = String(n);
  chip.textContent = String(n);
  chip.setAttribute("aria-label", "Source " + n + ": " + sourceName(source));
  chip.title = sourceName(source);
  if (source && source.unavailable) chip.classList.add("is-unavailable");
  return chip;
}

// --- sentences the citation check did not find in their source --------------------------------

/** The text of `block` before `group`, without the chips' numbers. */
function textBefore(block, group) {
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
  let text = "";
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (group.compareDocumentPosition(node) & Node.DOCUMENT_POSITION_FOLLOWING) break;
    if (!node.parentElement || !node.parentElement.closest(".cite-group")) text += node.nodeValue;
  }
  return text;
}

function unsupportedMark(entry) {
  const mark = document.createElement("span");
  mark.className = "cite-unsupported";
  mark.textContent = unsupportedLabel(entry.numbers);
  mark.title = "The citation check did not find this sentence in its source" + (entry.reason ? ": " + entry.reason : "");
  return mark;
}

/**
 * Puts a discreet "not found in source n" after the markers of each sentence the citation
 * check marked unsupported (see placeUnsupported). A sentence not found on the page is listed
 * under the answer.
 */
function markUnsupported(fragment, message) {
  const entries = unsupportedEntries(message.unsupported);
  if (!entries.length) return;
  const groups = [...fragment.querySelectorAll(".cite-group")];
  const described = groups.map((group) => ({
    before: textBefore(group.closest("p, li, td, th, h1, h2, h3, h4, h5, h6, blockquote") || fragment, group),
    numbers: [...group.querySelectorAll(".cite-chip")].map((chip) => Number(chip.dataset.cite)),
  }));
  const missing = [];
  for (const { entry, group } of placeUnsupported(described, entries)) {
    if (group >= 0) groups[group].after(unsupportedMark(entry));
    else missing.push(entry);
  }
  if (!missing.length) return;
  const list = document.createElement("ul");
  list.className = "unsupported-list";
  for (const entry of missing) {
    const item = document.createElement("li");
    item.append(unsupportedMark(entry), document.createTextNode(" " + entry.sentence));
    list.append(item);
  }
  fragment.append(list);
}

// --- code blocks --------------------------------------------------------------------------

function enhanceCode(fragment) {
  for (const code of fragment.querySelectorAll("pre > code")) {
    const pre = code.parentElement;
    const language = [...code.classList].find((c) => c.startsWith("language-"));
    const name = language ? language.slice("language-".length) : "";
    if (hljs && (!name || hljs.getLanguage(name))) {
      hljs.highlightElement(code);
    } else {
      code.classList.add("hljs");
    }
    const bar = document.createElement("div");
    bar.className = "code-bar";
    const label = document.createElement("span");
    label.textContent = name || "code";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "code-copy";
    copy.dataset.action = "copy-code";
    copy.textContent = "Copy";
    bar.append(label, copy);
    pre.prepend(bar);
  }
}
