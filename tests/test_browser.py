"""The web app in a real browser: Playwright driving Debian's Chromium against ``rpacs serve``.

Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``, which
``make test`` installs when it is missing (as root).
"""

from __future__ import annotations

import os
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import free_port, running
from .web_world import PASSWORD, World, build_world, failed_export

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent


def _ensure_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and only root can install it: "
                    "apt-get install chromium (or run make test as root)")
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-system-packages.sh"), "chromium"],
                   check=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           subprocess_env_module: dict[str, str]) -> Iterator[tuple[str, World]]:
    _ensure_chromium()
    home = tmp_path_factory.mktemp("browser") / "home"
    world = build_world(home, tmp_path_factory.mktemp("browser-input"))
    port = free_port()
    env = {**subprocess_env_module, "RPACS_HOME": str(home)}
    with running(["serve", "--port", str(port), "--workers", "2"], env, port,
                 home.parent / "serve.log") as url:
        yield url, world
    world.inst.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    _ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    problems: list[str] = []
    # A script or style the CSP blocks shows up here: the pages must have none inline.
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    yield page
    context.close()


def _login(page, url: str, name: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{url}/projects")
    assert "/login" in page.url
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{url}/projects")


def test_review_in_the_browser(server, page):  # type: ignore[no-untyped-def]
    url, _world = server
    _login(page, url, "dana")
    projects = page.locator("#projects")
    assert projects.get_by_role("link", name="ALPHA").is_visible()
    assert projects.get_by_text("BRAVO").count() == 0  # only one's own projects
    page.get_by_role("link", name="ALPHA").click()
    page.get_by_role("navigation", name="Project ALPHA").get_by_role("link",
                                                                      name="Review").click()
    # Filter the review table: one keyword, all tags.
    page.get_by_label("Keyword or tag").fill("PatientID")
    page.get_by_label("Show", exact=True).select_option("all")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#review tr.tag-row")
    assert rows.count() == 2  # PatientID, PatientIdentityRemoved
    assert "2 tag paths shown" in page.get_by_role("status").inner_text()
    # Expand a value: the values, their counts and the series carrying them.
    expand = page.get_by_role("button", name="(0010,0020): show the values of PatientID",
                              exact=True)
    expand.click()
    assert expand.get_attribute("aria-expanded") == "true"
    values = page.locator("tr.values-row:not([hidden])")
    values.get_by_role("link", name="TP-0002 followup #1 MR t1_mprage_sag").wait_for()
    assert "TP-0001" in values.inner_text() and "#1 MR t1_mprage_sag" in values.inner_text()
    # Mark it checked: it leaves the "new" view and shows who checked it in "all".
    page.get_by_label("Mark PatientID as checked", exact=True).check()
    page.get_by_role("button", name="Mark selected as checked").click()
    page.wait_for_load_state()
    row = page.locator("#review tr.tag-row", has_text="(0010,0020)")
    assert "dana" in row.inner_text()
    page.get_by_label("Show", exact=True).select_option("new")
    page.get_by_role("button", name="Filter").click()
    assert page.locator("#review tr.tag-row", has_text="(0010,0020)").count() == 0
    assert page.problems == []


def test_a_member_cannot_reach_what_the_role_forbids(server, page):  # type: ignore[no-untyped-def]
    url, _world = server
    _login(page, url, "mike")
    page.goto(f"{url}/projects/ALPHA")
    nav = page.get_by_role("navigation", name="Project ALPHA")
    assert nav.get_by_role("link", name="Review").is_visible()
    assert nav.get_by_role("link", name="Members").count() == 0
    assert nav.get_by_role("link", name="Audit log").count() == 0
    assert page.goto(f"{url}/projects/ALPHA/audit").status == 403
    assert page.goto(f"{url}/projects/ALPHA/members").status == 403
    assert page.goto(f"{url}/projects/BRAVO").status == 404
    assert page.goto(f"{url}/audit").status == 403
    assert page.get_by_role("alert").is_visible()
    # The browser reports each refused page as a failed load: expected here, so cleared.
    assert all("Failed to load resource" in p for p in page.problems)
    page.problems.clear()
    # Thumbnails load from the series list (the browser follows the same authorization).
    page.goto(f"{url}/projects/ALPHA/series")
    first = page.locator("img.thumb").first
    first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=first.element_handle())
    assert page.problems == []


def test_an_export_in_the_browser(server, page, tmp_path):  # type: ignore[no-untyped-def]
    url, _world = server
    _login(page, url, "dana")
    page.goto(f"{url}/projects/ALPHA")
    page.get_by_role("navigation", name="Project ALPHA").get_by_role("link",
                                                                      name="Export").click()
    # A stored spec with a mistake: the engine's messages, in place, the text kept.
    editor = page.get_by_label("Spec (YAML", exact=False)
    editor.fill("name: mine\ndates: sometimes\n")
    page.get_by_role("button", name="Save spec").click()
    alert = page.get_by_role("alert")
    assert "dates:" in alert.inner_text()
    assert editor.input_value() == "name: mine\ndates: sometimes\n"
    assert page.problems == ["Failed to load resource: the server responded with a status "
                             "of 422 (Unprocessable Entity)"]  # the refused save itself
    page.problems.clear()
    # Choose a built-in spec, see the dry run, start it.
    page.get_by_label("Spec", exact=True).select_option("research-package")
    page.get_by_role("button", name="See the dry run").click()
    assert "2 participant(s), 3 series, 8 instance(s)" in page.locator(
        "#plan-summary").inner_text()
    page.get_by_role("button", name="Start the export").click()
    page.wait_for_url(f"{url}/exports/*")
    assert page.get_by_label("Progress").is_visible()
    # The page follows the job and shows the download once it is done.
    download_link = page.get_by_role("link", name="Download the package", exact=False)
    download_link.wait_for(timeout=180_000)
    assert page.locator("#export-state").inner_text() == "done"
    assert page.get_by_label("Progress").get_attribute("value") == "100"
    with page.expect_download() as info:
        download_link.click()
    saved = tmp_path / "export.zip"
    info.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        manifest = archive.read("research-package/manifest.csv").decode().splitlines()
        assert {"research-package/TP-0001.zip", "research-package/TP-0002.zip"} <= set(
            archive.namelist())
    assert manifest[0].startswith("path,") and len(manifest) == 9
    assert sum(1 for row in manifest[1:] if row.startswith("TP-0001/")) == 6
    # The past exports list who ran it.
    page.goto(f"{url}/projects/ALPHA/exports")
    assert "dana" in page.locator("#exports tbody tr").first.inner_text()
    assert page.problems == []


def test_a_member_sees_no_export(server, page):  # type: ignore[no-untyped-def]
    url, world = server
    _login(page, url, "mike")
    page.goto(f"{url}/projects/ALPHA")
    nav = page.get_by_role("navigation", name="Project ALPHA")
    assert nav.get_by_role("link", name="Review").is_visible()
    assert nav.get_by_role("link", name="Export").count() == 0
    assert page.get_by_role("button", name="Start the export").count() == 0
    assert page.goto(f"{url}/projects/ALPHA/exports").status == 403
    assert page.goto(f"{url}/projects/ALPHA/exports/plan?spec=research-package").status == 403
    job = failed_export(world, "name: nothing\n")
    assert page.goto(f"{url}/exports/{job}").status == 403
    assert page.goto(f"{url}/api/exports/{job}/download").status == 403
    assert page.goto(f"{url}/projects/BRAVO/exports").status == 404
