/*
 * The buttons on answers and questions: citation chips and sources, copy, copy code, thumbs up
 * and down (with an optional comment), regenerate, ask afresh, and editing the last question.
 */

import { refuseWhileBusy, regenerate, submitEdit } from "./live.js";
import { els, showNotice, template } from "./page.js";
import { openPanel } from "./panel.js";
import { messageOf, setPressed } from "./render.js";
import { sendFrame } from "./socket.js";

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (error) {
    // fall through to the old way
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "visually-hidden";
  document.body.append(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch (error) {
    ok = false;
  }
  area.remove();
  return ok;
}

async function copyAnswer(m, button) {
  const ok = await copyText(m.content);
  const label = button.querySelector(".tool-label") || button;
  label.textContent = ok ? "Copied" : "Copy failed";
  setTimeout(() => {
    label.textContent = "Copy";
  }, 1500);
}

function giveFeedback(m, rating, comment) {
  const frame = { type: "feedback", message_id: m.id, rating };
  if (comment !== undefined) frame.comment = comment;
  sendFrame(frame);
  m.feedback = { rating, comment: comment || (m.feedback && m.feedback.comment) || "" };
  setPressed(m.el, rating);
}

function openFeedbackForm(m) {
  const form = m.el.querySelector(".feedback-form");
  const area = form.querySelector("textarea");
  area.id = area.id || "feedback-" + m.id;
  form.querySelector("label").htmlFor = area.id;
  area.value = (m.feedback && m.feedback.comment) || "";
  form.hidden = false;
  area.focus();
}

function startEdit(m) {
  if (refuseWhileBusy() || m.el.querySelector(".edit-form")) return;
  const form = template("tpl-edit-form");
  const area = form.querySelector("textarea");
  area.id = "edit-" + m.id;
  form.querySelector("label").htmlFor = area.id;
  area.value = m.content;
  const bubble = m.el.querySelector(".bubble");
  bubble.hidden = true;
  m.el.querySelector(".question-tools").hidden = true;
  m.el.classList.add("is-editing");
  bubble.after(form);
  area.focus();
  area.setSelectionRange(area.value.length, area.value.length);
  const cancel = () => {
    form.remove();
    bubble.hidden = false;
    m.el.classList.remove("is-editing");
    m.el.querySelector(".question-tools").hidden = false;
    m.el.querySelector('[data-action="edit"]').focus();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!submitEdit(m, area.value)) return;
    els.input.focus();
  });
  form.querySelector('[data-action="cancel-edit"]').addEventListener("click", cancel);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      cancel();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/** Clicks anywhere in the message list. */
export function onListClick(event) {
  const target = event.target.closest("button, a");
  if (!target) return;
  const li = target.closest(".message");
  const m = li && messageOf.get(li);
  if (!m) return;
  if (target.dataset.cite) {
    openPanel(m, Number(target.dataset.cite), target);
    return;
  }
  switch (target.dataset.action) {
    case "copy":
      copyAnswer(m, target);
      break;
    case "copy-code": {
      const code = target.closest("pre").querySelector("code");
      copyText(code ? code.textContent : "").then((ok) => {
        target.textContent = ok ? "Copied" : "Copy failed";
        setTimeout(() => (target.textContent = "Copy"), 1500);
      });
      break;
    }
    case "thumbs-up":
      giveFeedback(m, 1);
      m.el.querySelector(".feedback-form").hidden = true;
      break;
    case "thumbs-down":
      giveFeedback(m, -1);
      openFeedbackForm(m);
      break;
    case "close-feedback":
      m.el.querySelector(".feedback-form").hidden = true;
      m.el.querySelector('[data-action="thumbs-down"]').focus();
      break;
    case "regenerate":
    case "ask-afresh":
    case "try-again":
      regenerate(m);
      break;
    case "edit":
      startEdit(m);
      break;
    default:
  }
}

/** A thumbs-down comment sent from under an answer. */
export function onFeedbackSubmit(event) {
  const form = event.target.closest(".feedback-form");
  if (!form) return;
  event.preventDefault();
  const m = messageOf.get(form.closest(".message"));
  giveFeedback(m, -1, form.querySelector("textarea").value.trim().slice(0, 2000));
  form.hidden = true;
  const status = m.el.querySelector('[data-action="thumbs-down"]');
  status.focus();
  showNotice("Thanks: your feedback was sent.", "info");
}
