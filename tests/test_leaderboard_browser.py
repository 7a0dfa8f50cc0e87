"""leaderboard.html in a real headless Chromium: no console error, sorting works, the numbers are results.json's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from iqabench.reports.schema import read_results
from tests.leaderboard_run import make_analysis_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL = ("install the Debian packages chromium and chromium-driver (apt-get install -y chromium chromium-driver) "
           "and the dev extra (pip install -e '.[dev]', which brings playwright)")

playwright = pytest.importorskip("playwright.sync_api", reason=f"playwright is not installed: {INSTALL}")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}: {INSTALL}"),
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_analysis_run(tmp_path_factory.mktemp("browser"))


@pytest.fixture(scope="module")
def page_of(run_dir):
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            problems, requests = [], []
            page.on("console", lambda message: problems.append(f"{message.type}: {message.text}")
                    if message.type in ("error", "warning") else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("request", lambda request: requests.append(request.url))
            page.goto((run_dir / "leaderboard.html").as_uri())
            page.wait_for_load_state("load")
            yield page, problems, requests
        finally:
            browser.close()


def labels(page) -> list[str]:
    return page.locator("#accuracy tbody tr td.label").all_inner_texts()


def test_the_page_loads_without_a_console_error_or_a_request(page_of, run_dir):
    page, problems, requests = page_of
    assert problems == []
    # the page itself, and nothing else: thumbnails and figures are data: URIs
    assert [url for url in requests if not url.startswith("data:")] == [(run_dir / "leaderboard.html").as_uri()]
    assert page.title() == "analyses: leaderboard"


def test_the_numbers_shown_are_those_of_results_json(page_of, run_dir):
    page, _, _ = page_of
    results = read_results(run_dir / "results.json")
    cells = page.locator("#accuracy tbody td[data-metric]")
    assert cells.count() == 2 * len(results.models)
    for index in range(cells.count()):
        cell = cells.nth(index)
        model = cell.evaluate("c => c.parentElement.getAttribute('data-model')")
        metric = cell.get_attribute("data-metric")
        value = results.pair(model, "typed-test").metric(metric)
        assert cell.inner_text().rstrip("†") == f"{value:.3f}"
        assert float(cell.get_attribute("data-value")) == value
    assert labels(page) == [m.label for m in results.models]


def test_clicking_a_header_sorts_the_rows(page_of, run_dir):
    page, problems, _ = page_of
    results = read_results(run_dir / "results.json")
    srcc = {m.label: results.pair(m.key, "typed-test").metric("srcc") for m in results.models}
    header = page.locator("#accuracy thead th", has_text="Typed SRCC")
    header.click()
    assert labels(page) == sorted(srcc, key=srcc.get)
    header.click()
    assert labels(page) == sorted(srcc, key=srcc.get, reverse=True)
    page.locator("#accuracy thead th", has_text="Model").click()
    assert labels(page) == sorted(srcc, key=str.lower)
    assert problems == []


def test_hovering_a_point_shows_its_image_and_numbers(page_of, run_dir):
    page, problems, _ = page_of
    point = page.locator("svg.scatter[data-model='wobbly-b'] .pt").first
    point.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    text = tip.inner_text()
    first = (run_dir / "predictions" / "wobbly-b" / "typed-test.csv").read_text().splitlines()[1].split(",")
    assert first[0] in text and f"MOS {float(first[2]):.3f}" in text
    assert tip.locator("img").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert problems == []
