"""Room events: the unit of the room log.

Every event a client sees is the JSON object
``{"seq": N, "epoch": "...", "type": "...", "ts": ms, "data": {...}}`` with ``seq`` as
its first key. That order is part of the contract inside the server: fan-out reads
the seq back with ``seq_of`` without parsing the whole message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

#: Event type names: dotted lowercase words, e.g. ``card.shown``.
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_SEQ_PREFIX = b'{"seq":'


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where a room's log stands: the last assigned ``seq`` within ``epoch``."""

    seq: int
    epoch: str


@dataclass(frozen=True, slots=True)
class Event:
    """One appended event and the exact bytes every client receives for it."""

    seq: int
    epoch: str
    type: str
    ts: int
    data: dict[str, Any]
    raw: bytes

    @classmethod
    def from_raw(cls, raw: bytes) -> Event:
        obj = orjson.loads(raw)
        return cls(obj["seq"], obj["epoch"], obj["type"], obj["ts"], obj["data"], raw)


def encode_event(seq: int, epoch: str, type_: str, ts: int, data_json: bytes) -> bytes:
    """The wire form of an event; ``data_json`` is already-serialised JSON."""
    head = f'{{"seq":{seq},"epoch":"{epoch}","type":"{type_}","ts":{ts},"data":'
    return head.encode() + data_json + b"}"


def seq_of(raw: bytes) -> int:
    """The seq of an encoded event, read from its first key."""
    if not raw.startswith(_SEQ_PREFIX):
        raise ValueError("not an encoded room event")
    end = raw.index(b",", len(_SEQ_PREFIX))
    return int(raw[len(_SEQ_PREFIX) : end])


_TS_KEY = b'"ts":'


def ts_of(raw: bytes) -> int:
    """The ``ts`` of an encoded event (milliseconds), read from its fourth key."""
    start = raw.index(_TS_KEY) + len(_TS_KEY)
    return int(raw[start : raw.index(b",", start)])


def check_event_type(type_: str) -> None:
    if not EVENT_TYPE_RE.match(type_) or len(type_) > 64:
        raise ValueError(f"bad event type {type_!r}")
