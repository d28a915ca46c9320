"""``GET /api/me/events``: the caller's per-user stream (``live.user_events``) as
Server-Sent Events.

One ``text/event-stream`` answer that stays open: first ``retry:`` and a ``hello``,
then every event of the account after it, in ``seq`` order, each once::

    id: 3fa9c2d1-17
    event: cooperation.countered
    data: {"seq":17,"epoch":"3fa9c2d1","type":"cooperation.countered","ts":...,"data":{...}}

The ``id`` is ``<epoch>-<seq>``: a client that reconnects with it (``Last-Event-ID``, as
``EventSource`` does by itself, or ``?since=&epoch=``) gets the events it missed
(``hello.recovered: true``), or, when they are gone (another epoch, trimmed history),
``hello.recovered: false`` with the stream's position: then it reloads what it shows
from the API. A comment line (``: ping``) every ``heartbeat_s`` keeps proxies from
closing an idle stream; then the stream also checks the log's position, so an event
whose pub/sub message was lost is delivered at the latest then.

Signed in with ``Authorization: Bearer`` (the pages read the stream with ``fetch``), or
``?ticket=`` (a one-minute ticket from ``POST /api/auth/ticket``) for ``EventSource``,
which cannot send headers; a bearer token in the URL is never taken.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiohttp import web

from live.auth import Principal, TokenSigner, require_signed_in
from live.clock import Clock
from live.errors import InvalidInput
from live.events import Event
from live.http import principal, query_int
from live.openapi import Answer, Param, integer, operation, query
from live.user_events import Subscription, UserEvents

log = logging.getLogger(__name__)

#: what the API document says of the route
USER_EVENTS = """\
The caller's notifications as Server-Sent Events (`text/event-stream`), live, from any
worker: `cooperation.proposed`, `cooperation.countered`, `cooperation.accepted`,
`cooperation.declined`, `cooperation.withdrawn`, `cooperation.ended` (data:
`{cooperation, step}`, shelf/API.md). The first event is `hello` (`{seq, epoch,
recovered, server_time}`); each event's `id` is `<epoch>-<seq>`. Reconnect with
`Last-Event-ID` (or `?since=&epoch=`) to receive what was missed (`recovered: true`);
`recovered: false` means it is gone: reload from the API. `: ping` comments keep the
stream open. Sign in with `Authorization: Bearer` or `?ticket=` (POST /api/auth/ticket)."""

_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",  # nginx: pass each event on at once
    "X-Content-Type-Options": "nosniff",
}
#: how long a client waits before reconnecting (the ``retry:`` field), ms
RETRY_MS = 2000


class StreamGone(Exception):
    """The client went away while the stream wrote to it."""


class UserEventHandlers:
    def __init__(
        self, events: UserEvents, tokens: TokenSigner, clock: Clock, *, heartbeat_s: float = 15.0
    ) -> None:
        self._events = events
        self._tokens = tokens
        self._clock = clock
        self._heartbeat_s = heartbeat_s

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/me/events", self.stream)]

    @operation(
        "Your event stream (Server-Sent Events)",
        tag="accounts",
        auth="signed_in",
        answers=Answer(
            200,
            media_type="text/event-stream",
            description="the stream: `hello`, then the account's events as they happen",
        ),
        params=[
            Param(
                "Last-Event-ID",
                "header",
                {"type": "string", "maxLength": 64, "pattern": r"^[A-Za-z0-9]{1,32}-\d{1,16}$"},
                "the last event id received (`<epoch>-<seq>`): resume after it",
            ),
            query("since", integer(0, 2**53), "instead of Last-Event-ID: the last seq held"),
            query(
                "epoch",
                {"type": "string", "maxLength": 32, "pattern": "^[A-Za-z0-9]+$"},
                "with since: the stream's epoch",
            ),
            query("ticket", {"type": "string"}, "a one-minute ticket (POST /api/auth/ticket)"),
        ],
        errors=(401,),
        description=USER_EVENTS,
    )
    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Signed in: the caller's events (module docstring)."""
        caller = self._caller(request)
        resume = _resume_point(request)
        user_id = caller.user_id
        sub = await self._events.subscribe(user_id)
        try:
            response = web.StreamResponse(status=200, headers=_HEADERS)
            await response.prepare(request)
            writer = _Writer(response, request)
            stream = _Stream(self._events, sub, writer, self._clock)
            await writer.send(f"retry: {RETRY_MS}\n\n".encode())
            await stream.begin(resume)
            await stream.follow(self._heartbeat_s)
        except StreamGone:
            pass
        finally:
            await self._events.unsubscribe(sub)
        return response

    def _caller(self, request: web.Request) -> Principal:
        caller = principal(request)
        ticket = request.query.get("ticket")
        if caller is None and ticket:
            caller = self._tokens.verify_ticket(ticket)
        return require_signed_in(caller)


