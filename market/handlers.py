"""HTTP routes of the market: rate cards, creator profiles and the creator directory.
Each handler names who may call it; the services enforce it. See ``API.md``."""

from __future__ import annotations

import re

from aiohttp import web

from live.errors import InvalidInput
from live.http import json_response, page_query, path_id, query_int, read_json, signed_in
from live.money import CURRENCIES, MAX_MINOR
from live.openapi import Answer, follow, integer, operation, page_params, query
from live.paging import RANKED_CURSOR, RankedPage
from market.answers import (
    CreatorAnswer,
    CreatorsAnswer,
    OwnProfileAnswer,
    RateCardAnswer,
    RateCardVersionsAnswer,
)
from market.directory import SORTS, CreatorDirectory, DirectoryQuery, Sort, ranked_page
from market.models import ServiceKind
from market.profiles import CreatorProfiles
from market.rate_cards import RateCards
from market.schemas import REGION_PATTERN, TAG_PATTERN, ProfileBody, RateCardBody

#: the largest ``?limit=`` of the lists (the default: 20 creators, 50 versions)
MAX_CREATORS_PAGE = 50
MAX_VERSIONS_PAGE = 100
#: the largest follower / viewer count a filter takes
MAX_COUNT = 2**31 - 1


class MarketHandlers:
    def __init__(
        self, cards: RateCards, profiles: CreatorProfiles, directory: CreatorDirectory
    ) -> None:
        self._cards = cards
        self._profiles = profiles
        self._directory = directory

    def routes(self) -> list[web.RouteDef]:
        card = "/api/hosts/{id}/rate-card"
        return [
            web.put(card, self.publish_card),
            web.get(card, self.current_card),
            web.get(f"{card}/versions", self.card_versions),
            web.get(card + "/versions/{version}", self.card_version),
            web.get("/api/me/creator-profile", self.own_profile),
            web.put("/api/me/creator-profile", self.put_profile),
            web.get("/api/creators", self.find_creators),
            web.get("/api/creators/{id}", self.get_creator),
        ]

    # -- rate cards ------------------------------------------------------------------

    @operation(
        "Publish a rate card",
        tag="market",
        roles=("host", "agency"),
        body=RateCardBody,
        answers=Answer(
            201,
            RateCardAnswer,
            links=follow(
                "get_api_hosts_id_rate_card_versions_version",
                id="$response.body#/host_id",
                version="$response.body#/version",
            ),
        ),
        errors=(409,),
        description=(
            "A new version of the host's card, with all its services; older versions "
            "stay readable and unchanged. The host itself, the agency the host named, or "
            "an admin (403 `not_your_card`, `not_your_host`, `role_not_allowed`). 422 "
            "`notes_unavailable`, `minutes_required`, `minutes_not_allowed`, "
            "`invalid_input`; 409 `stale_version`, `rate_card_busy`. A refusal writes "
            "nothing."
        ),
    )
    async def publish_card(self, request: web.Request) -> web.Response:
        """The host, the agency the host named, or an admin."""
        caller = signed_in(request)
        host_id = path_id(request)
        body = await read_json(request, RateCardBody)
        return json_response(await self._cards.publish(caller, host_id, body), status=201)

    @operation("A host's current rate card", tag="market", answers=Answer(200, RateCardAnswer))
    async def current_card(self, request: web.Request) -> web.Response:
        """Anyone."""
        return json_response(await self._cards.current(path_id(request)))

    @operation(
        "A host's rate card versions",
        tag="market",
        answers=Answer(200, RateCardVersionsAnswer),
        params=page_params(MAX_VERSIONS_PAGE),
    )
    async def card_versions(self, request: web.Request) -> web.Response:
        """Anyone. Newest first, ``?limit=&before_id=`` (a version)."""
        page = page_query(request, maximum=MAX_VERSIONS_PAGE)
        versions = await self._cards.versions(path_id(request), page)
        return json_response(page.answer("versions", versions))

    @operation(
        "One version of a host's rate card",
        tag="market",
        answers=Answer(200, RateCardAnswer),
    )
    async def card_version(self, request: web.Request) -> web.Response:
        """Anyone: any version ever published, unchanged."""
        host_id = path_id(request)
        version = path_id(request, "version")
        return json_response(await self._cards.version(host_id, version))

    # -- creator profile ---------------------------------------------------------------

    @operation(
        "The host's creator profile",
        tag="market",
        auth="signed_in",
        errors=(403,),
        answers=Answer(200, OwnProfileAnswer),
    )
    async def own_profile(self, request: web.Request) -> web.Response:
        """Host (others: 403 ``role_not_allowed``)."""
        return json_response(await self._profiles.own(signed_in(request)))

    @operation(
        "Write the host's creator profile",
        tag="market",
        auth="signed_in",
        errors=(403,),
        body=ProfileBody,
        answers=Answer(200, OwnProfileAnswer),
        description=(
            "Host only (others: 403 `role_not_allowed`). Self-reported tags, region and "
            "bio, replaced whole; never shown as verified."
        ),
    )
    async def put_profile(self, request: web.Request) -> web.Response:
        """Host (others: 403 ``role_not_allowed``): the whole profile."""
        caller = signed_in(request)
        body = await read_json(request, ProfileBody)
        return json_response(await self._profiles.put(caller, body))

    # -- the directory -------------------------------------------------------------------

    @operation(
        "Find creators",
        tag="market",
        answers=Answer(200, CreatorsAnswer),
        params=[
            query("tag", {"type": "string", "pattern": TAG_PATTERN}, "a profile tag"),
            query(
                "region",
                {"type": "string", "pattern": REGION_PATTERN},
                "a region code (US also matches US-CA)",
            ),
            query(
                "kind",
                {"type": "string", "enum": [k.value for k in ServiceKind]},
                "offers a service of this kind",
            ),
            query(
                "currency",
                {"type": "string", "enum": sorted(CURRENCIES)},
                "offers a service priced in it; needed by min_price, max_price and the "
                "gmv and price sorts",
            ),
            query("min_price", integer(0, MAX_MINOR), "a service at this price or more"),
            query("max_price", integer(0, MAX_MINOR), "a service at this price or less"),
            query("min_followers", integer(0, MAX_COUNT), "verified followers"),
            query("min_peak_viewers", integer(0, MAX_COUNT), "verified peak viewers"),
            query("sort", {"type": "string", "enum": list(SORTS)}, "default followers"),
            query("limit", integer(1, MAX_CREATORS_PAGE), "creators in the page (default 20)"),
            query(
                "after",
                {"type": "string", "pattern": RANKED_CURSOR},
                "the previous page's next_after",
            ),
        ],
    )
    async def find_creators(self, request: web.Request) -> web.Response:
        """Anyone. Filters, a sort and a page (``market.directory``)."""
        q = request.query
        directory_query = DirectoryQuery(
            tag=_pattern(q.get("tag"), "tag", TAG_PATTERN),
            region=_pattern(q.get("region"), "region", REGION_PATTERN),
            kind=_choice(q.get("kind"), "kind", [k.value for k in ServiceKind]),
            currency=_choice(q.get("currency"), "currency", sorted(CURRENCIES)),
            min_price=query_int(request, "min_price", maximum=MAX_MINOR),
            max_price=query_int(request, "max_price", maximum=MAX_MINOR),
            min_followers=query_int(request, "min_followers", maximum=MAX_COUNT),
            min_peak_viewers=query_int(request, "min_peak_viewers", maximum=MAX_COUNT),
            sort=_sort(q.get("sort")),
        )
        limit = page_query(request, maximum=MAX_CREATORS_PAGE, default=20).limit
        after = None
        if q.get("after"):
            try:
                after = RankedPage.cursor(q["after"])
            except ValueError as exc:
                raise InvalidInput("invalid_query", "after is a page's next_after") from exc
        page = ranked_page(directory_query, limit, after)
        found = await self._directory.search(directory_query, page)
        return json_response({"creators": found.items, "next_after": found.next_after})

    @operation("A creator", tag="market", answers=Answer(200, CreatorAnswer))
    async def get_creator(self, request: web.Request) -> web.Response:
        """Anyone: a host in the directory."""
        return json_response(await self._directory.creator(path_id(request)))


def _pattern(value: str | None, name: str, pattern: str) -> str | None:
    if value is None or value == "":
        return None
    if re.fullmatch(pattern, value) is None:
        raise InvalidInput("invalid_query", f"{name} does not match {pattern}")
    return value


def _choice(value: str | None, name: str, choices: list[str]) -> str | None:
    if value is None or value == "":
        return None
    if value not in choices:
        raise InvalidInput("invalid_query", f"{name} is not one of the allowed values")
    return value


def _sort(value: str | None) -> Sort:
    for sort in SORTS:
        if value == sort:
            return sort
    if value:
        raise InvalidInput("invalid_query", f"sort is one of {', '.join(SORTS)}")
    return "followers"
