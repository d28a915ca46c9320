"""Moderation: appointing moderators, deleting messages, mutes, bans, slow mode, keywords.

Who may do what:

* appoint/dismiss moderators: the session's host (per session) or the host itself
  (for all of its sessions); admins too;
* everything else: the session's host, its moderators (per session or host-wide) and
  admins ("staff"); viewers get 403 ``not_a_moderator``. Staff cannot be muted or
  banned (``target_is_staff``): dismiss a moderator first.

Every action is stored in ``chat_moderation_actions`` with its actor, in the same
transaction as the change. Events viewers must see (``chat.deleted``,
``chat.slow_mode``) go through the transactional outbox, so a crash after the commit
still publishes them.

Longer than ~400 lines because ``ModerationService`` is one service whose every action
runs the same checks of who may act (``_staff``, ``_require_host``), writes the same
audit row (``_record``) in its transaction and reloads the same cached room state
afterwards; split by action, each part would borrow those from the others.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from chat.models import ChatBan, ChatMessage, ChatModerator, ChatMute, ModerationAction
from chat.repository import ChatRepository
from chat.rooms import ChatRooms, banned_error
from chat.state import Room
from chat.text import normalise_keywords
from live.auth import Principal
from live.clock import Clock, iso
from live.errors import Forbidden, InvalidInput, NotFound
from live.models import OutboxEvent, Role, User
from live.outbox import Outbox, OutboxRelay
from live.paging import Listing, Page
from live.sessions import SessionService
from live.settings import ChatSettings


class ModerationService:
    def __init__(
        self,
        repo: ChatRepository,
        rooms: ChatRooms,
        sessions: SessionService,
        outbox: Outbox,
        relay: OutboxRelay,
        clock: Clock,
        config: ChatSettings,
    ) -> None:
        self._repo = repo
        self._db = repo.db
        self._rooms = rooms
        self._sessions = sessions
        self._outbox = outbox
        self._relay = relay
        self._clock = clock
        self._config = config

    # -- moderators ----------------------------------------------------------------

    async def appoint(
        self, principal: Principal, host_id: int, session_id: int | None, user_id: int
    ) -> dict[str, Any]:
        """Make ``user_id`` a moderator of one session (or of all of ``host_id``'s)."""
        await self._require_host(principal, host_id, session_id)
        if user_id == host_id:
            raise InvalidInput("host_is_not_a_moderator", "the host already moderates")
        async with self._db.transaction() as tx:
            if session_id is None:
                # A session's host exists; a host named in the path may not (an
                # admin may ask for anyone): 404, not the foreign key's refusal.
                host = await tx.get(User, host_id)
                if host is None or host.role != Role.HOST.value:
                    raise NotFound("host_not_found", f"no host {host_id}")
            await self._user(tx, user_id)
            exists = await tx.scalar(
                select(ChatModerator.id).where(*self._appointment(host_id, session_id, user_id))
            )
            if exists is None:
                tx.add(
                    ChatModerator(
                        host_id=host_id,
                        session_id=session_id,
                        user_id=user_id,
                        created_ms=self._clock.now_ms(),
                    )
                )
                self._record(tx, principal, host_id, session_id, "appoint_moderator", user_id)
        await self._reload(host_id, session_id)
        return {"user_id": user_id, "host_id": host_id, "session_id": session_id}

    async def dismiss(
        self, principal: Principal, host_id: int, session_id: int | None, user_id: int
    ) -> None:
        await self._require_host(principal, host_id, session_id)
        async with self._db.transaction() as tx:
            result = await tx.execute(
                delete(ChatModerator).where(*self._appointment(host_id, session_id, user_id))
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound("not_a_moderator", "that user is not a moderator here")
            self._record(tx, principal, host_id, session_id, "dismiss_moderator", user_id)
        await self._reload(host_id, session_id)

    async def moderators(
        self, principal: Principal, host_id: int, session_id: int | None, page: Page
    ) -> Listing[dict[str, Any]]:
        """A page of the moderators, in the order they were appointed (``page`` is
        oldest first, on the appointment's ``id``). Session: its staff may look (the
        host-wide moderators too); host-wide: the host."""
        if session_id is not None:
            await self._staff(principal, session_id)
        else:
            await self._require_host(principal, host_id, None)
        query = (
            select(ChatModerator, User)
            .join(User, User.id == ChatModerator.user_id)
            .where(ChatModerator.host_id == host_id)
        )
        if session_id is None:
            query = query.where(ChatModerator.session_id.is_(None))
        else:
            query = query.where(
                or_(ChatModerator.session_id == session_id, ChatModerator.session_id.is_(None))
            )
        async with self._db.read() as s:
            rows = (await s.execute(page.select(query, ChatModerator.id))).all()
        return page.cut(
            rows,
            lambda row: row[0].id,
            lambda row: {
                "id": row[0].id,
                "user_id": row[0].user_id,
                "display_name": row[1].display_name,
                "scope": "host" if row[0].session_id is None else "session",
                "since": iso(row[0].created_ms),
            },
        )

    # -- messages ------------------------------------------------------------------

    async def delete_message(
        self, principal: Principal, session_id: int, message_id: int
    ) -> dict[str, Any]:
        """Hide a message everywhere: ``chat.deleted`` to every screen, gone from snapshots."""
        room = await self._staff(principal, session_id)
        now = self._clock.now_ms()
        events: list[OutboxEvent] = []
        async with self._db.transaction() as tx:
            row = await tx.get(ChatMessage, message_id)
            if row is None or row.session_id != session_id:
                raise NotFound("message_not_found", "no such message in this session")
            if row.deleted_ms is None:
                row.deleted_ms = now
                row.deleted_by = principal.user_id
                self._record(
                    tx,
                    principal,
                    room.mod.host_id,
                    session_id,
                    "delete_message",
                    row.user_id,
                    message_id=message_id,
                    detail={"text": row.text},
                )
                events.append(self._outbox.add(tx, session_id, "chat.deleted", {"id": message_id}))
            deleted_ms = row.deleted_ms
        await self._relay.publish(events)
        return {"id": message_id, "deleted_at": iso(deleted_ms)}

    # -- mutes and bans --------------------------------------------------------------

    async def mute(
        self, principal: Principal, session_id: int, user_id: int, seconds: int
    ) -> dict[str, Any]:
        room = await self._staff(principal, session_id)
        if seconds > self._config.max_mute_s:
            raise InvalidInput("mute_too_long", f"mutes last at most {self._config.max_mute_s} s")
        until = self._clock.now_ms() + seconds * 1000
        async with self._db.transaction() as tx:
            await self._target(tx, room, user_id)
            await tx.execute(
                delete(ChatMute).where(
                    ChatMute.session_id == session_id, ChatMute.user_id == user_id
                )
            )
            tx.add(
                ChatMute(
                    session_id=session_id,
                    user_id=user_id,
                    until_ms=until,
                    actor_id=principal.user_id,
                )
            )
            self._record(
                tx,
                principal,
                room.mod.host_id,
                session_id,
                "mute",
                user_id,
                detail={"seconds": seconds},
            )
        await self._rooms.reload(session_id)
        return {"user_id": user_id, "muted_until": iso(until)}

    async def unmute(self, principal: Principal, session_id: int, user_id: int) -> None:
        room = await self._staff(principal, session_id)
        async with self._db.transaction() as tx:
            result = await tx.execute(
                delete(ChatMute).where(
                    ChatMute.session_id == session_id, ChatMute.user_id == user_id
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound("not_muted", "that user is not muted here")
            self._record(tx, principal, room.mod.host_id, session_id, "unmute", user_id)
        await self._rooms.reload(session_id)

    async def ban(
        self, principal: Principal, session_id: int, user_id: int, reason: str | None
    ) -> dict[str, Any]:
        """Ban from the session: sockets close now, no rejoining, no chatting, no buying."""
        room = await self._staff(principal, session_id)
        async with self._db.transaction() as tx:
            await self._target(tx, room, user_id)
            if await tx.get(ChatBan, (session_id, user_id)) is None:
                tx.add(
                    ChatBan(
                        session_id=session_id,
                        user_id=user_id,
                        actor_id=principal.user_id,
                        created_ms=self._clock.now_ms(),
                    )
                )
                self._record(
                    tx,
                    principal,
                    room.mod.host_id,
                    session_id,
                    "ban",
                    user_id,
                    detail={"reason": reason} if reason else None,
                )
        await self._rooms.reload(session_id)
        closed = self._rooms.kick(session_id, user_id, banned_error())
        return {"user_id": user_id, "banned": True, "sockets_closed": closed}

    async def unban(self, principal: Principal, session_id: int, user_id: int) -> None:
        room = await self._staff(principal, session_id)
        async with self._db.transaction() as tx:
            result = await tx.execute(
                delete(ChatBan).where(ChatBan.session_id == session_id, ChatBan.user_id == user_id)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                raise NotFound("not_banned", "that user is not banned here")
            self._record(tx, principal, room.mod.host_id, session_id, "unban", user_id)
        await self._rooms.reload(session_id)

    # -- room settings -----------------------------------------------------------------

    async def set_slow_mode(
        self, principal: Principal, session_id: int, seconds: int
    ) -> dict[str, Any]:
        room = await self._staff(principal, session_id)
        if seconds > self._config.max_slow_mode_s:
            raise InvalidInput(
                "slow_mode_too_long", f"slow mode is at most {self._config.max_slow_mode_s} s"
            )
        async with self._db.transaction() as tx:
            row = await self._repo.room_row(tx, session_id)
            row.slow_mode_s = seconds
            self._record(
                tx,
                principal,
                room.mod.host_id,
                session_id,
                "slow_mode",
                None,
                detail={"seconds": seconds},
            )
            event = self._outbox.add(tx, session_id, "chat.slow_mode", {"seconds": seconds})
        await self._relay.publish([event])
        await self._rooms.reload(session_id)
        return {"slow_mode_s": seconds}

    async def set_keywords(
        self, principal: Principal, session_id: int, words: list[str]
    ) -> dict[str, Any]:
        room = await self._staff(principal, session_id)
        keywords = normalise_keywords(words)
        if len(keywords) > self._config.max_keywords:
            raise InvalidInput("too_many_keywords", f"at most {self._config.max_keywords} keywords")
        async with self._db.transaction() as tx:
            row = await self._repo.room_row(tx, session_id)
            row.keywords = orjson.dumps(keywords).decode()
            self._record(
                tx,
                principal,
                room.mod.host_id,
                session_id,
                "keywords",
                None,
                detail={"words": keywords},
            )
        await self._rooms.reload(session_id)
        return {"words": keywords}

    async def settings(self, principal: Principal, session_id: int) -> dict[str, Any]:
        """Slow mode, keywords, current mutes and bans: staff only."""
        room = await self._staff(principal, session_id)
        mod = room.mod
        now = self._clock.now_ms()
        return {
            "slow_mode_s": mod.slow_mode_s,
            "keywords": list(mod.keywords),
            "mutes": [
                {"user_id": user, "muted_until": iso(until)}
                for user, until in sorted(mod.mutes.items())
                if until > now
            ],
            "bans": sorted(mod.bans),
            "moderators": sorted(mod.moderators),
        }

    async def actions(
        self, principal: Principal, session_id: int, page: Page
    ) -> Listing[dict[str, Any]]:
        """A page of the session's moderation log, newest first (``page`` is newest
        first); its staff may look."""
        room = await self._staff(principal, session_id)
        return await self._repo.actions(session_id, room.mod.host_id, page)

    # -- helpers -------------------------------------------------------------------------

    async def host_of(self, session_id: int) -> int:
        """The session's host id (404 if there is no such session)."""
        return (await self._rooms.get(session_id)).mod.host_id

    async def _staff(self, principal: Principal, session_id: int) -> Room:
        room = await self._rooms.get(session_id)
        if not room.is_staff(principal.user_id, principal.role.value):
            raise Forbidden(
                "not_a_moderator", "only the session's host or its moderators may do this"
            )
        return room

    async def _require_host(
        self, principal: Principal, host_id: int, session_id: int | None
    ) -> None:
        if session_id is not None:
            row = await self._sessions.owned(principal, session_id)
            if row.host_id != host_id:
                raise NotFound("session_not_found", f"no live session {session_id}")
            return
        principal.require(Role.HOST)
        if principal.user_id != host_id and principal.role is not Role.ADMIN:
            raise Forbidden("not_you", "hosts appoint moderators for themselves only")

    @staticmethod
    def _appointment(host_id: int, session_id: int | None, user_id: int) -> list[Any]:
        scope = (
            ChatModerator.session_id.is_(None)
            if session_id is None
            else ChatModerator.session_id == session_id
        )
        return [ChatModerator.host_id == host_id, ChatModerator.user_id == user_id, scope]

    @staticmethod
    async def _user(tx: AsyncSession, user_id: int) -> User:
        user = await tx.get(User, user_id)
        if user is None:
            raise NotFound("user_not_found", "no such account")
        return user

    async def _target(self, tx: AsyncSession, room: Room, user_id: int) -> None:
        user = await self._user(tx, user_id)
        if room.is_staff(user_id, user.role):
            raise Forbidden(
                "target_is_staff", "hosts, moderators and admins cannot be muted or banned"
            )

    async def _reload(self, host_id: int, session_id: int | None) -> None:
        if session_id is not None:
            await self._rooms.reload(session_id)
        else:
            await self._rooms.reload_host(host_id)

    def _record(
        self,
        tx: AsyncSession,
        principal: Principal,
        host_id: int,
        session_id: int | None,
        action: str,
        target_user_id: int | None,
        *,
        message_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        tx.add(
            ModerationAction(
                session_id=session_id,
                host_id=host_id,
                actor_id=principal.user_id,
                action=action,
                target_user_id=target_user_id,
                message_id=message_id,
                detail=orjson.dumps(detail or {}).decode(),
                created_ms=self._clock.now_ms(),
            )
        )
