"""Docket Desk in a real headless Chromium against a real server.

The server and the desks run in the test's event loop; Selenium's blocking calls run in
a worker thread (:func:`asyncio.to_thread`) so that both keep serving meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from client.api import DocketClient
from client.desk.app import Desk, Running, start
from protocol.envelope import NON_PAPER, Payload
from tests.adversarial.conftest import D2, World
from tests.desk.browser import WAIT, chromium

T = 120.0


@pytest.fixture
async def desks() -> AsyncIterator[Callable[[DocketClient], Any]]:
    running: list[Running] = []

    async def make(client: DocketClient) -> Running:
        await client.sync()
        r = await start(Desk(client=client))
        running.append(r)
        return r

    yield make
    for r in running:
        await r.runner.cleanup()


def wait(driver: WebDriver) -> WebDriverWait:  # type: ignore[type-arg]
    return WebDriverWait(driver, WAIT, ignored_exceptions=(StaleElementReferenceException,))


def open_launch(driver: WebDriver, r: Running) -> None:
    driver.get(r.launch)
    wait(driver).until(ec.url_to_be(r.base + "/"))
    assert "token" not in driver.current_url
    assert driver.get_cookies() and driver.get_cookies()[0]["httpOnly"]


async def test_read_redline_send_version_and_acknowledge_live(
    world: World, desks: Callable[[DocketClient], Any]
) -> None:
    async with asyncio.timeout(T):
        north = world.client("n-adv")
        v1 = await north.send(
            "plenary", Payload(title="Article 1", body="The parties shall meet in Geneva.")
        )
        v2 = await north.send(
            "plenary",
            Payload(title="Article 1", body="The parties shall meet in Vienna."),
            parents=[v1.leaf],
        )
        south = await desks(world.client("s-adv"))
        med_client = world.client("med")
        med = await desks(med_client)

        def delegate() -> int:
            with chromium() as driver:
                open_launch(driver, south)
                wait(driver).until(ec.element_to_be_clickable((By.LINK_TEXT, "Article 1")))
                driver.get(f"{south.base}/draft/{v2.index}")
                body = wait(driver).until(ec.presence_of_element_located((By.ID, "draft-body")))
                assert "Vienna" in body.text
                driver.find_element(By.PARTIAL_LINK_TEXT, "redline against this version").click()
                red = wait(driver).until(ec.presence_of_element_located((By.ID, "redline")))
                assert red.find_element(By.TAG_NAME, "del").text == "Geneva"
                assert red.find_element(By.TAG_NAME, "ins").text == "Vienna"
                driver.find_element(By.PARTIAL_LINK_TEXT, "Send a new version").click()
                text = wait(driver).until(ec.presence_of_element_located((By.ID, "text")))
                text.clear()
                text.send_keys("The parties shall meet in Vienna or Geneva.")
                driver.find_element(By.ID, "non_paper").click()  # sent deniable
                driver.find_element(By.ID, "send").click()
                try:
                    wait(driver).until(ec.url_matches(r"/draft/\d+$"))
                except Exception:
                    raise AssertionError(driver.page_source[:800]) from None
                heading = driver.find_element(By.TAG_NAME, "h1").text
                assert heading == "Article 1"
                assert "version 3" in driver.find_element(By.CLASS_NAME, "facts").text
                return int(driver.current_url.rsplit("/", 1)[1])

        v3 = await asyncio.to_thread(delegate)
        await north.sync()
        assert north.log.draft(v3).version == 3
        assert north.log.draft(v3).mode == NON_PAPER

        def mediator() -> None:
            with chromium() as driver:
                open_launch(driver, med)
                driver.get(f"{med.base}/board?channel=plenary")
                driver.execute_script("window.__noReload = 1;")

                def click_ack(d: WebDriver) -> str | None:
                    # The grid may be re-rendered by a live update between finding
                    # the button and clicking it: then find it again.
                    button = d.find_element(By.ID, f"ack-{D2}")
                    cell = button.find_element(By.XPATH, "./ancestor::td")
                    cell_id = cell.get_attribute("id")
                    button.click()
                    return cell_id

                cell_id = wait(driver).until(click_ack)
                wait(driver).until(
                    lambda d: (
                        d.find_element(By.ID, cell_id).get_attribute("data-state") == "acknowledged"
                    )
                )
                assert driver.execute_script("return window.__noReload;") == 1

        await asyncio.to_thread(mediator)
        acked = {line.member for line in med_client.receipts(D2).lines if line.acknowledged}
        assert "med" in acked


async def test_red_banner_when_a_proxy_forks_the_log(
    world: World, desks: Callable[[DocketClient], Any]
) -> None:
    async with asyncio.timeout(T):
        proxy = await world.proxy()
        client = world.client("s-adv", url=proxy.url)
        r = await desks(client)

        def watch_banner(fork: Callable[[], None]) -> str:
            with chromium() as driver:
                open_launch(driver, r)
                driver.get(f"{r.base}/compose")
                assert not driver.find_elements(By.CSS_SELECTOR, "[role=alert]")
                assert driver.find_element(By.ID, "send").is_enabled()
                driver.execute_script("window.__noReload = 1;")
                fork()
                alert = wait(driver).until(
                    ec.visibility_of_element_located((By.CSS_SELECTOR, "#banner [role=alert]"))
                )
                assert driver.execute_script("return window.__noReload;") == 1
                text = str(alert.text)
                driver.refresh()  # on every page, and the send button is disabled
                assert driver.find_elements(By.CSS_SELECTOR, "#banner [role=alert]")
                assert not driver.find_element(By.ID, "send").is_enabled()
                return text

        loop = asyncio.get_running_loop()

        async def swap() -> None:
            # The real log as it is now, with its last two entries swapped: a log of the
            # same size with another history, signed with the server's own key.
            entries = await world.entries()
            proxy.view = world.view([*entries[:-2], entries[-1], entries[-2]])

        def fork() -> None:
            asyncio.run_coroutine_threadsafe(swap(), loop).result(timeout=WAIT)

        text = await asyncio.to_thread(watch_banner, fork)
        assert "fork" in text and "sending is blocked" in text.lower()