def _resume_point(request: web.Request) -> tuple[int, str] | None:
    """``(since, epoch)`` from ``Last-Event-ID`` or ``?since=&epoch=``; None: start now."""
    header = request.headers.get("Last-Event-ID", "").strip()
    if header:
        epoch, _, seq = header.rpartition("-")
        if not (epoch.isascii() and epoch.isalnum() and len(epoch) <= 32) or not (
            seq.isascii() and seq.isdigit() and len(seq) <= 16
        ):
            raise InvalidInput("invalid_query", "Last-Event-ID is an id the stream sent")
        return int(seq), epoch
    since = query_int(request, "since")
    epoch = request.query.get("epoch") or ""
    if since is None and not epoch:
        return None
    if since is None or not epoch or len(epoch) > 32 or not epoch.isalnum():
        raise InvalidInput("invalid_query", "since and epoch go together, as the stream sent them")
    return since, epoch


class _Writer:
    def __init__(self, response: web.StreamResponse, request: web.Request) -> None:
        self._response = response
        self._request = request

    async def send(self, chunk: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise StreamGone()
        try:
            await self._response.write(chunk)
        except (ConnectionError, RuntimeError) as exc:
            raise StreamGone() from exc

    @property
    def gone(self) -> bool:
        transport = self._request.transport
        return transport is None or transport.is_closing()


class _Stream:
    """One open stream: what was sent (``last`` within ``epoch``) and what comes next."""

    def __init__(
        self, events: UserEvents, sub: Subscription, writer: _Writer, clock: Clock
    ) -> None:
        self._events = events
        self._sub = sub
        self._writer = writer
        self._clock = clock
        self.last = 0
        self.epoch = ""

    async def begin(self, resume: tuple[int, str] | None) -> None:
        """``hello``, and the missed events when ``resume`` can still be served."""
        if resume is not None:
            since, epoch = resume
            missed = await self._events.read_since(self._sub.user_id, since, epoch)
            if missed is not None:
                self.last, self.epoch = since, epoch
                await self._hello(recovered=True)
                for raw in missed:
                    await self._offer(raw)
                return
        await self._reset()

    async def follow(self, heartbeat_s: float) -> None:
        """Deliver this account's events as they come until the client or the server
        goes."""
        sub = self._sub
        while not (sub.closed or self._events.closing or self._writer.gone):
            try:
                async with asyncio.timeout(heartbeat_s):
                    await sub.wake.wait()
            except TimeoutError:
                await self._writer.send(b": ping\n\n")
                position = await self._events.position(sub.user_id)
                if position.epoch != self.epoch or position.seq > self.last:
                    await self._catch_up()
                continue
            lagging, sub.lagging = sub.lagging, False
            arrived = sub.take()
            if lagging:
                await self._catch_up()
            for raw in arrived:
                await self._offer(raw)

    async def _offer(self, raw: bytes) -> None:
        """Send ``raw`` if it is the next event; fill a gap from the history first."""
        event = Event.from_raw(raw)
        if event.epoch != self.epoch:
            await self._reset()
            return
        if event.seq <= self.last:
            return
        if event.seq > self.last + 1:
            await self._catch_up()
            if event.seq <= self.last:
                return
        await self._send(event)

    async def _catch_up(self) -> None:
        missed = await self._events.read_since(self._sub.user_id, self.last, self.epoch)
        if missed is None:
            await self._reset()
            return
        for raw in missed:
            event = Event.from_raw(raw)
            if event.seq == self.last + 1:
                await self._send(event)

    async def _reset(self) -> None:
        """The history the client held is gone: start again from the stream's end."""
        position = await self._events.position(self._sub.user_id)
        self.last, self.epoch = position.seq, position.epoch
        await self._hello(recovered=False)

    async def _hello(self, *, recovered: bool) -> None:
        data = {
            "seq": self.last,
            "epoch": self.epoch,
            "recovered": recovered,
            "server_time": self._clock.now_ms(),
        }
        await self._writer.send(_frame(f"{self.epoch}-{self.last}", "hello", orjson.dumps(data)))

    async def _send(self, event: Event) -> None:
        await self._writer.send(_frame(f"{event.epoch}-{event.seq}", event.type, event.raw))
        self.last = event.seq


def _frame(event_id: str, type_: str, data: bytes) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), type_.encode(), data)
