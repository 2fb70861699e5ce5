"""What the topology page costs with 200 containers (issue 19): first load, one update, CPU.

    sudo PYTHONPATH=src .venv/bin/python bench/topology_cost.py [-n 200] [--batches 4] [--idle 30]

Brings up a one-host lab (its own name, removed at the end whatever happens) whose daemon
listens on ``web-addr`` 127.0.0.1:9323 in the host's namespace, runs ``-n`` containers
(``docker run -d --network bench alpine sleep 1d``, in ``--batches`` parallel batches), then
drives the page in headless Chromium (Selenium, the driver setup of
tests/integration/webpage_browser.py) inside the lab host and measures

- first load: ms from ``driver.get`` until every container name is an ``<option>`` of the path
  pickers (they are filled at the end of a render, after the graph's layout),
- update: ms from one more ``docker run -d`` returning until its name is there,
- the daemon's CPU (utime+stime from /proc/PID/stat) over ``--idle`` s with the page open and
  idle, then over as long with the browser closed, in % of one core.

Prints a Markdown table. Needs root, chromium and chromium-driver (Debian).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
URL = "http://127.0.0.1:9323"
OPTIONS = "return Array.from(document.querySelectorAll('#from option')).map(o => o.text)"


def cpu_ticks(pid: int) -> int:
    """utime + stime of ``pid`` in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def cpu_percent(pid: int, seconds: float) -> float:
    t0, c0 = time.monotonic(), cpu_ticks(pid)
    time.sleep(seconds)
    used = (cpu_ticks(pid) - c0) / os.sysconf("SC_CLK_TCK")
    return 100.0 * used / (time.monotonic() - t0)


# ---------------------------------------------------------------- in the lab host (browser)


def browser(names: list[str], new: str, pid: int, idle: float) -> dict[str, Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    out: dict[str, Any] = {}
    try:
        wait = WebDriverWait(driver, 120, poll_frequency=0.02)
        want = set(names)
        t0 = time.monotonic()
        driver.get(URL)
        try:
            wait.until(lambda d: want <= set(d.execute_script(OPTIONS)))
        except Exception as err:
            seen = driver.execute_script(OPTIONS)
            state = driver.execute_script(
                "const s = window.tetherState || {}; return [s.updates, s.renderMs,"
                " document.getElementById('status').textContent]")  # fmt: skip
            logs = driver.get_log("browser")
            raise SystemExit(
                f"page: {len(seen)} options, state {state}, console {logs[-5:]}"
            ) from err
        out["first_load_ms"] = (time.monotonic() - t0) * 1000
        out["first_render_ms"] = driver.execute_script("return window.tetherState.renderMs")
        time.sleep(2)  # let the page settle (events from the fill are long past)
        subprocess.run(["docker", "run", "-d", "--name", new, "--network", "bench", "alpine",
                        "sleep", "1d"], check=True, capture_output=True)  # fmt: skip
        t1 = time.monotonic()
        wait.until(lambda d: new in d.execute_script(OPTIONS))
        out["update_ms"] = (time.monotonic() - t1) * 1000
        out["update_render_ms"] = driver.execute_script("return window.tetherState.renderMs")
        time.sleep(2)
        out["cpu_open_pct"] = cpu_percent(pid, idle)
    finally:
        driver.quit()
    time.sleep(2)
    out["cpu_closed_pct"] = cpu_percent(pid, idle)
    return out


# ---------------------------------------------------------------- the lab


def fill(env: dict[str, str], names: list[str], batches: int) -> None:
    errors: list[str] = []

    def batch(part: list[str]) -> None:
        for n in part:
            r = subprocess.run(["docker", "run", "-d", "--name", n, "--network", "bench",
                                "alpine", "sleep", "1d"], env=env, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
            if r.returncode != 0:
                errors.append(f"{n}: {r.stderr.strip()}")

    threads = [threading.Thread(target=batch, args=(names[i::batches],)) for i in range(batches)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"docker run failed ({len(errors)}): {errors[0]}")


def measure(a: argparse.Namespace, lab_name: str, tar: str) -> dict[str, Any]:
    from tether.lab.lab import Lab

    lab = Lab.up(lab_name, ["host1"], daemons=True)
    h = lab.host("host1")
    cfg = Path(h.config_file)
    conf = json.loads(cfg.read_text()) if cfg.is_file() else {}
    cfg.write_text(json.dumps({**conf, "web-addr": URL.removeprefix("http://")}))
    lab.stop_daemon(h.name)
    lab.start_daemon(h.name)
    env = h.docker_env(os.environ)

    def docker(*args: str) -> None:
        subprocess.run(["docker", *args], env=env, check=True, capture_output=True, timeout=120)

    docker("import", "-c", 'CMD ["/bin/sh"]', tar, "alpine:latest")
    docker("network", "create", "bench")
    names = [f"c{i:03d}" for i in range(a.n)]
    t0 = time.monotonic()
    fill(env, names, a.batches)
    fill_s = time.monotonic() - t0
    pid = h.daemon_pid
    assert pid is not None
    arg = json.dumps({"names": names, "new": "late", "pid": pid, "idle": a.idle})
    r = h.run([sys.executable, __file__, "--browser", arg], env=env, capture_output=True,
              text=True, timeout=600)  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"browser failed: {r.stderr[-2000:]}")
    out: dict[str, Any] = json.loads(r.stdout.strip().splitlines()[-1])
    out["fill_s"] = fill_s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--batches", type=int, default=4)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds per CPU window")
    ap.add_argument("--browser", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.browser:
        b = json.loads(a.browser)
        print(json.dumps(browser(b["names"], b["new"], b["pid"], b["idle"])))
        return
    if os.geteuid() != 0:
        raise SystemExit("topology_cost needs root (a lab)")
    from tether.lab.lab import Lab

    tmp = tempfile.mkdtemp(prefix="tether-topocost-")
    tar = os.path.join(tmp, "busybox.tar")
    subprocess.run(["sh", str(ROOT / "scripts" / "build-busybox-image.sh"), tar], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    name = "tc" + secrets.token_hex(3)
    try:
        out = measure(a, name, tar)
    finally:
        try:
            Lab.destroy(name)
        finally:
            subprocess.run(["rm", "-rf", tmp], check=False)
    print(f"{a.n} containers started in {out['fill_s']:.0f} s ({a.batches} parallel batches)")
    print("| topology page, one lab host | value |")
    print("|---|---:|")
    print(f"| {a.n} containers: first load, until every name is on the page (ms) | "
          f"{out['first_load_ms']:.0f} |")  # fmt: skip
    print(f"| of which the page's render (layout + DOM, ms) | {out['first_render_ms']:.0f} |")
    print(f"| one update: `docker run -d` returned -> its name on the page (ms) | "
          f"{out['update_ms']:.0f} |")  # fmt: skip
    print(f"| of which the page's render (ms) | {out['update_render_ms']:.0f} |")
    print(f"| daemon CPU, page open and idle ({a.idle:.0f} s, % of one core) | "
          f"{out['cpu_open_pct']:.2f} |")  # fmt: skip
    print(f"| daemon CPU, page closed ({a.idle:.0f} s, % of one core) | "
          f"{out['cpu_closed_pct']:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
