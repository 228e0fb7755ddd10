"""The web page in a real browser: Debian's headless Chromium driven by selenium through chromedriver, against
the service on loopback over the tiny trained project. Click a query, check the grid against the API; switch
champion and search by tags; upload an image; a screenshot goes to the test's temporary directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tagcode.serve.app import create_app
from tagcode.serve.catalog import Catalog
from tagcode.serve.champions import load_champion
from tagcode.serve.engine import SearchService
from tagcode.serve.server import running
from tests.serve_project import build_serve_project

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900")
WAIT_S = 30


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_serve_project(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def url(project: Path) -> Iterator[str]:
    catalog = Catalog(project / "data" / "prepared", embed=project / "data" / "embed",
                      features=project / "data" / "features")
    service = SearchService(catalog, [load_champion(str(project / "models" / n), codes_root=project / "codes")
                                      for n in ("itq-16", "wsdhq-8")])
    with running(create_app(service)) as base:
        yield base


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Headless Chromium (Debian's), no network beyond loopback, its profile in a temporary directory."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            pytest.fail(f"{path} not found: `make setup` installs Debian's chromium and chromium-driver")
    os.environ["SE_OFFLINE"] = "true"  # selenium manager must not look for drivers online
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _grid(driver: object, n: int) -> list[object]:
    """The result cards once ``n`` of them are shown."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_S).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#grid .result")) == n)
    return driver.find_elements(By.CSS_SELECTOR, "#grid .result")


def test_click_a_query_and_see_the_grid(browser: object, url: str, project: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    driver = browser
    driver.get(url)
    WebDriverWait(driver, WAIT_S).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#queries button")) == 8)
    first = driver.find_elements(By.CSS_SELECTOR, "#queries button")[2]
    qid = first.get_attribute("data-id")
    first.click()
    cards = _grid(driver, 20)
    api = requests.get(f"{url}/api/search/id", params={"id": qid, "champion": "itq-16", "k": 20}, timeout=10).json()
    assert [c.get_attribute("data-id") for c in cards] == [r["id"] for r in api["results"]]
    marks = ["relevant" if "relevant" in c.get_attribute("class").split() else
             "irrelevant" if "irrelevant" in c.get_attribute("class").split() else None for c in cards]
    assert marks == ["relevant" if r["relevant"] else "irrelevant" for r in api["results"]]
    relevant = sum(r["relevant"] for r in api["results"])
    assert f"{relevant}/20 relevant" in driver.find_element(By.ID, "status").text
    loaded = driver.execute_script(
        "return [...document.querySelectorAll('#grid img')].filter(i => i.complete && i.naturalWidth > 0).length")
    assert loaded == 20  # every thumbnail arrived and decoded
    driver.save_screenshot(str(tmp_path / "search.png"))
    assert (tmp_path / "search.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    tags = driver.find_element(By.ID, "tags")
    assert not tags.is_enabled()  # ITQ's query side is Hamming space: the tag box is off
    Select(driver.find_element(By.ID, "champion")).select_by_value("wsdhq-8")
    cards = _grid(driver, 20)  # the same query re-run on the other champion
    assert driver.find_element(By.ID, "status").text.startswith("wsdhq-8")
    tags.send_keys("sky, ocean")
    driver.find_element(By.ID, "tag-search").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "tags: sky, ocean" in d.find_element(By.ID, "query-view").text)
    api = requests.get(f"{url}/api/search/tags", params={"q": "sky, ocean", "champion": "wsdhq-8"}, timeout=10).json()
    assert [c.get_attribute("data-id") for c in _grid(driver, 20)] == [r["id"] for r in api["results"]]

    tags.clear()
    tags.send_keys("zebra")
    driver.find_element(By.ID, "tag-search").click()
    WebDriverWait(driver, WAIT_S).until(lambda d: "unknown tag 'zebra'" in d.find_element(By.ID, "status").text)
    assert driver.find_elements(By.CSS_SELECTOR, "#grid .result") == []

    driver.find_element(By.ID, "upload").send_keys(str(project / "ds" / "images" / "green_03.png"))
    WebDriverWait(driver, WAIT_S).until(lambda d: "uploaded image" in d.find_element(By.ID, "query-view").text)
    assert len(_grid(driver, 20)) == 20
