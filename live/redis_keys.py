"""Every Redis key and channel name liveshelf uses, in one place.

All keys of one room share the hash tag ``{r<room>}`` so that a room's Lua scripts
touch one Redis Cluster slot. ``prefix`` separates deployments (and tests).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RoomKeys:
    seq: str
    epoch: str
    stream: str
    dedup: str
    channel: str
    presence: str
    presence_tick: str
    presence_last: str

    @property
    def log_keys(self) -> list[str]:
        """The four keys the append and position scripts take, in their order."""
        return [self.seq, self.epoch, self.stream, self.dedup]


def room_keys(prefix: str, room: int) -> RoomKeys:
    tag = f"{prefix}:{{r{room}}}"
    return RoomKeys(
        seq=f"{tag}:seq",
        epoch=f"{tag}:epoch",
        stream=f"{tag}:log",
        dedup=f"{tag}:dedup",
        channel=f"{tag}:ch",
        presence=f"{tag}:presence",
        presence_tick=f"{tag}:presence:tick",
        presence_last=f"{tag}:presence:last",
    )


def room_of_channel(prefix: str, channel: str) -> int:
    """``"ls:{r42}:ch"`` -> 42."""
    start = len(prefix) + 3
    return int(channel[start : channel.index("}", start)])
