"""``python -m bench.console``: what open console tabs cost a worker under load.

One worker (RocksDB, the shipped settings) takes payments offered at ``--rate`` while the
number of console tabs open on it (headless chromium, signed in as a viewer, each polling
``/console/state`` once a second) alternates between 0 and ``--tabs``, phase after phase, so
each figure has a neighbour in the same run to compare with. Per phase: the worker's CPU and
the payments it finished per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from playwright.async_api import async_playwright

from bench.run import _cpu_seconds, funded_workers, machine
from kpay_faust import loadgen


def browser_cpu() -> float:
    """CPU seconds of every chromium process (the tabs' own cost, on the same two cores)."""
    found = subprocess.run(["pgrep", "chromium"], capture_output=True, text=True, check=False)
    total = 0.0
    for pid in found.stdout.split():
        with contextlib.suppress(OSError, ValueError):
            total += _cpu_seconds(int(pid))
    return total


async def open_tabs(browser, url: str, token: str, count: int) -> list:
    pages = []
    for _ in range(count):
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(url + "/")
        await page.fill("#token", token)
        await page.click("#signin button[type=submit]")
        await page.wait_for_selector("#pipeline:not([hidden])")
        pages.append(page)
    return pages


async def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.console")
    parser.add_argument("--broker", default="127.0.0.1:9092")
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--tabs", type=int, default=10)
    parser.add_argument("--phase", type=float, default=20.0, help="seconds per phase")
    parser.add_argument("--phases", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    chromium = os.environ.get("KPAY_CHROMIUM") or shutil.which("chromium")
    tmp = Path(tempfile.mkdtemp(prefix="kpay-bench-console."))
    phases = []
    async with funded_workers(args.broker, 1, tmp, "cons") as (cluster, producer, reader, names):
        pid, url = cluster.processes[0].pid, f"http://127.0.0.1:{cluster.ports[0]}"
        make = loadgen.PaymentMaker(names, "50.00", prefix="c-", rng=random.Random(3))
        offering = asyncio.create_task(
            loadgen.offer_at_rate(
                loadgen.sender(producer),
                f"{cluster.tag}.payments.incoming",
                make,
                args.rate,
                0,  # until cancelled
                reader.watch,
            )
        )
        async with async_playwright() as driver:
            browser = await driver.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            await asyncio.sleep(args.phase / 2)  # warm-up
            for index in range(args.phases):
                tabs = args.tabs if index % 2 else 0
                pages = await open_tabs(browser, url, cluster.token, tabs)
                await asyncio.sleep(5)  # the tabs settle; a backlog from opening them clears
                cpu0, done0, t0 = _cpu_seconds(pid), len(reader.latencies_ms), time.monotonic()
                browser0 = browser_cpu()
                await asyncio.sleep(args.phase)
                window = time.monotonic() - t0
                browser_percent = round(100 * (browser_cpu() - browser0) / window, 1)
                phases.append(
                    {
                        "tabs": tabs,
                        "worker_cpu_percent": round(100 * (_cpu_seconds(pid) - cpu0) / window, 1),
                        "finished_per_second": round(
                            (len(reader.latencies_ms) - done0) / window, 1
                        ),
                        "browser_cpu_percent": browser_percent,
                    }
                )
                print(json.dumps(phases[-1]), flush=True)
                for page in pages:
                    await page.close()
            await browser.close()
        offering.cancel()
    shutil.rmtree(tmp, ignore_errors=True)
    result = {"machine": machine(), "rate": args.rate, "phases": phases}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    asyncio.run(main())
