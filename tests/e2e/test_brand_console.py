"""The brand console (/brand) in real Chromium: a brand signs in, adds a product
through the form (a bad one is refused and creates nothing), edits its price inline,
proposes it to a host found by name; the host accepts; an order on the host's live
show appears in the sales table with the right money, and the show in "on air now"."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import aiohttp
from browser_support import call, open_page, sign_in_with_form, signup
from playwright.async_api import expect

TIMEOUT_MS = 5000


async def test_brand_console(browser: Any, base_url: str, artifacts: Path) -> None:
    async with aiohttp.ClientSession(base_url) as http:
        brand = await signup(http, "brand")
        host = await signup(http, "host")
        viewer = await signup(http, "viewer")
        async with open_page(
            browser,
            None,
            viewport={"width": 1280, "height": 1000},
            locale="en-US",
            accept_downloads=True,
        ) as (page, errors):
            await page.goto(f"{base_url}/brand")
            await sign_in_with_form(page, brand)
            await expect(page.get_by_role("heading", name="Brand console")).to_be_visible(
                timeout=TIMEOUT_MS
            )
            products = page.locator("#products")
            error = page.get_by_test_id("product-error")

            new_product = products.get_by_role("form", name="new product")

            async def fill_product(title: str, price: str, currency: str = "EUR") -> None:
                await new_product.get_by_label("Title").fill(title)
                await new_product.get_by_label("Price").fill(price)
                await new_product.get_by_label("Currency").fill(currency)
                await new_product.get_by_label("Stock").fill("25")
                await new_product.get_by_label("Commission %").fill("15")
                await new_product.get_by_role("button", name="Add product").click()

            # Bad input: refused in the page (negative price) or by the server (an
            # unknown currency), shown clearly, and nothing is created.
            await fill_product("Bad apron", "-5")
            await expect(error).to_have_text("Price cannot be negative", timeout=TIMEOUT_MS)
            await fill_product("Bad apron", "19.999")
            await expect(error).to_have_text("Price has at most 2 decimals", timeout=TIMEOUT_MS)
            await fill_product("Bad apron", "19.99", "XYZ")
            await expect(error).to_have_text(
                "Currency must be a currency code such as EUR or USD.", timeout=TIMEOUT_MS
            )
            listed = await call(
                http, "GET", f"/api/brands/{brand['id']}/products?include_archived=1", brand
            )
            assert listed == {"products": [], "next_before_id": None}

            # A good product: money sent as integer minor units, the rate in basis points.
            await fill_product("Linen apron", "19.99")
            row = products.locator("tbody tr", has_text="Linen apron")
            await expect(row.locator("input[name=price]")).to_have_value(
                "19.99", timeout=TIMEOUT_MS
            )
            await expect(error).to_have_text("", timeout=TIMEOUT_MS)
            [product] = (await call(http, "GET", f"/api/brands/{brand['id']}/products", brand))[
                "products"
            ]
            assert (product["price_minor"], product["currency"]) == (1999, "EUR")
            assert (product["stock"], product["commission_bps"]) == (25, 1500)

            # Inline edits of price and stock.
            await row.locator("input[name=price]").fill("24.50")
            await row.locator("input[name=price]").press("Enter")
            note = products.locator(".note")
            await expect(note).to_have_text(
                "Saved “Linen apron”: price €24.50.", timeout=TIMEOUT_MS
            )
            await row.locator("input[name=stock]").fill("30")
            await row.get_by_role("button", name="Save").nth(1).click()
            await expect(note).to_have_text("Saved “Linen apron”: stock 30.", timeout=TIMEOUT_MS)
            product = await call(http, "GET", f"/api/products/{product['id']}")
            assert (product["price_minor"], product["stock"]) == (2450, 30)

            # Propose it to the host, found by name, at 12.5 %.
            coops = page.locator("#cooperations")
            await coops.get_by_label("search hosts").fill(host["username"])
            option = coops.locator(f"select[name=host_id] option[value='{host['id']}']")
            await expect(option).to_have_count(1, timeout=TIMEOUT_MS)
            await coops.locator("select[name=host_id]").select_option(str(host["id"]))
            await coops.get_by_label("Linen apron").check()
            await coops.locator("input[name=proposal_commission]").fill("12.5")
            await coops.locator("input[name=flash_min_price]").fill("60")
            await coops.locator("input[name=flash_max_units]").fill("20")
            await coops.get_by_role("button", name="Propose").click()
            status = coops.get_by_test_id("cooperation-status")
            await expect(status).to_have_text(["proposed"], timeout=TIMEOUT_MS)
            terms = coops.get_by_test_id("flash-terms")
            await expect(terms).to_have_text(["from 60 %, ≤ 20 units"])
            await expect(coops.locator("tbody tr").first).to_contain_text(host["username"])
            [coop] = (await call(http, "GET", "/api/cooperations", brand))["cooperations"]
            assert (coop["host_id"], coop["product_ids"]) == (host["id"], [product["id"]])
            assert coop["commission_bps"] == 1250 and coop["flat_fee_minor"] is None
            assert (coop["flash_min_price_bps"], coop["flash_max_units"]) == (6000, 20)

            # The host accepts; the host goes live with the product; a viewer buys two.
            await call(http, "POST", f"/api/cooperations/{coop['id']}/accept", host)
            show = await call(http, "POST", "/api/sessions", host, {"title": "Aprons live"}, 201)
            await call(
                http,
                "POST",
                f"/api/sessions/{show['id']}/shelf",
                host,
                {"product_id": product["id"]},
                201,
            )
            await call(http, "POST", f"/api/sessions/{show['id']}/start", host)
            order = await call(
                http,
                "POST",
                f"/api/sessions/{show['id']}/orders",
                viewer,
                {"product_id": product["id"], "quantity": 2},
                201,
                headers={"Idempotency-Key": uuid.uuid4().hex},
            )
            assert order["status"] == "paid"

            await page.get_by_test_id("refresh").click()
            await expect(status).to_have_text(["accepted"], timeout=TIMEOUT_MS)
            on_air = page.locator(f"#sessions li[data-session-id='{show['id']}']")
            await expect(on_air).to_contain_text("LIVE", timeout=TIMEOUT_MS)
            await expect(on_air).to_contain_text("Linen apron")
            await expect(on_air.get_by_role("link", name="Aprons live")).to_have_attribute(
                "href", f"/watch/{show['id']}"
            )

            # 2 x 24.50 = 49.00; host 12.5 % = 6.12 (rounded down); platform 5 % = 2.45;
            # the brand keeps 40.43.
            sales = page.locator("#sales table")
            sale = sales.locator("tbody tr", has_text="Aprons live")
            await expect(sale).to_contain_text(host["username"], timeout=TIMEOUT_MS)
            expected = {
                "gmv_minor": "€49.00",
                "refunds_minor": "€0.00",
                "host_commission_minor": "€6.12",
                "platform_fees_minor": "€2.45",
                "brand_net_minor": "€40.43",
            }
            for column, text in expected.items():
                await expect(sale.locator(f"td[data-col={column}]")).to_have_text(text)
            total = sales.locator("tfoot tr[data-currency=EUR]")
            await expect(total).to_contain_text("Total EUR")
            await expect(total.locator("td[data-col=brand_net_minor]")).to_have_text("€40.43")

            # The same report as CSV.
            async with page.expect_download(timeout=TIMEOUT_MS) as download_info:
                await page.get_by_test_id("sales-csv").click()
            download = await download_info.value
            assert download.suggested_filename == f"sales-brand-{brand['id']}.csv"
            csv_text = await asyncio.to_thread(Path(await download.path()).read_text)
            header, line = csv_text.strip().splitlines()
            assert header.startswith("host_id,host_name,session_id")
            # minor units, then the same figures as amounts in the currency
            assert line.endswith("EUR,1,2,4900,0,0,612,245,4043,49.00,0.00,6.12,2.45,40.43")

            # A second product: proposed then withdrawn, then archived (confirmed in a
            # dialog), hidden until "Show archived" is ticked.
            page.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
            await fill_product("Old apron", "5")
            old = products.locator("tbody tr", has_text="Old apron")
            await expect(old).to_have_count(1, timeout=TIMEOUT_MS)
            await coops.get_by_label("Old apron").check()
            await coops.locator("input[name=proposal_commission]").fill("10")
            await coops.get_by_role("button", name="Propose").click()
            await expect(status).to_have_text(["proposed", "accepted"], timeout=TIMEOUT_MS)
            await coops.locator("tbody tr").first.get_by_role("button", name="Withdraw").click()
            await expect(status).to_have_text(["withdrawn", "accepted"], timeout=TIMEOUT_MS)
            await old.get_by_role("button", name="Archive").click()
            await expect(old).to_have_count(0, timeout=TIMEOUT_MS)
            await expect(coops.get_by_label("Old apron")).to_have_count(0)
            await products.get_by_label("Show archived").check()
            await expect(old.locator(".badge")).to_have_text("archived", timeout=TIMEOUT_MS)
            archived = await call(
                http, "GET", f"/api/brands/{brand['id']}/products?include_archived=1", brand
            )
            assert [(p["title"], p["archived"]) for p in archived["products"]] == [
                ("Old apron", True),
                ("Linen apron", False),
            ]

            await page.screenshot(path=str(artifacts / "brand-console.png"), full_page=True)
            await page.set_viewport_size({"width": 390, "height": 844})
            await page.screenshot(path=str(artifacts / "brand-console-phone.png"), full_page=True)
            assert errors == []
