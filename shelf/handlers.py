"""HTTP routes of the shelf: catalogue, cooperations, agencies, live shelf, pins, flash
sales, and a session's stats. Each handler names who may call it; the services enforce
it. See ``API.md``.

Longer than ~400 lines because ``ShelfHandlers`` is one class whose methods' qualified
names are the operations' ``x-handler`` in the API document: splitting it by resource
would rename 25 operations. What makes it long is the route table (each route its
``@operation`` and a few lines that call one service), not logic that could stand
apart.
"""

from __future__ import annotations

from aiohttp import web

from live.errors import InvalidInput
from live.guard import Creation, Guard
from live.http import (
    MAX_ID,
    json_response,
    page_query,
    path_id,
    principal,
    query_int,
    read_json,
    signed_in,
)
from live.models import SessionStatus
from live.openapi import (
    Answer,
    Param,
    follow,
    integer,
    operation,
    page_of,
    page_params,
    query,
)
from shelf.answers import (
    AgencyAnswer,
    BrandSessionAnswer,
    CardAnswer,
    CooperationAnswer,
    CooperationRoundsAnswer,
    FlashSaleAnswer,
    HostIdsPage,
    HostsAnswer,
    PinAnswer,
    ProductAnswer,
    ShelfStateAnswer,
    ShelfUpdatedAnswer,
    UnpinnedAnswer,
)
from shelf.catalogue import CatalogueService
from shelf.cooperation import CooperationService
from shelf.flash import FlashSaleService
from shelf.live_shelf import ShelfService
from shelf.models import CooperationStatus
from shelf.pins import PinService
from shelf.report_answers import StatsAnswer
from shelf.schemas import (
    AgencyBody,
    CounterBody,
    CreateProductBody,
    DecisionBody,
    EditProductBody,
    FlashSaleBody,
    ProductRef,
    ProposeBody,
    ShelfOrderBody,
)
from shelf.stats import StatsService

#: Longest ``q`` of ``GET /api/hosts``.
MAX_HOST_QUERY = 64
#: Most ``ids`` of ``GET /api/hosts``.
MAX_HOST_IDS = 100
#: The largest ``?limit=`` of each list (``live.paging``; the default is 50): products
#: are the largest items (up to ~6.5 KB of text, ~25 KB in 4-byte characters), an
#: agreement or a brand's session carries up to 100 product ids.
MAX_PRODUCTS_PAGE = 50
MAX_COOPERATIONS_PAGE = 100
MAX_SESSIONS_PAGE = 100
MAX_PAGE = 200
#: what ``POST /api/cooperations/{id}/{action}`` does
COOPERATION_ACTIONS = ("accept", "decline", "withdraw", "end")
#: one session status, for the ``status`` pattern of ``GET /api/brands/{id}/sessions``
#: ``?ids=`` of ``GET /api/hosts``
_IDS = rf"^\d{{1,12}}(,\d{{1,12}}){{0,{MAX_HOST_IDS - 1}}}$"
_STATUS = "(" + "|".join(s.value for s in SessionStatus) + ")"


class ShelfHandlers:
    def __init__(
        self,
        catalogue: CatalogueService,
        cooperations: CooperationService,
        shelf: ShelfService,
        pins: PinService,
        flash: FlashSaleService,
        *,
        guard: Guard,
    ) -> None:
        """``guard`` limits how fast an account creates products, edits shelves, pins
        and creates flash sales (``live.guard``)."""
        self._guard = guard
        self._catalogue = catalogue
        self._coops = cooperations
        self._shelf = shelf
        self._pins = pins
        self._flash = flash

    def routes(self) -> list[web.RouteDef]:
        sid = "/api/sessions/{id}"
        return [
            web.post("/api/products", self.create_product),
            web.get("/api/products/{id}", self.get_product),
            web.patch("/api/products/{id}", self.edit_product),
            web.post("/api/products/{id}/archive", self.archive_product),
            web.get("/api/brands/{id}/products", self.brand_products),
            web.get("/api/brands/{id}/sessions", self.brand_sessions),
            web.get("/api/hosts", self.find_hosts),
            web.post("/api/cooperations", self.propose),
            web.get("/api/cooperations", self.list_cooperations),
            web.get("/api/cooperations/{id}", self.get_cooperation),
            web.get("/api/cooperations/{id}/rounds", self.cooperation_rounds),
            # before ``{action}``: the same shape, matched in this order
            web.post("/api/cooperations/{id}/counter", self.counter_offer),
            web.post("/api/cooperations/{id}/{action}", self.cooperation_action),
            web.get("/api/me/agency", self.get_agency),
            web.put("/api/me/agency", self.set_agency),
            web.delete("/api/me/agency", self.clear_agency),
            web.get("/api/me/hosts", self.agency_hosts),
            web.get(f"{sid}/shelf", self.get_shelf),
            web.post(f"{sid}/shelf", self.add_to_shelf),
            web.put(f"{sid}/shelf/order", self.reorder_shelf),
            web.delete(sid + "/shelf/{product_id}", self.remove_from_shelf),
            web.post(f"{sid}/pin", self.pin),
            web.delete(f"{sid}/pin", self.unpin),
            web.get(f"{sid}/pins", self.list_pins),
            web.get(f"{sid}/flash-sales", self.list_flash_sales),
            web.post(f"{sid}/flash-sales", self.create_flash_sale),
            web.delete(sid + "/flash-sales/{flash_id}", self.cancel_flash_sale),
        ]

    # -- catalogue -------------------------------------------------------------------

    @operation(
        "Create a product",
        tag="catalogue",
        roles=("brand",),
        body=CreateProductBody,
        answers=Answer(
            201,
            ProductAnswer,
            links=follow(
                "get_api_products_id", "patch_api_products_id", "post_api_products_id_archive"
            ),
        ),
    )
    async def create_product(self, request: web.Request) -> web.Response:
        """Brand."""
        caller = signed_in(request)
        body = await read_json(request, CreateProductBody)
        await self._guard.creating(Creation.PRODUCT, caller.user_id)
        return json_response(await self._catalogue.create(caller, body), status=201)

    @operation("A product", tag="catalogue", answers=Answer(200, ProductAnswer))
    async def get_product(self, request: web.Request) -> web.Response:
        """Anyone (the commission: see ``views.sees_commission``)."""
        return json_response(await self._catalogue.get(path_id(request), principal(request)))

    @operation(
        "Edit a product",
        tag="catalogue",
        roles=("brand",),
        body=EditProductBody,
        answers=Answer(200, ProductAnswer),
        errors=(409,),
    )
    async def edit_product(self, request: web.Request) -> web.Response:
        """The product's brand."""
        caller = signed_in(request)
        product_id = path_id(request)
        body = await read_json(request, EditProductBody)
        return json_response(await self._catalogue.edit(caller, product_id, body))

    @operation(
        "Archive a product", tag="catalogue", roles=("brand",), answers=Answer(200, ProductAnswer)
    )
    async def archive_product(self, request: web.Request) -> web.Response:
        """The product's brand."""
        caller = signed_in(request)
        return json_response(await self._catalogue.archive(caller, path_id(request)))

    @operation(
        "A brand's products",
        tag="catalogue",
        answers=Answer(200, page_of("products", ProductAnswer)),
        params=[
            query(
                "include_archived",
                {"type": "string"},
                "1 or true: archived products too (for the brand itself; others never see them)",
            ),
            *page_params(MAX_PRODUCTS_PAGE),
        ],
    )
    async def brand_products(self, request: web.Request) -> web.Response:
        """Anyone; ``?include_archived=1`` shows archived ones to the brand itself.
        Newest first, ``?limit=&before_id=``."""
        include = request.query.get("include_archived", "") in ("1", "true")
        page = page_query(request, maximum=MAX_PRODUCTS_PAGE)
        products = await self._catalogue.list_for_brand(
            principal(request), path_id(request), page, include_archived=include
        )
        return json_response(page.answer("products", products))

    @operation(
        "Sessions showing a brand's products",
        tag="catalogue",
        roles=("brand",),
        answers=Answer(200, page_of("sessions", BrandSessionAnswer)),
        params=[
            query(
                "status",
                {"type": "string", "pattern": f"^{_STATUS}(,{_STATUS})*$"},
                "comma-separated statuses (default live,scheduled)",
            ),
            *page_params(MAX_SESSIONS_PAGE),
        ],
    )
    async def brand_sessions(self, request: web.Request) -> web.Response:
        """That brand, or an admin. ``?status=live,scheduled`` (the default; any of
        scheduled, live, ended, comma-separated). Newest first, ``?limit=&before_id=``."""
        caller = signed_in(request)
        brand_id = path_id(request)
        statuses = _statuses(request.query.get("status", "live,scheduled"))
        page = page_query(request, maximum=MAX_SESSIONS_PAGE)
        sessions = await self._shelf.sessions_for_brand(caller, brand_id, statuses, page)
        return json_response(page.answer("sessions", sessions))

    # -- cooperations ------------------------------------------------------------------

    @operation(
        "Find hosts",
        tag="cooperations",
        roles=("brand",),
        answers=Answer(200, HostsAnswer),
        params=[
            query("q", {"type": "string", "maxLength": MAX_HOST_QUERY}, "part of a name"),
            query("limit", integer(1, 50), "hosts in the answer (default 20)"),
            query(
                "ids",
                {
                    "type": "string",
                    "pattern": rf"^\d{{1,10}}(,\d{{1,10}}){{0,{MAX_HOST_IDS - 1}}}$",
                },
                f"instead of q: these hosts (1..{MAX_HOST_IDS} comma-separated ids)",
            ),
        ],
    )
    async def find_hosts(self, request: web.Request) -> web.Response:
        """Brand (to choose whom to propose to). ``?q=`` part of a name, ``&limit=`` 1..50;
        or ``?ids=1,2`` (up to 100) to name the hosts of the brand's agreements."""
        caller = signed_in(request)
        if "ids" in request.query:
            # an id past any id's range names no host (and PostgreSQL would refuse it)
            ids = [i for i in _ids(request.query["ids"], MAX_HOST_IDS) if i <= MAX_ID]
            return json_response({"hosts": await self._coops.hosts_by_id(caller, ids)})
        text = request.query.get("q", "").strip()
        if len(text) > MAX_HOST_QUERY:
            raise InvalidInput("invalid_query", f"q is at most {MAX_HOST_QUERY} characters")
        if "\x00" in text:  # no name holds one (and PostgreSQL's text cannot)
            raise InvalidInput("invalid_query", "q cannot hold a NUL character")
        limit = query_int(request, "limit", minimum=1, maximum=50) or 20
        return json_response({"hosts": await self._coops.find_hosts(caller, text, limit)})

    @operation(
        "Propose a cooperation",
        tag="cooperations",
        roles=("brand",),
        body=ProposeBody,
        answers=Answer(
            201,
            CooperationAnswer,
            links=follow("get_api_cooperations_id", "post_api_cooperations_id_action"),
        ),
        errors=(404, 409),
    )
    async def propose(self, request: web.Request) -> web.Response:
        """Brand."""
        caller = signed_in(request)
        body = await read_json(request, ProposeBody)
        return json_response(await self._coops.propose(caller, body), status=201)

    @operation(
        "The caller's cooperations",
        tag="cooperations",
        roles=("brand", "host", "agency"),
        answers=Answer(200, page_of("cooperations", CooperationAnswer)),
        params=[
            query("status", {"type": "string", "enum": [s.value for s in CooperationStatus]}),
            *page_params(MAX_COOPERATIONS_PAGE),
        ],
    )
    async def list_cooperations(self, request: web.Request) -> web.Response:
        """Brand, host or agency: the caller's side. ``?status=proposed|accepted|...``;
        newest first, ``?limit=&before_id=``."""
        caller = signed_in(request)
        text = request.query.get("status")
        try:
            status = CooperationStatus(text) if text else None
        except ValueError as exc:
            choices = ", ".join(s.value for s in CooperationStatus)
            raise InvalidInput("invalid_query", f"status is one of {choices}") from exc
        page = page_query(request, maximum=MAX_COOPERATIONS_PAGE)
        cooperations = await self._coops.list_for(caller, status, page)
        return json_response(page.answer("cooperations", cooperations))

    @operation(
        "A cooperation",
        tag="cooperations",
        auth="signed_in",
        answers=Answer(200, CooperationAnswer),
        errors=(403,),
    )
    async def get_cooperation(self, request: web.Request) -> web.Response:
        """Its brand, its host or the host's agency."""
        return json_response(await self._coops.get(signed_in(request), path_id(request)))

    @operation(
        "An agreement's history",
        tag="cooperations",
        auth="signed_in",
        answers=Answer(200, CooperationRoundsAnswer),
        errors=(403,),
    )
    async def cooperation_rounds(self, request: web.Request) -> web.Response:
        """Its brand, its host or the host's agency: every step (the proposal, each
        counter-offer with its terms and message, the decision), oldest first."""
        return json_response(await self._coops.rounds(signed_in(request), path_id(request)))

    @operation(
        "Counter-offer",
        tag="cooperations",
        roles=("brand", "host", "agency"),
        body=CounterBody,
        answers=Answer(
            200,
            CooperationAnswer,
            links=follow("get_api_cooperations_id_rounds", "post_api_cooperations_id_action"),
        ),
        errors=(409,),
        description=(
            "The party whose turn it is (the host or its agency first, then back and "
            "forth) answers a proposal with other terms: commission, flat fee, message. "
            "The terms change, `round` grows by one and it is the other party's turn. "
            "409 `not_your_turn`, `stale_round` (`round` given and the terms changed "
            "since), `illegal_transition` (no longer proposed); 422 `terms_unchanged`, "
            "`fee_needs_currency`, `invalid_input`. A refusal changes nothing."
        ),
    )
    async def counter_offer(self, request: web.Request) -> web.Response:
        """The party whose turn it is: new terms, back to the other party."""
        caller = signed_in(request)
        coop_id = path_id(request)
        body = await read_json(request, CounterBody)
        return json_response(await self._coops.counter(caller, coop_id, body))

    @operation(
        "Accept, decline, withdraw or end a cooperation",
        tag="cooperations",
        roles=("brand", "host", "agency"),
        body=DecisionBody,
        body_required=False,
        answers=Answer(200, CooperationAnswer),
        params=[Param("action", "path", {"type": "string", "enum": list(COOPERATION_ACTIONS)})],
        errors=(409,),
        description=(
            "accept/decline: the party whose turn it is (the host or its agency, or the "
            "brand after a counter-offer; else 409 `not_your_turn`); withdraw: its brand "
            "while proposed; end: any party of an accepted agreement. `round` (optional "
            "body): the offer the caller saw; 409 `stale_round` if the terms changed since."
        ),
    )
    async def cooperation_action(self, request: web.Request) -> web.Response:
        """accept/decline: the party whose turn it is; withdraw: its brand; end: any
        party."""
        caller = signed_in(request)
        coop_id = path_id(request)
        action = request.match_info["action"]
        if action not in COOPERATION_ACTIONS:
            raise web.HTTPNotFound()
        # the body is optional: a bare POST (any content type, no body) decides as well
        body = await read_json(request, DecisionBody) if request.can_read_body else DecisionBody()
        if action == "accept":
            result = await self._coops.accept(caller, coop_id, body.round)
        elif action == "decline":
            result = await self._coops.decline(caller, coop_id, body.round)
        elif action == "withdraw":
            result = await self._coops.withdraw(caller, coop_id, body.round)
        else:
            result = await self._coops.end(caller, coop_id)
        return json_response(result)

    # -- host <-> agency ---------------------------------------------------------------

    @operation(
        "The host's agency", tag="cooperations", roles=("host",), answers=Answer(200, AgencyAnswer)
    )
    async def get_agency(self, request: web.Request) -> web.Response:
        """Host."""
        return json_response(await self._coops.agency_of(signed_in(request)))

    @operation(
        "Name an agency",
        tag="cooperations",
        roles=("host",),
        body=AgencyBody,
        answers=Answer(200, AgencyAnswer),
        errors=(404,),
    )
    async def set_agency(self, request: web.Request) -> web.Response:
        """Host: name the agency that may act for you."""
        caller = signed_in(request)
        body = await read_json(request, AgencyBody)
        return json_response(await self._coops.set_agency(caller, body.agency_id))

    @operation(
        "Name no agency", tag="cooperations", roles=("host",), answers=Answer(200, AgencyAnswer)
    )
    async def clear_agency(self, request: web.Request) -> web.Response:
        """Host."""
        return json_response(await self._coops.clear_agency(signed_in(request)))

    @operation(
        "The agency's hosts",
        tag="cooperations",
        roles=("agency",),
        answers=Answer(200, HostIdsPage),
        params=page_params(MAX_PAGE, newest_first=False),
    )
    async def agency_hosts(self, request: web.Request) -> web.Response:
        """Agency: the hosts that named you, by id, ``?limit=&after_id=``."""
        caller = signed_in(request)
        page = page_query(request, maximum=MAX_PAGE, newest_first=False)
        return json_response(page.answer("host_ids", await self._coops.hosts_of(caller, page)))

    # -- the live shelf ----------------------------------------------------------------

    @operation("A session's shelf", tag="shelf", answers=Answer(200, ShelfStateAnswer))
    async def get_shelf(self, request: web.Request) -> web.Response:
        """Anyone: the same shelf state as the room snapshot. Not paged: a shelf holds
        at most ``MAX_SHELF`` products (409 ``shelf_full`` past it)."""
        return json_response(await self._shelf.state(path_id(request)))

    @operation(
        "Put a product on the shelf",
        tag="shelf",
        roles=("host",),
        body=ProductRef,
        answers=Answer(201, ShelfUpdatedAnswer),
        errors=(409,),
    )
    async def add_to_shelf(self, request: web.Request) -> web.Response:
        """The session's host."""
        caller = signed_in(request)
        session_id = path_id(request)
        body = await read_json(request, ProductRef)
        await self._guard.creating(Creation.SHELF_EDIT, caller.user_id)
        return json_response(await self._shelf.add(caller, session_id, body.product_id), status=201)

    @operation(
        "Take a product off the shelf",
        tag="shelf",
        roles=("host",),
        answers=Answer(200, ShelfUpdatedAnswer),
        errors=(409,),
    )
    async def remove_from_shelf(self, request: web.Request) -> web.Response:
        """The session's host."""
        caller = signed_in(request)
        session_id, product_id = path_id(request), path_id(request, "product_id")
        await self._guard.creating(Creation.SHELF_EDIT, caller.user_id)
        return json_response(await self._shelf.remove(caller, session_id, product_id))

    @operation(
        "Reorder the shelf",
        tag="shelf",
        roles=("host",),
        body=ShelfOrderBody,
        answers=Answer(200, ShelfUpdatedAnswer),
        errors=(409,),
    )
    async def reorder_shelf(self, request: web.Request) -> web.Response:
        """The session's host."""
        caller = signed_in(request)
        session_id = path_id(request)
        body = await read_json(request, ShelfOrderBody)
        await self._guard.creating(Creation.SHELF_EDIT, caller.user_id)
        return json_response(await self._shelf.reorder(caller, session_id, body.product_ids))

    # -- pins ----------------------------------------------------------------------

    @operation(
        "Pin a product",
        tag="shelf",
        roles=("host",),
        body=ProductRef,
        answers=Answer(200, CardAnswer),
        errors=(409,),
    )
    async def pin(self, request: web.Request) -> web.Response:
        """The session's host."""
        caller = signed_in(request)
        session_id = path_id(request)
        body = await read_json(request, ProductRef)
        await self._guard.creating(Creation.PIN, caller.user_id)
        return json_response(await self._pins.pin(caller, session_id, body.product_id))

    @operation("Unpin", tag="shelf", roles=("host",), answers=Answer(200, UnpinnedAnswer))
    async def unpin(self, request: web.Request) -> web.Response:
        """The session's host."""
        return json_response(await self._pins.unpin(signed_in(request), path_id(request)))

    @operation(
        "A session's pin windows",
        tag="shelf",
        answers=Answer(200, page_of("pins", PinAnswer, newest_first=False)),
        params=page_params(MAX_PAGE, newest_first=False),
    )
    async def list_pins(self, request: web.Request) -> web.Response:
        """Anyone: the session's pin windows (replay chapters), oldest first,
        ``?limit=&after_id=``."""
        page = page_query(request, maximum=MAX_PAGE, newest_first=False)
        return json_response(
            page.answer("pins", await self._pins.list_dicts(path_id(request), page))
        )

    # -- flash sales ---------------------------------------------------------------

    @operation(
        "A session's flash sales",
        tag="flash sales",
        answers=Answer(200, page_of("flash_sales", FlashSaleAnswer, newest_first=False)),
        params=page_params(MAX_PAGE, newest_first=False),
    )
    async def list_flash_sales(self, request: web.Request) -> web.Response:
        """Anyone: the session's sales in the order they were created,
        ``?limit=&after_id=``."""
        page = page_query(request, maximum=MAX_PAGE, newest_first=False)
        sales = await self._flash.list_for_session(path_id(request), page, principal(request))
        return json_response(page.answer("flash_sales", sales))

    @operation(
        "Schedule a flash sale",
        tag="flash sales",
        roles=("host",),
        body=FlashSaleBody,
        answers=Answer(201, FlashSaleAnswer),
        errors=(409,),
    )
    async def create_flash_sale(self, request: web.Request) -> web.Response:
        """The session's host."""
        caller = signed_in(request)
        session_id = path_id(request)
        body = await read_json(request, FlashSaleBody)
        await self._guard.creating(Creation.FLASH_SALE, caller.user_id)
        return json_response(await self._flash.create(caller, session_id, body), status=201)

    @operation(
        "Cancel a flash sale",
        tag="flash sales",
        roles=("host",),
        answers=Answer(200, FlashSaleAnswer),
        errors=(409,),
    )
    async def cancel_flash_sale(self, request: web.Request) -> web.Response:
        """The session's host: cancel a scheduled sale."""
        caller = signed_in(request)
        result = await self._flash.cancel(caller, path_id(request), path_id(request, "flash_id"))
        return json_response(result)


def _statuses(text: str) -> set[SessionStatus]:
    try:
        statuses = {SessionStatus(part.strip()) for part in text.split(",") if part.strip()}
    except ValueError as exc:
        raise InvalidInput(
            "invalid_query", "status is a comma-separated list of scheduled, live, ended"
        ) from exc
    if not statuses:
        raise InvalidInput("invalid_query", "give at least one status")
    return statuses


def _ids(text: str, most: int) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not 1 <= len(parts) <= most or not all(_digits(p) and len(p) <= 12 for p in parts):
        raise InvalidInput("invalid_query", f"ids is a comma-separated list of 1..{most} ids")
    return [int(p) for p in parts]


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


class StatsHandlers:
    """``GET /api/sessions/{id}/stats`` (shelf/stats.py says who may read it)."""

    def __init__(self, stats: StatsService) -> None:
        self._stats = stats

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/sessions/{id}/stats", self.session_stats)]

    @operation(
        "A session's stats",
        tag="stats",
        auth="signed_in",
        answers=Answer(200, StatsAnswer),
        errors=(403,),
    )
    async def session_stats(self, request: web.Request) -> web.Response:
        caller = signed_in(request)
        return json_response(await self._stats.stats(caller, path_id(request)))
