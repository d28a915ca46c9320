"""``HostLinks``: the host -> agency link and finding a host to propose to; the base of
``CooperationService`` (``shelf.cooperation``, through ``shelf.cooperation_rounds``).

* A host names the agency that may act for them in their agreements (``set_agency``;
  ``clear_agency``, ``agency_of``); an agency reads the hosts that named it
  (``hosts_of``). An agency can act only for hosts that named it
  (``_check_host_side``: 403 ``not_your_host``); ``agency_id_of`` tells other features
  (the market's rate cards) who that is.
* A brand finds host accounts by name to propose to (``find_hosts``) and names the hosts
  of its agreements (``hosts_by_id``).

It owns the database and the clock the service uses. It is a base class rather than a
collaborator because the service is one object to everything that uses it (the
handlers, ``shelf.feature``, the tests), as ``media.resources`` is to ``media.service``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from live.auth import Principal
from live.clock import Clock
from live.db import Database, upsert
from live.errors import Forbidden, NotFound
from live.models import Role, User
from live.paging import Listing, Page
from shelf.models import Cooperation, HostAgency


class HostLinks:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- host -> agency --------------------------------------------------------------

    async def set_agency(self, host: Principal, agency_id: int) -> dict[str, Any]:
        """The host names the agency that may accept, decline and end agreements for them."""
        host.require(Role.HOST)
        async with self._db.transaction() as tx:
            agency = await tx.get(User, agency_id)
            if agency is None or agency.role != Role.AGENCY.value or agency.disabled:
                raise NotFound("agency_not_found", f"no agency account {agency_id}")
            stmt = upsert(tx, HostAgency).values(
                host_id=host.user_id, agency_id=agency_id, created_ms=self._clock.now_ms()
            )
            await tx.execute(
                stmt.on_conflict_do_update(
                    index_elements=["host_id"],
                    set_={"agency_id": agency_id, "created_ms": stmt.excluded.created_ms},
                )
            )
        return {"host_id": host.user_id, "agency_id": agency_id}

    async def clear_agency(self, host: Principal) -> dict[str, Any]:
        host.require(Role.HOST)
        async with self._db.transaction() as tx:
            await tx.execute(delete(HostAgency).where(HostAgency.host_id == host.user_id))
        return {"host_id": host.user_id, "agency_id": None}

    async def agency_of(self, host: Principal) -> dict[str, Any]:
        host.require(Role.HOST)
        async with self._db.read() as s:
            link = await s.get(HostAgency, host.user_id)
        return {"host_id": host.user_id, "agency_id": link.agency_id if link else None}

    async def agency_id_of(self, host_id: int) -> int | None:
        """The agency ``host_id`` has named now (None: none), read fresh each time: a
        host clearing its agency takes effect at once (other features' ``AgencyOf``)."""
        async with self._db.read() as s:
            link = await s.get(HostAgency, host_id)
        return link.agency_id if link is not None else None

    async def hosts_of(self, agency: Principal, page: Page) -> Listing[int]:
        """A page of the ids of the hosts that named ``agency``, by id (``page`` is
        oldest first)."""
        agency.require(Role.AGENCY)
        query = select(HostAgency.host_id).where(HostAgency.agency_id == agency.user_id)
        async with self._db.read() as s:
            ids = list(await s.scalars(page.select(query, HostAgency.host_id)))
        return page.cut(ids, lambda host_id: host_id, lambda host_id: host_id)

    async def _check_host_side(
        self, tx: AsyncSession, caller: Principal, coop: Cooperation
    ) -> None:
        """The caller is the agreement's host, an agency that host named, or an admin."""
        if caller.role is Role.ADMIN:
            return
        if caller.role is Role.HOST and coop.host_id == caller.user_id:
            return
        if caller.role is Role.AGENCY:
            link = await tx.get(HostAgency, coop.host_id)
            if link is not None and link.agency_id == caller.user_id:
                return
            raise Forbidden("not_your_host", "an agency may act only for hosts that named it")
        raise Forbidden("not_your_cooperation", "this agreement is not yours")

    # -- finding a host to propose to ------------------------------------------------

    async def find_hosts(self, caller: Principal, text: str, limit: int) -> list[dict[str, Any]]:
        """Host accounts whose username or display name contains ``text`` (any case),
        for a brand choosing whom to propose to: ``[{id, display_name}]`` by name.
        Disabled accounts are left out; an empty ``text`` lists the first ``limit``."""
        caller.require(Role.BRAND)
        query = (
            select(User.id, User.display_name)
            .where(User.role == Role.HOST.value, User.disabled.is_(False))
            .order_by(func.lower(User.display_name), User.id)
            .limit(limit)
        )
        if text:
            query = query.where(
                or_(
                    User.username.icontains(text, autoescape=True),
                    User.display_name.icontains(text, autoescape=True),
                )
            )
        return await self._host_list(query)

    async def hosts_by_id(self, caller: Principal, ids: list[int]) -> list[dict[str, Any]]:
        """The host accounts among ``ids`` (disabled ones too: they name existing
        agreements), ``[{id, display_name}]`` by id; other ids are left out."""
        caller.require(Role.BRAND)
        query = (
            select(User.id, User.display_name)
            .where(User.id.in_(set(ids)), User.role == Role.HOST.value)
            .order_by(User.id)
        )
        return await self._host_list(query)

    async def _host_list(self, query: Select[int, str]) -> list[dict[str, Any]]:
        async with self._db.read() as s:
            rows = (await s.execute(query)).all()
        return [{"id": row.id, "display_name": row.display_name} for row in rows]
