"""Find citation markers like ``[1]`` or ``[1, 2]`` in a streamed LLM answer.

The model answers from numbered sources and cites them inline. :class:`CitationStreamParser`
takes the answer delta by delta and returns, for each delta, the text that is safe to show
now plus the markers that delta completed. No Django imports: text in, dataclasses out.

Decisions (the tests in ``tests/assistant/test_citations.py`` pin each one):

* **Valid markers stay in the text.** The UI renders them as chips, and what is streamed must
  be exactly what is stored: the concatenated output of ``feed()`` and ``finish()`` *is* the
  final answer text, and every :class:`CitationMarker` offset points into it.
* **A marker** is ``[`` + numbers of 1 to 3 digits separated by commas (spaces allowed around
  the commas) + ``]``: ``[1]``, ``[1,2]``, ``[1, 2, 3]``. Adjacent markers ``[1][2]`` are two
  markers. A list yields one :class:`CitationMarker` per number, all spanning the whole
  bracket group, so the UI can swap the group for chips.
* **Unknown numbers are removed.** ``[1, 7]`` with only 1 valid becomes ``[1]``; ``[7]`` is
  removed together with up to two spaces or tabs just before it, so ``blue [7].`` becomes
  ``blue.``. Duplicates collapse: ``[1, 1]`` becomes ``[1]``.
* **Not citations, passed through unchanged:** markdown links ``[1](https://...)`` (hence a
  complete marker waits for one more character before it is released), ``[ ]`` and ``[x]``
  checkboxes, ``[^1]`` footnotes, escaped ``\\[1]``, numbers of 4 digits or more
  (``[2023]``), and anything inside code: fenced blocks (a run of 3 or more backticks,
  closed by a run at least as long) and inline code (a run of 1 or 2 backticks, closed by a
  run of the same length or by the end of the line, so a stray backtick cannot swallow the
  rest of the answer).
* **Glued to a word, unknown numbers are left alone.** A group right after a letter, digit
  or ``_`` whose numbers are all unknown stays as text: ``items[0]`` is more likely prose
  about indexing than a hallucinated citation. With a valid number (``Paris[1]``) it is a
  citation like any other.
* **Bounded hold-back.** At most :data:`MAX_HELD_CHARS` characters are held at the end of a
  delta (a partial group such as ``[1`` or ``[1, 2``, plus up to two spaces before it); a
  longer bracket group is not a marker. Backticks are never held: only their count matters.
* **Split invariance.** Every decision depends on the characters alone, never on where the
  deltas were cut, so any split of an answer yields the same text and markers as the whole.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

MAX_GROUP_CHARS = 18
MAX_HELD_SPACES = 2
MAX_HELD_CHARS = MAX_GROUP_CHARS + MAX_HELD_SPACES

_GROUP_RE = re.compile(r"\[\d{1,3}(?: *, *\d{1,3})*\]")
# Every prefix of a string matching _GROUP_RE (minus the closing bracket) matches this.
_GROUP_PREFIX_RE = re.compile(r"\[(?:\d{1,3}(?: *, *\d{1,3})*(?: *,? *)?)?")
_NUMBER_RE = re.compile(r"\d+")
_HORIZONTAL_SPACE = frozenset(" \t")


@dataclass(frozen=True)
class CitationMarker:
    """A citation of source ``number`` whose bracket group spans ``text[start:end]``.

    Offsets are in the full emitted answer text (the concatenation of every chunk the parser
    returned), which is also the text to store.
    """

    number: int
    start: int
    end: int


def _is_word_char(char: str | None) -> bool:
    return char is not None and (char.isalnum() or char == "_")


class CitationStreamParser:
    """Streaming citation parser: ``feed()`` each delta, then ``finish()`` once.

    One instance per answer; not thread-safe. ``feed()`` after ``finish()`` is an error.
    """

    def __init__(self, valid_numbers: Collection[int]) -> None:
        self._valid = frozenset(valid_numbers)
        self._offset = 0  # length of the text emitted so far
        self._out: list[str] = []
        self._markers: list[CitationMarker] = []
        self._prev: str | None = None  # last input character processed
        self._code_ticks = 0  # 0 outside code, else the backtick run that opened the code
        self._ticks = 0  # length of the backtick run being read
        self._spaces = ""  # held spaces/tabs that a dropped marker would take with it
        self._group: str | None = None  # held bracket group, from "[" on
        self._group_closed = False  # the group ended with "]" and waits for one more char
        self._group_after_word = False
        self._finished = False

    def feed(self, delta: str) -> tuple[str, list[CitationMarker]]:
        """Take the next delta; return the text safe to emit now and the markers it completed."""
        if self._finished:
            raise RuntimeError("feed() called after finish()")
        for char in delta:
            self._step(char)
        return self._drain()

    def finish(self) -> tuple[str, list[CitationMarker]]:
        """End of the answer: release whatever is held back. Later calls return nothing."""
        if not self._finished:
            self._finished = True
            self._end_tick_run()
            if self._group is not None:
                if self._group_closed:
                    self._resolve_group()
                else:
                    self._release_group_as_text()
            self._emit_spaces()
        return self._drain()

    # -- the state machine, one character at a time -------------------------------------------

    def _step(self, char: str) -> None:
        if self._group is not None and not self._extend_group(char):
            return
        if char == "`":
            self._emit_spaces()
            self._emit(char)
            self._ticks += 1
        else:
            self._end_tick_run()
            if self._code_ticks:
                self._step_in_code(char)
            else:
                self._step_in_text(char)
        self._prev = char

    def _step_in_code(self, char: str) -> None:
        self._emit(char)
        if char == "\n" and self._code_ticks < 3:
            self._code_ticks = 0  # inline code ends with its line

    def _step_in_text(self, char: str) -> None:
        if char in _HORIZONTAL_SPACE:
            self._spaces += char
            if len(self._spaces) > MAX_HELD_SPACES:
                self._emit(self._spaces[0])
                self._spaces = self._spaces[1:]
        elif char == "[" and self._prev != "\\":
            self._group = "["
            self._group_after_word = _is_word_char(self._prev)
        else:
            self._emit_spaces()
            self._emit(char)

    def _extend_group(self, char: str) -> bool:
        """Feed ``char`` to the held group; return True if it still needs normal handling."""
        assert self._group is not None
        if self._group_closed:
            if char == "(":
                self._release_group_as_text()  # a markdown link: [1](https://...)
            else:
                self._resolve_group()
            return True
        candidate = self._group + char
        if char == "]" and _GROUP_RE.fullmatch(candidate):
            self._group, self._group_closed = candidate, True
        elif len(candidate) < MAX_GROUP_CHARS and _GROUP_PREFIX_RE.fullmatch(candidate):
            self._group = candidate
        else:
            self._release_group_as_text()
            return True
        self._prev = char
        return False

    def _end_tick_run(self) -> None:
        if not self._ticks:
            return
        run, self._ticks = self._ticks, 0
        if not self._code_ticks:
            self._code_ticks = run
        elif run == self._code_ticks or (self._code_ticks >= 3 and run > self._code_ticks):
            self._code_ticks = 0

    # -- resolving a held group ------------------------------------------------------------------

    def _resolve_group(self) -> None:
        assert self._group is not None
        group = self._group
        numbers = [int(n) for n in _NUMBER_RE.findall(group)]
        valid = list(dict.fromkeys(n for n in numbers if n in self._valid))
        self._group, self._group_closed = None, False
        if not valid:
            if self._group_after_word:
                self._emit_spaces()
                self._emit(group)
            else:
                self._spaces = ""  # a hallucinated citation goes, with the space before it
            return
        self._emit_spaces()
        text = group if valid == numbers else "[" + ", ".join(map(str, valid)) + "]"
        start = self._offset
        self._emit(text)
        self._markers.extend(CitationMarker(n, start, self._offset) for n in valid)

    def _release_group_as_text(self) -> None:
        assert self._group is not None
        self._emit_spaces()
        self._emit(self._group)
        self._group, self._group_closed = None, False

    # -- output ------------------------------------------------------------------------------------

    def _emit_spaces(self) -> None:
        if self._spaces:
            self._emit(self._spaces)
            self._spaces = ""

    def _emit(self, text: str) -> None:
        self._out.append(text)
        self._offset += len(text)

    def _drain(self) -> tuple[str, list[CitationMarker]]:
        text, markers = "".join(self._out), self._markers
        self._out, self._markers = [], []
        return text, markers


def parse_citations(text: str, valid_numbers: Collection[int]) -> tuple[str, list[CitationMarker]]:
    """Parse a complete answer at once: the cleaned text and its markers."""
    parser = CitationStreamParser(valid_numbers)
    head, head_markers = parser.feed(text)
    tail, tail_markers = parser.finish()
    return head + tail, head_markers + tail_markers
