"""The typed events of the answering pipeline. Every door consumes these same events."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Event:
    type = "event"

    def as_dict(self) -> dict:
        return {"type": self.type, **asdict(self)}


@dataclass(frozen=True)
class RetrievalEvent(Event):
    """The passages found, numbered as the answer will cite them."""

    type = "retrieval"
    conversation_id: str
    question_id: str
    message_id: str
    sources: list[dict] = field(default_factory=list)
    memory: list[dict] = field(default_factory=list)  # the user's memory items given to the model


@dataclass(frozen=True)
class DeltaEvent(Event):
    type = "delta"
    message_id: str
    text: str


@dataclass(frozen=True)
class CitationEvent(Event):
    """A ``[n]`` marker resolved to its passage (sent once per number, when first used)."""

    type = "citation"
    message_id: str
    number: int
    source: dict


@dataclass(frozen=True)
class DoneEvent(Event):
    type = "done"
    message: dict
    usage: dict
    timings: dict


@dataclass(frozen=True)
class ErrorEvent(Event):
    """The answer could not be produced; ``sources`` are the passages found, not generated."""

    type = "error"
    code: str
    message: str
    message_id: str | None = None
    sources: list[dict] = field(default_factory=list)
