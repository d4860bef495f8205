/*
 * The question box: it grows with its text, and counts characters near the limit.
 */

import { config, els } from "./page.js";

const COUNTER_FROM = 0.8; // show the character counter from this share of the limit

export function onInput() {
  const input = els.input;
  input.style.height = "auto";
  input.style.height = Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4)) + "px";
  const length = input.value.length;
  const show = length >= config.maxChars * COUNTER_FROM;
  els.counter.textContent = show ? length.toLocaleString() + " / " + config.maxChars.toLocaleString() : "";
  els.counter.classList.toggle("is-over", length > config.maxChars);
  els.composer.classList.toggle("is-over", length > config.maxChars);
}
