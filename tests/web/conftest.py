"""Dashboard fixtures: the seeded lab behind a live server (``webseed``) and a headless Debian
chromium driven by Playwright, with desktop, phone and signed-in-admin tabs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from webseed import ADMIN, CHROMIUM, CHROMIUM_ARGS, LiveServer, Seeded, Tab, seed

from aarlab.server.app import create_app
from aarlab.store.db import Store


@pytest.fixture(scope="session")
def web_lab(settings, tiny_tweets, tmp_path_factory) -> Iterator[Seeded]:
    kit, key = tiny_tweets
    root = tmp_path_factory.mktemp("web-lab")
    s = settings.model_copy(update={"db_url": f"sqlite:///{root / 'lab.db'}",
                                    "admin_token": ADMIN, "snapshots_root": root / "blobs",
                                    "submissions_per_hour": 4,
                                    # a display fixture: six honest steps on 80 feedback rows
                                    # must be released (the climbing defaults are tested
                                    # in tests/security/test_ladder_climbing.py)
                                    "ladder_safety": 1.0})
    store = Store(s.database_url)
    with LiveServer(create_app(s, store)) as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        ids = kit.ids("test")
        lab = Seeded(server.url, store, http, {}, ids, key.labels("test", ids), kit.label_names)
        seed(lab, root)
        yield lab


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    # Module, not session: Playwright's sync API keeps an event loop running in this thread
    # while it is open, and every async test after it (anyio's runner) then failed with
    # "Cannot run the event loop while another loop is running".
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def tab(browser, web_lab) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    t = Tab(ctx.new_page(), web_lab.url)
    yield t
    ctx.close()


@pytest.fixture
def phone(browser, web_lab) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True,
                              has_touch=True, device_scale_factor=2)
    t = Tab(ctx.new_page(), web_lab.url)
    yield t
    ctx.close()


@pytest.fixture
def admin_tab(browser, web_lab) -> Iterator[Tab]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    t = Tab(ctx.new_page(), web_lab.url)
    t.open("/login")
    t.page.fill("input[name=token]", ADMIN)
    t.page.click("button[type=submit]")
    t.page.wait_for_url(web_lab.url + "/")
    yield t
    ctx.close()
