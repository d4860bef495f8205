/*
 * The version switcher on a turn that has several versions ("‹ 1/2 ›"): an answer regenerated,
 * a question edited. Choosing a version asks the server (`switch_version`), which stores the
 * choice; the conversation is then loaded again, so what shows is what a reload shows and what
 * the model reads next.
 */

import { versionTarget } from "./model.js";
import { showNotice } from "./page.js";
import { sendFrame } from "./socket.js";
import { state } from "./state.js";

/** Draws (or removes) the switcher of message `m` just before `anchor` (an element of its <li>). */
export function renderVersions(m, anchor) {
  const li = m.el;
  let box = li.querySelector(".version-switcher");
  const versions = m.versions;
  const writing = m.status === "streaming" || m.status === "pending";
  if (!versions || versions.count < 2 || !m.id || writing) {
    if (box) box.remove();
    return;
  }
  if (!box) {
    box = document.createElement("div");
    box.className = "version-switcher";
    box.setAttribute("role", "group");
    box.append(
      button("prev", "‹", "Previous version"),
      Object.assign(document.createElement("span"), { className: "version-label" }),
      button("next", "›", "Next version")
    );
    anchor.before(box);
  }
  const what = m.role === "user" ? "question" : "answer";
  box.setAttribute("aria-label", "Versions of this " + what);
  const label = box.querySelector(".version-label");
  label.textContent = versions.index + "/" + versions.count;
  label.setAttribute("aria-label", "Version " + versions.index + " of " + versions.count);
  for (const [step, name] of [[-1, "prev"], [1, "next"]]) {
    const target = versionTarget(versions, step);
    const control = box.querySelector('[data-version="' + name + '"]');
    control.disabled = !target;
    control.onclick = target ? () => choose(target, name) : null;
  }
  // Keyboard users keep their place: the button they pressed has focus again after the reload.
  if (state.versionFocus && versions.ids.includes(state.versionFocus.id)) {
    const control = box.querySelector('[data-version="' + state.versionFocus.name + '"]');
    state.versionFocus = null;
    const target = control.disabled ? box.querySelector("button:not([disabled])") : control;
    // After the list is rebuilt around this element: a detached element takes no focus.
    if (target) queueMicrotask(() => target.focus());
  }
}

function button(name, text, label) {
  const control = document.createElement("button");
  control.type = "button";
  control.className = "tool-button version-button";
  control.dataset.version = name;
  control.setAttribute("aria-label", label);
  control.textContent = text;
  return control;
}

function choose(id, name) {
  if (state.live || state.messages.some((m) => m.status === "streaming")) {
    showNotice("An answer is still being written. Stop it (Esc) or wait, then choose a version.", "info");
    return;
  }
  state.versionFocus = { id, name };
  sendFrame({ type: "switch_version", message_id: id });
}
