"""The HTTP access log: one line per request, written in batches.

aiohttp's own access logger sends every request through ``logging`` (a ``LogRecord``,
the formatter, the handler's lock and a flushed write): in the flash-sale benchmark
that was a fifth of the server's main thread, more than the order logic itself. Like
nginx's ``access_log ... buffer= flush=``, this one formats each line with one
f-string (the timestamp string is made once per second), keeps the lines in memory
and writes them with one ``write`` when ``max_lines`` are waiting or ``flush_s`` has
passed, and at shutdown. The price, as with nginx: a crash loses at most the last
``flush_s`` seconds of access lines (never data: orders and events are in the
database first).

Line format (nginx "combined" plus the duration)::

    127.0.0.1 - - [28/Nov/2026:15:41:20 +0000] "POST /api/sessions/7/orders HTTP/1.1"
        409 78 0.4ms "-" "curl/8.5"        (one line)

The duration is aiohttp's, in milliseconds with one decimal (under uvloop its clock
ticks in whole milliseconds).

Credentials in query strings (``token`` on the room channel and in media URLs,
``ticket``) are replaced by ``***``, whatever their spelling (``%74oken=`` is the same
parameter to the server): each parameter's name is decoded before it is compared. An
access log must not hold credentials.

With ``LIVESHELF_LOG_FORMAT=json`` (``live.logs``) each line is one JSON object
instead: ``time``, ``remote``, ``method``, ``path`` (masked), ``status``, ``bytes``,
``duration_ms``, ``referer`` and ``user_agent`` (both scrubbed of anything shaped like a
credential), and the request's ``request_id``, ``route``, ``session_id`` and
``user_id``.

``LIVESHELF_ACCESS_LOG``: ``-`` (standard error, the default), a file path (appended
to), or ``off``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TextIO
from urllib.parse import unquote_plus

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from live.logs import SECRET_PARAMETERS, LogFormat, context_key, scrubbed, utc_iso


def masked(target: str) -> str:
    """``target`` (path and raw query) with the values of ``SECRET_PARAMETERS`` as
    ``***``."""
    path, question, query = target.partition("?")
    if not question:
        return target
    parts = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        if equals and unquote_plus(name).strip().lower() in SECRET_PARAMETERS:
            pair = f"{name}=***"
        parts.append(pair)
    return f"{path}?{'&'.join(parts)}"


class AccessLog:
    """Access lines kept in memory and written in one write (module docstring).

    Not on ``live.coalesce``: nothing awaits a write; lines go out by count and by time.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        flush_s: float = 1.0,
        max_lines: int = 512,
        wall: Callable[[], float] = time.time,
        close_stream: bool = False,
        log_format: LogFormat = "text",
    ) -> None:
        """``close_stream``: the log owns ``stream`` and closes it at shutdown."""
        self._stream = stream
        self._json = log_format == "json"
        self._close_stream = close_stream
        self._flush_s = flush_s
        self._max_lines = max_lines
        self._wall = wall
        #: lines not yet written: at most ``max_lines`` (then written at once)
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def add(self, request: BaseRequest, response: StreamResponse, elapsed_s: float) -> None:
        """One finished request."""
        if self._json:
            self._lines.append(self._json_line(request, response, elapsed_s))
            if len(self._lines) >= self._max_lines:
                self.flush()
            return
        now = int(self._wall())
        if now != self._second:
            self._second = now
            self._stamp = time.strftime("[%d/%b/%Y:%H:%M:%S +0000]", time.gmtime(now))
        target = masked(request.raw_path)
        headers = request.headers
        version = request.version
        self._lines.append(
            f"{request.remote or '-'} - - {self._stamp} "
            f'"{request.method} {target} HTTP/{version.major}.{version.minor}" '
            f"{response.status} {response.body_length} {elapsed_s * 1000:.1f}ms "
            f'"{headers.get("Referer", "-")}" "{headers.get("User-Agent", "-")}"\n'
        )
        if len(self._lines) >= self._max_lines:
            self.flush()

    def _json_line(self, request: BaseRequest, response: StreamResponse, elapsed_s: float) -> str:
        headers = request.headers
        entry: dict[str, object] = {
            "time": utc_iso(self._wall()),
            "remote": request.remote,
            "method": request.method,
            "path": scrubbed(masked(request.raw_path)),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(elapsed_s * 1000, 1),
            "referer": scrubbed(masked(headers.get("Referer", ""))) or None,
            "user_agent": scrubbed(headers.get("User-Agent", "")) or None,
        }
        context = request.get(context_key)
        if context is not None:
            entry.update(context.fields())
        return json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"

    def flush(self) -> None:
        """Write every waiting line in one write."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self._stream.write("".join(lines))
            self._stream.flush()
        except (OSError, ValueError):  # a closed or full stream must not fail requests
            pass

    def logger_class(self) -> type[AbstractAccessLogger]:
        """The class aiohttp instantiates per connection, writing to this log."""
        log = self

        class _Logger(AbstractAccessLogger):
            __slots__ = ()

            def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
                log.add(request, response, time)

        return _Logger

    @classmethod
    def open(cls, target: str, log_format: LogFormat = "text") -> AccessLog | None:
        """The access log ``target`` names: ``-`` (standard error), a file path
        (appended to), or ``off`` (None); its lines in ``log_format``."""
        if target == "off":
            return None
        if target == "-":
            return cls(sys.stderr, log_format=log_format)
        stream = Path(target).open("a", encoding="utf-8")  # noqa: SIM115 (closed by lifetime)
        return cls(stream, close_stream=True, log_format=log_format)

    async def lifetime(self, _app: object) -> AsyncIterator[None]:
        """An aiohttp ``cleanup_ctx``: flush every ``flush_s`` seconds while the app
        runs, then flush what is left (and close a file)."""
        flusher = asyncio.create_task(self._flush_every())
        yield
        flusher.cancel()
        await asyncio.gather(flusher, return_exceptions=True)
        self.flush()
        if self._close_stream:
            self._stream.close()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            self.flush()
