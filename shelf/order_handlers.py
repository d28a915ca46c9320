"""Routes of the money path: orders, refunds, commission and sales reports."""

from __future__ import annotations

import functools

from aiohttp import web
from pydantic import BaseModel

from live.clock import Clock
from live.errors import InvalidInput, LiveshelfError
from live.http import (
    MAX_ID,
    json_response,
    page_query,
    path_id,
    query_int,
    read_json,
    signed_in,
)
from live.openapi import Answer, Param, integer, operation, page_of, page_params, query
from shelf.answers import OrderAnswer, PaymentDeclinedAnswer
from shelf.order_models import OrderSource
from shelf.order_schemas import OrderBody, RefundBody, parse_instant
from shelf.orders import OrderService
from shelf.report_answers import BrandSalesAnswer, HostCommissionAnswer
from shelf.reports import BRAND_COLUMNS, HOST_COLUMNS, Period, ReportService, to_csv

#: the largest ``?limit=`` of ``GET /api/me/orders`` (``live.paging``; default 50)
MAX_ORDERS_PAGE = 200

#: the header that makes an order request safe to repeat (``shelf.orders``)
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "pattern": "^[!-~]{1,128}$"},
    "1-128 printable ASCII characters naming this order: the same key from the same buyer "
    "gets the same answer and never orders twice (400 idempotency_key_required without "
    "one, 422 idempotency_key_reused for another order)",
    required=True,
)
#: an order's answers (a repeated request gets the first one's again)
_ORDER_ANSWERS = [
    Answer(201, OrderAnswer, description="ordered and paid"),
    Answer(
        402, PaymentDeclinedAnswer, description="the payment was declined: the order is cancelled"
    ),
]
#: ``?from=&to=`` of the reports: a date (UTC midnight) or a datetime with a timezone,
#: from 1970 to 9999 in UTC (``parse_instant``)
_INSTANT = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
_PERIOD_PARAMS = [
    query("from", _INSTANT, "orders placed from then on (default: all)"),
    query("to", _INSTANT, "orders placed before then (default: now)"),
]
_FORMAT_PARAM = query(
    "format", {"type": "string", "enum": ["json", "csv"]}, "json (the default) or csv"
)


def _report(model: type[BaseModel]) -> Answer:
    """A report's answer: JSON, or with ``format=csv`` its rows as CSV."""
    return Answer(
        200,
        model,
        description="the report; with format=csv its rows as CSV, a header line first",
        also=("text/csv",),
        headers={"Content-Disposition": "with format=csv: attachment, the report's file name"},
    )


#: the two order routes (live, replay) take and answer the same
_order_operation = functools.partial(
    operation,
    tag="orders",
    roles=("viewer",),
    body=OrderBody,
    params=[IDEMPOTENCY_KEY],
    answers=_ORDER_ANSWERS,
    errors=(409,),
)


