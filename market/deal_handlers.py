"""HTTP routes of deals (``market.deals``): offer, read, take a step, the receipt and
the published fees. Each handler names who may call it; the service enforces it. See
``API.md``."""

from __future__ import annotations

from aiohttp import web

from live.errors import InvalidInput
from live.http import json_response, path_id, read_json, signed_in
from live.openapi import Answer, Param, follow, operation
from market.deal_answers import DealAnswer, DealReceiptAnswer, FeesAnswer
from market.deal_money import AGENCY_SHARE_BPS, PLATFORM_FEE_BPS
from market.deal_offers import OfferTerms
from market.deal_rules import USER_ACTIONS, Action
from market.deal_schemas import OfferBody, StepBody
from market.deals import Deals, StepInput

#: the steps ``POST /api/deals/{id}/{action}`` takes
ACTIONS = sorted(a.value for a in USER_ACTIONS)
_KEY_SCHEMA = {"type": "string", "pattern": "^[!-~]{1,128}$"}
_OFFER_KEY = Param(
    "Idempotency-Key",
    "header",
    _KEY_SCHEMA,
    "1-128 printable ASCII characters naming this offer: the same key from the same "
    "orderer gets the same deal and pays once (400 idempotency_key_required without one, "
    "422 idempotency_key_reused for other terms)",
    required=True,
)
_STEP_KEY = Param(
    "Idempotency-Key",
    "header",
    _KEY_SCHEMA,
    "names this step: repeated, the same key gets the deal again and changes nothing "
    "(422 idempotency_key_reused for another step)",
)
_FOLLOW = follow("get_api_deals_id", id="$response.body#/id")


def _key(request: web.Request, *, required: bool) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None or key == "":
        if required:
            raise InvalidInput("idempotency_key_required", "send an Idempotency-Key header")
        return None
    if len(key) > 128 or not all("!" <= c <= "~" for c in key):
        raise InvalidInput("invalid_idempotency_key", "1-128 printable ASCII characters")
    return key


class DealHandlers:
    def __init__(self, deals: Deals) -> None:
        self._deals = deals

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/fees", self.fees),
            web.post("/api/deals", self.offer),
            web.get("/api/deals/{id}", self.get),
            web.get("/api/deals/{id}/receipt", self.receipt),
            web.post("/api/deals/{id}/{action}", self.step),
        ]

    @operation("The published fee schedule", tag="deals", answers=Answer(200, FeesAnswer))
    async def fees(self, _request: web.Request) -> web.Response:
        """Anyone."""
        return json_response(
            {
                "platform_fee_bps": PLATFORM_FEE_BPS,
                "agency_share_bps": AGENCY_SHARE_BPS,
                "rounding": "each share rounded down; the host takes the remainder",
            }
        )

    @operation(
        "Offer a deal",
        tag="deals",
        roles=("brand", "agency"),
        body=OfferBody,
        params=[_OFFER_KEY],
        answers=[
            Answer(201, DealAnswer, description="offered and paid into escrow", links=_FOLLOW),
            Answer(200, DealAnswer, description="the deal this key made before"),
        ],
        errors=(409,),
        description=(
            "A brand (or an agency for it, naming `brand_id`) orders one service of a "
            "host's current rate card; the price goes into escrow at once. 409 "
            "`stale_card`; 422 `service_not_on_card`, `notes_unavailable`; 404 "
            "`host_not_found`, `rate_card_not_found`, `brand_not_found`."
        ),
    )
    async def offer(self, request: web.Request) -> web.Response:
        """A brand, or an agency ordering for one."""
        caller = signed_in(request)
        body = await read_json(request, OfferBody)
        key = _key(request, required=True)
        assert key is not None
        terms = OfferTerms(body.host_id, body.card_version, body.service_id, body.brand_id)
        deal, made = await self._deals.offer(caller, terms, key)
        return json_response(deal, status=201 if made else 200)

    @operation("A deal", tag="deals", auth="signed_in", answers=Answer(200, DealAnswer))
    async def get(self, request: web.Request) -> web.Response:
        """Its brand (or the agency ordering for it), its host (or the host's agency),
        an admin."""
        return json_response(await self._deals.get(signed_in(request), path_id(request)))

    @operation(
        "A deal's receipt", tag="deals", auth="signed_in", answers=Answer(200, DealReceiptAnswer)
    )
    async def receipt(self, request: web.Request) -> web.Response:
        """As ``get``: the deal and every ledger line posted for it."""
        return json_response(await self._deals.receipt(signed_in(request), path_id(request)))

    @operation(
        "Take a step of a deal",
        tag="deals",
        roles=("brand", "host", "agency"),
        body=StepBody,
        body_required=False,
        params=[Param("action", "path", {"type": "string", "enum": ACTIONS}), _STEP_KEY],
        answers=Answer(200, DealAnswer),
        errors=(409,),
        description=(
            "accept, decline, schedule (`session_id`, `product_id`), deliver, cancel: the "
            "host or its agency (cancel also an admin; a host's cancel is a strike); "
            "withdraw, approve, dispute (`reason`): the brand; resolve (`host_bps`): an "
            "admin. 409 `illegal_transition` for a step the deal's state does not allow, "
            "`offer_expired`, `not_delivered`, `review_over`, `session_ended`; 403 "
            "`not_your_deal`, `not_your_step`."
        ),
    )
    async def step(self, request: web.Request) -> web.Response:
        """Per step (the description)."""
        caller = signed_in(request)
        deal_id = path_id(request)
        name = request.match_info["action"]
        if name not in ACTIONS:
            raise web.HTTPNotFound()
        body = await read_json(request, StepBody) if request.can_read_body else StepBody()
        key = _key(request, required=False)
        step = StepInput(body.session_id, body.product_id, body.reason, body.host_bps)
        return json_response(await self._deals.act(caller, deal_id, Action(name), key, step))
