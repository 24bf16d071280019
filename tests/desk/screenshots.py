"""Regenerate docs/screenshots/*.png: one per main view of Docket Desk, from the demo's
talks, in the same headless Chromium as the browser tests.

    python -m tests.desk.screenshots [OUT_DIR]

It runs ``docket demo``'s round, then, with the demo's server still up (the hook of
``docket demo --desk``), opens the desk as the mediator, a delegate and the monitor
and saves each view.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from client.demo import Demo, run_demo
from client.desk.app import Running
from client.desk.run import open_desk
from tests.desk.browser import WAIT, chromium

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _shoot(
    driver: WebDriver, url: str, out: Path, ready: tuple[str, str] = (By.ID, "main")
) -> None:
    driver.get(url)
    WebDriverWait(driver, WAIT).until(ec.presence_of_element_located(ready))
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1280, max(700, min(int(height) + 40, 1800)))
    driver.save_screenshot(str(out))
    print(f"wrote {out}", flush=True)


async def shots(demo: Demo, out: Path) -> None:
    envoy, delegate, monitor = demo.c("envoy"), demo.c("south-military"), demo.c("monitor")
    desks: list[Running] = []
    for client in (envoy, delegate, monitor):
        desks.append((await open_desk(client))[1])
    med, dele, mon = desks
    inbox = await delegate.inbox()
    versions = sorted(
        (i for i in inbox.items if i.version >= 2), key=lambda i: (-i.version, -i.index)
    )
    draft = versions[0] if versions else inbox.items[0]
    history = await delegate.history(draft.draft)
    earlier = [h.index for h in history if h.index != draft.index and h.title]

    def drive() -> None:
        with chromium() as driver:
            driver.get(dele.launch)
            _shoot(driver, f"{dele.base}/", out / "inbox.png")
            against = f"?against={earlier[-1]}" if earlier else ""
            _shoot(driver, f"{dele.base}/draft/{draft.index}{against}", out / "draft.png")
            _shoot(driver, f"{dele.base}/compose?parent={draft.index}", out / "compose.png")
        with chromium() as driver:
            driver.get(med.launch)
            _shoot(driver, f"{med.base}/board", out / "board.png", (By.ID, "grid"))
            _shoot(driver, f"{med.base}/roster", out / "roster.png")
            _shoot(driver, f"{med.base}/health", out / "health.png", (By.ID, "health"))
        with chromium() as driver:
            driver.get(mon.launch)
            driver.get(f"{mon.base}/audit")
            WebDriverWait(driver, WAIT).until(ec.element_to_be_clickable((By.ID, "run-audit")))
            driver.find_element(By.ID, "run-audit").click()
            WebDriverWait(driver, 120).until(
                ec.any_of(
                    ec.presence_of_element_located((By.CSS_SELECTOR, "#audit-report pre.report")),
                    ec.presence_of_element_located((By.CSS_SELECTOR, "#audit-report .warn")),
                )
            )
            warn = driver.find_elements(By.CSS_SELECTOR, "#audit-report .warn")
            if warn:
                raise RuntimeError(f"the desk's audit did not run: {warn[0].text}")
            _shoot(driver, f"{mon.base}/audit", out / "audit.png")
            _shoot(driver, f"{mon.base}/evidence", out / "evidence.png")

    try:
        await asyncio.to_thread(drive)
    finally:
        for r in desks:
            await r.runner.cleanup()


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("DOCKET_KDF", "fast")
    work = Path(tempfile.mkdtemp(prefix="docket-shots-")) / "demo"

    async def then(demo: Demo) -> None:
        await shots(demo, out)

    asyncio.run(run_demo(work, echo=False, then=then))


if __name__ == "__main__":
    main()
