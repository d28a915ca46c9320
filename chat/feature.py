"""Wiring the chat feature into the app (``live.feature``): chat, likes and moderation
(chat/API.md). Its limits are the settings' ``chat`` part (``LIVESHELF_CHAT_*``,
``live.settings.ChatSettings``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from chat.handlers import ChatHandlers
from chat.likes import LikeCounter
from chat.moderation import ModerationService
from chat.repository import ChatRepository
from chat.rooms import ChatRooms
from chat.service import ChatService
from chat.writer import ChatWriter
from live.feature import Wiring
from live.settings import ChatSettings

chat_key = web.AppKey("chat", ChatService)


def setup_chat(wiring: Wiring, config: ChatSettings) -> ChatService:
    """The chat's services, routes and lifetime; other features may ask the returned
    service (e.g. ``check_not_banned`` before an order)."""
    core = wiring.core
    repo = ChatRepository(core.db)
    rooms = ChatRooms(repo, core.hub, core.clock, config)
    writer = ChatWriter(core.db, core.room_log, config)
    likes = LikeCounter(repo, core.room_log, interval_s=config.likes_interval_s)
    chat = ChatService(repo, rooms, writer, likes, core.sessions, core.clock, config)
    moderation = ModerationService(
        repo, rooms, core.sessions, core.outbox, core.relay, core.clock, config
    )
    wiring.app[chat_key] = chat
    chat.attach(core.channel)
    core.sessions.add_listener(rooms.on_status)
    wiring.routes.extend(ChatHandlers(chat, moderation).routes())
    stats = chat.stats
    metrics = core.metrics
    metrics.counter("chat_messages", "Chat messages stored and published", lambda: stats.messages)
    metrics.counter("chat_likes", "Likes taken (taps, added up)", lambda: stats.likes)
    metrics.counter(
        "chat_refusals",
        "Chat messages refused, by error code",
        lambda: {(code,): float(n) for code, n in stats.refused.items()},
        labels=("reason",),
    )

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        await rooms.start()
        await writer.start()
        await likes.start()
        yield
        await writer.stop()  # its last flush still needs the database and room log
        await likes.stop()
        await rooms.stop()

    wiring.app.cleanup_ctx.append(lifetime)
    return chat
