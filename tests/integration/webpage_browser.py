"""Drives the topology page in headless Chromium (Selenium); run inside a lab host's namespace.

argv: URL SCREENSHOT NEW_CONTAINER FROM TO [NETWORK [DOCKER_HOST]]: NEW_CONTAINER is run on
NETWORK (default ``front``) by the daemon at DOCKER_HOST (default: the environment's). Prints
one JSON line: the container and network names the graph shows (and its hosts and tunnels),
the first load's time, the seconds from ``docker run NEW_CONTAINER`` returning to its node on
the page, the path view's text for FROM -> TO, the details panel's
text after clicking FROM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait


def main() -> None:
    url, shot, new, src, dst = sys.argv[1:6]
    net = sys.argv[6] if len(sys.argv) > 6 else "front"
    env = dict(os.environ)
    if len(sys.argv) > 7:
        env["DOCKER_HOST"] = sys.argv[7]
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    try:
        out = run(driver, url, shot, new, src, dst, net, env)
    finally:
        driver.quit()
    print(json.dumps(out))


def labels(driver: Any, kind: str) -> list[str]:
    names: list[str] = driver.execute_script(
        "return window.cy.nodes().filter(n => n.data('kind') === arguments[0])"
        ".map(n => n.data('name'))", kind)  # fmt: skip
    return names


def run(
    driver: Any, url: str, shot: str, new: str, src: str, dst: str, net: str, env: dict[str, str]
) -> dict[str, Any]:
    started = time.monotonic()
    driver.get(url)
    wait = WebDriverWait(driver, 20, poll_frequency=0.05)
    loaded = "return window.tetherState && window.tetherState.updates"
    wait.until(lambda d: d.execute_script(loaded) >= 1)
    first_load = (time.monotonic() - started) * 1000
    out: dict[str, Any] = {"first_load_ms": first_load,
                           "containers": labels(driver, "container"),
                           "networks": labels(driver, "network")}  # fmt: skip
    subprocess.run(["docker", "run", "-d", "--name", new, "--network", net, "alpine",
                    "sleep", "600"], check=True, capture_output=True, env=env)  # fmt: skip
    ran = time.monotonic()
    wait.until(lambda d: new in labels(d, "container"))
    out["appeared_s"] = time.monotonic() - ran
    Select(driver.find_element(By.ID, "from")).select_by_visible_text(src)
    Select(driver.find_element(By.ID, "to")).select_by_visible_text(dst)
    driver.find_element(By.ID, "trace").click()
    wait.until(lambda d: d.find_element(By.ID, "path").text.strip() != "")
    out["path_text"] = driver.find_element(By.ID, "path").text
    driver.execute_script("window.cy.getElementById('c:' + arguments[0]).emit('tap')", src)
    out["hosts"] = driver.execute_script(
        "return window.cy.nodes('.host').map(n => n.id().slice(5))")  # fmt: skip
    out["tunnels"] = driver.execute_script("return window.cy.edges('.tunnel').length")
    out["details"] = driver.find_element(By.ID, "details").text
    driver.save_screenshot(shot)
    return out


if __name__ == "__main__":
    main()
