"""The inbox in a real headless Chromium against ``serve()`` running in its own process:
sign in through the printed link, see a waiting gate, see a second one appear live
(without a reload), be refused an approval without a choice, pick one radio option,
approve, see the run complete with that choice.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); the test
FAILS when they are missing — it never skips.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SERVE_MAIN = Path(__file__).with_name("_serve_main.py")
SHIP = """
workflow ship {
  inputs { ticket required }
  gate human_approval {
    prompt = "Ship {{ticket}}?"  options = ["ship", "hold"]  select = one  timeout = "1h"
  }
  if human_approval.ship { call deploy }
}
"""


class Server:
    """``serve()`` in a subprocess; its printed sign-in link and token."""

    def __init__(self, tmp_path: Path, flows: dict[str, str] | None = None) -> None:
        """Serve ``ship.wf`` and the ``flows`` given (file name -> text)."""
        folder = tmp_path / "flows"
        folder.mkdir()
        (folder / "ship.wf").write_text(SHIP)
        for name, text in (flows or {}).items():
            (folder / name).write_text(text)
        env = {k: v for k, v in os.environ.items() if k != "RUNKON_TOKEN"}
        self.process = subprocess.Popen(
            [sys.executable, str(SERVE_MAIN), str(tmp_path / "runs.db"), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.output: list[str] = []
        found = threading.Event()
        stdout = self.process.stdout
        assert stdout is not None

        def read() -> None:
            for line in stdout:
                self.output.append(line)
                if "inbox: " in line:
                    found.set()

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not found.wait(20):
            self.stop()
            pytest.fail("serve() printed no inbox link:\n" + "".join(self.output))
        link = re.search(r"inbox: (http://\S+/inbox/sign-in\?token=(\S+))", "".join(self.output))
        assert link is not None, self.output
        self.sign_in_link, self.token = link.group(1), link.group(2)
        self.base = self.sign_in_link.split("/inbox/")[0]
        self.api = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {self.token}"}, timeout=10
        )

    def start_run(self, ticket: str, workflow: str = "ship") -> str:
        """Start a run over the API and wait until its gate is waiting."""
        answer = self.api.post(
            "/api/runs", json={"workflow": workflow, "inputs": {"ticket": ticket}}
        )
        assert answer.status_code == 201, answer.text
        run_id: str = answer.json()["run_id"]
        deadline = time.monotonic() + 10
        while not self.api.get("/api/gates", params={"run_id": run_id}).json():
            assert time.monotonic() < deadline, "the gate never opened"
            time.sleep(0.05)
        return run_id

    def stop(self) -> int:
        if hasattr(self, "api"):
            self.api.close()
        self.process.terminate()
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self.reader.join(5)
            assert self.process.stdout is not None
            self.process.stdout.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path)
    try:
        yield running
    finally:
        assert running.stop() == 0, "".join(running.output)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install chromium)"
    assert CHROMEDRIVER.exists(), "install Debian's chromium-driver"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def gate_card(driver: WebDriver, run_id: str, *, timeout: float = 10) -> WebElement:
    found: list[WebElement] = WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, f'article.gate[data-run="{run_id}"]')
    )
    return found[0]


def test_sign_in_see_gates_arrive_live_approve_and_see_the_run_complete(
    server: Server, browser: WebDriver
) -> None:
    first = server.start_run("T-1")

    browser.get(server.sign_in_link)  # a page with one button: GET never signs in
    assert browser.get_cookies() == []
    browser.find_element(By.ID, "sign-in").click()
    WebDriverWait(browser, 10).until(lambda d: d.current_url == f"{server.base}/inbox")
    card = gate_card(browser, first)
    assert "Ship T-1?" in card.text
    assert "0/1" in card.text
    assert "signed in as" in browser.find_element(By.TAG_NAME, "header").text

    # live: a gate opened after the page loaded appears without a reload
    WebDriverWait(browser, 10).until(
        lambda d: "on" in (d.find_element(By.ID, "live").get_attribute("class") or "")
    )
    browser.execute_script("window.loadedOnce = true")
    second = server.start_run("T-2")
    assert "Ship T-2?" in gate_card(browser, second).text
    assert browser.execute_script("return window.loadedOnce") is True

    # approving with no option chosen is refused, with the options named (issue 10.1)
    card = gate_card(browser, first)
    assert not card.find_elements(By.CSS_SELECTOR, 'button[value="feedback"]')
    card.find_element(By.CSS_SELECTOR, 'button[value="approve"]').click()
    refused = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".notice.error")
    )[0]
    assert "needs a choice: tick one of: ship, hold" in refused.text
    assert server.api.get(f"/api/runs/{first}").json()["status"] == "waiting"

    # select = one: radio buttons, so picking "ship" after "hold" leaves only "ship"
    card = gate_card(browser, first)
    hold = card.find_element(By.CSS_SELECTOR, 'input[name="selections"][value="hold"]')
    ship = card.find_element(By.CSS_SELECTOR, 'input[name="selections"][value="ship"]')
    assert ship.get_attribute("type") == "radio"
    hold.click()
    ship.click()
    assert ship.is_selected()
    assert not hold.is_selected()
    card.find_element(By.CSS_SELECTOR, 'button[value="approve"]').click()
    notice = WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, ".notice.ok")
    )[0]
    assert "Approved gate" in notice.text
    assert "accepted" in notice.text

    # the page shows the run completed (live, if it finished after the page rendered)
    WebDriverWait(browser, 10).until(
        lambda d: d.find_elements(
            By.CSS_SELECTOR, f'tr[data-run="{first}"][data-status="completed"]'
        )
    )
    assert not browser.find_elements(By.CSS_SELECTOR, f'article.gate[data-run="{first}"]')
    assert browser.find_elements(By.CSS_SELECTOR, f'article.gate[data-run="{second}"]')
    run = server.api.get(f"/api/runs/{first}").json()
    assert run["status"] == "completed"
    assert [(s["name"], s["status"]) for s in run["steps"]] == [
        ("human_approval", "completed"),
        ("deploy", "completed"),  # the run went on with the choice: `if human_approval.ship`
    ]
    assert run["steps"][0]["gate"]["selections"] == ["ship"]  # the choice, and only it

    # the server stops although the page's live stream is still open (uvicorn would wait
    # for the stream forever; stop() gives it 15 s); no timing threshold: the machine is shared
    assert server.stop() == 0


# Step output is hostile input: it must render as text, never as markup or script.
HOSTILE_CONTEXT = '<script>window.pwned = "script"</script><img src=x onerror="window.pwned=1">'
HOSTILE_MARKER = '"><img src=x onerror="window.pwned=2">'
HOSTILE_TICKET = '<img src=x onerror="window.pwned=3">'
LEAKY = """
workflow leaky {
  inputs { ticket required }
  script inspect { run = "cat OUTPUT" }
  gate human_approval {
    prompt = "Ship {{ticket}}?"  options = ["ship", "hold"]  timeout = "1h"
  }
  if human_approval.ship { call deploy }
}
"""


def flow_output(markers: list[str], context: str) -> str:
    body = json.dumps({"markers": markers, "context": context})
    return f"<<<FLOW_OUTPUT>>>\n{body}\n<<<END_FLOW_OUTPUT>>>\n"


def step_entry(driver: WebDriver, name: str, status: str, *, timeout: float = 10) -> WebElement:
    selector = f'#run li.step[data-name="{name}"][data-status="{status}"]'
    found: list[WebElement] = WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, selector)
    )
    return found[0]


def test_the_run_page_opens_from_a_gate_card_and_follows_the_run_live(
    tmp_path: Path, browser: WebDriver
) -> None:
    output = tmp_path / "inspect-output.txt"
    output.write_text(flow_output(["has_issues", HOSTILE_MARKER], HOSTILE_CONTEXT))
    server = Server(tmp_path, {"leaky.wf": LEAKY.replace("OUTPUT", str(output))})
    try:
        run_id = server.start_run(HOSTILE_TICKET, workflow="leaky")
        browser.get(server.sign_in_link)
        browser.find_element(By.ID, "sign-in").click()
        WebDriverWait(browser, 10).until(lambda d: d.current_url == f"{server.base}/inbox")

        # the gate card links to the run page
        gate_card(browser, run_id).find_element(By.CSS_SELECTOR, "a.run-link").click()
        run_page = f"{server.base}/inbox/runs/{run_id}"
        WebDriverWait(browser, 10).until(lambda d: d.current_url == run_page)
        WebDriverWait(browser, 10).until(
            lambda d: "on" in (d.find_element(By.ID, "live").get_attribute("class") or "")
        )
        browser.execute_script("window.stayed = true")  # gone if the page reloads
        who = browser.find_element(By.CSS_SELECTOR, "header strong").text

        inspect = step_entry(browser, "inspect", "completed")
        assert HOSTILE_CONTEXT in inspect.text  # shown as text
        assert "has_issues" in inspect.text
        assert HOSTILE_MARKER in inspect.text
        gate = step_entry(browser, "human_approval", "waiting")
        assert f"Ship {HOSTILE_TICKET}?" in gate.text
        assert "Waiting for a decision: 0/1 approvals" in gate.text
        assert browser.find_elements(By.CSS_SELECTOR, '#run li.step[data-name="deploy"]') == []
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
        assert browser.execute_script("return window.pwned") is None
        inspect.find_element(By.CSS_SELECTOR, 'details[data-key$=":logs"] summary').click()
        assert HOSTILE_CONTEXT.replace('"', '\\"') in inspect.text  # stdout, as text

        # decide the gate in the inbox, in a second tab
        run_tab = browser.current_window_handle
        browser.switch_to.new_window("tab")
        browser.get(f"{server.base}/inbox")
        card = gate_card(browser, run_id)
        card.find_element(By.CSS_SELECTOR, 'input[name="selections"][value="ship"]').click()
        card.find_element(By.CSS_SELECTOR, 'button[value="approve"]').click()
        WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".notice.ok"))
        browser.close()
        browser.switch_to.window(run_tab)

        # the run page followed, without a reload, to the run's end
        WebDriverWait(browser, 10).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, '#run[data-status="completed"]')
        )
        gate = step_entry(browser, "human_approval", "completed")
        assert "Decision\napproved" in gate.text
        assert f"By\n{who}" in gate.text  # the signed-in operator
        assert "Selections\nship" in gate.text
        assert "deploy done" in step_entry(browser, "deploy", "completed").text
        WebDriverWait(browser, 10).until(
            lambda d: d.find_element(By.ID, "live").text == "run finished"
        )
        assert browser.execute_script("return window.stayed") is True
        unfolded = step_entry(browser, "inspect", "completed")  # what the user opened stays open
        assert unfolded.find_element(By.CSS_SELECTOR, 'details[data-key$=":logs"][open]')
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main script") == []
        assert browser.execute_script("return window.pwned") is None
    finally:
        assert server.stop() == 0, "".join(server.output)