class OrderHandlers:
    def __init__(self, orders: OrderService, reports: ReportService, clock: Clock) -> None:
        self._orders = orders
        self._reports = reports
        self._clock = clock

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/sessions/{id}/orders", self.place),
            web.post("/api/sessions/{id}/replay-orders", self.place_replay),
            web.get("/api/orders/{id}", self.get),
            web.get("/api/me/orders", self.mine),
            web.post("/api/orders/{id}/refund", self.refund),
            web.get("/api/hosts/{id}/commission", self.host_commission),
            web.get("/api/brands/{id}/sales", self.brand_sales),
        ]

    @_order_operation("Order from a live session")
    async def place(self, request: web.Request) -> web.Response:
        """Signed-in viewer. ``Idempotency-Key`` header required."""
        return await self._place(request, OrderSource.LIVE)

    @_order_operation("Order from an ended session's replay")
    async def place_replay(self, request: web.Request) -> web.Response:
        """Signed-in viewer, on an ended session's replay."""
        return await self._place(request, OrderSource.REPLAY)

    async def _place(self, request: web.Request, source: OrderSource) -> web.Response:
        stats = self._orders.stats
        try:
            buyer = signed_in(request)
            session_id = path_id(request)
            body = await read_json(request, OrderBody)
            result = await self._orders.place(
                buyer,
                session_id,
                body.product_id,
                body.quantity,
                request.headers.get("Idempotency-Key"),
                source=source,
                expected_price=body.expected_unit_price_minor,
                expected_currency=body.currency,
            )
        except LiveshelfError as exc:
            stats.refused[exc.code] += 1
            raise
        stats.answered[result.body.get("status", "")] += 1
        return json_response(result.body, status=result.status)

    @operation("An order", tag="orders", auth="signed_in", answers=Answer(200, OrderAnswer))
    async def get(self, request: web.Request) -> web.Response:
        """The buyer, the brand, the host, or an admin."""
        return json_response(await self._orders.get(signed_in(request), path_id(request)))

    @operation(
        "The caller's orders",
        tag="orders",
        auth="signed_in",
        answers=Answer(200, page_of("orders", OrderAnswer)),
        params=page_params(MAX_ORDERS_PAGE),
    )
    async def mine(self, request: web.Request) -> web.Response:
        """Signed in: the caller's own orders, newest first, ``?limit=`` (1..200,
        default 50) ``&before_id=`` (``live.paging``)."""
        buyer = signed_in(request)
        page = page_query(request, maximum=MAX_ORDERS_PAGE)
        return json_response(page.answer("orders", await self._orders.mine(buyer, page)))

    @operation(
        "Refund an order",
        tag="orders",
        roles=("brand",),
        body=RefundBody,
        body_required=False,
        answers=Answer(200, OrderAnswer),
        errors=(409,),
    )
    async def refund(self, request: web.Request) -> web.Response:
        """The product's brand, or an admin. ``{"quantity": n}`` or all that is left."""
        caller = signed_in(request)
        body = await read_json(request, RefundBody)
        return json_response(await self._orders.refund(caller, path_id(request), body.quantity))

    @operation(
        "A host's commission report",
        tag="reports",
        auth="signed_in",
        answers=_report(HostCommissionAnswer),
        params=[
            *_PERIOD_PARAMS,
            query("session_id", integer(), "only this session's orders"),
            _FORMAT_PARAM,
        ],
        errors=(403,),
    )
    async def host_commission(self, request: web.Request) -> web.Response:
        """That host, or an admin. ``?from=&to=&session_id=&format=json|csv``."""
        caller = signed_in(request)
        report = await self._reports.host_commission(
            caller,
            path_id(request),
            self._period(request),
            query_int(request, "session_id", maximum=MAX_ID),
        )
        if self._format(request) == "csv":
            return _csv(
                to_csv(HOST_COLUMNS, report["rows"]), f"commission-host-{report['host_id']}"
            )
        return json_response(report)

    @operation(
        "A brand's sales report",
        tag="reports",
        auth="signed_in",
        answers=_report(BrandSalesAnswer),
        params=[*_PERIOD_PARAMS, _FORMAT_PARAM],
        errors=(403,),
    )
    async def brand_sales(self, request: web.Request) -> web.Response:
        """That brand, or an admin. ``?from=&to=&format=json|csv``."""
        caller = signed_in(request)
        report = await self._reports.brand_sales(caller, path_id(request), self._period(request))
        if self._format(request) == "csv":
            return _csv(to_csv(BRAND_COLUMNS, report["rows"]), f"sales-brand-{report['brand_id']}")
        return json_response(report)

    def _period(self, request: web.Request) -> Period:
        start = parse_instant("from", request.query.get("from"), 0)
        end = parse_instant("to", request.query.get("to"), self._clock.now_ms() + 1)
        if end <= start:
            raise InvalidInput("invalid_query", "'to' must be after 'from'")
        return Period(start, end)

    @staticmethod
    def _format(request: web.Request) -> str:
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            raise InvalidInput("invalid_query", "format is json or csv")
        return fmt


def _csv(text: str, name: str) -> web.Response:
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )
