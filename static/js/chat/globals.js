/*
 * The one place the chat modules read globals set by classic scripts: the vendored libraries
 * (static/vendor/, see its README) and AppEvents (static/js/events.js). chat.html loads them
 * with `defer` before the module entry point, so they are set when this module runs.
 */

export const marked = window.marked;
export const DOMPurify = window.DOMPurify;
export const hljs = window.hljs; // optional: code is shown unhighlighted without it
export const AppEvents = window.AppEvents;
