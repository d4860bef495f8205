"""Insights for staff: usage, feedback, knowledge gaps and sources, read from what the chat
already stores (``selectors``), drawn as server-side SVG (``charts``), exported as CSV
(``csvexport``). The only write is marking a group of unanswered questions resolved
(``services``)."""
