"""Rendering credit reports to PDF (WeasyPrint, a Jinja2 template, the CJK font Debian's
fonts-wqy-zenhei installs) in a bounded pool of processes, off the event loop.

A Chinese page takes WeasyPrint most of a second of CPU: in the service's event loop it would
stop every other request for that long. The pool has `report_workers` processes and takes at
most `report_queue_max` reports waiting beyond them; more is `Saturated` (503 with
Retry-After), and a render past `report_render_timeout_s` too, never a hung request."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).with_name("templates")
SUBJECT_TYPE_NAMES = {"enterprise": "企业", "individual": "个人", "institution": "事业单位",
                      "social_org": "社会组织", "government": "政府机构"}

_env: jinja2.Environment | None = None


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                                  autoescape=True)
        _env.globals["subject_type_names"] = SUBJECT_TYPE_NAMES
    return _env


def html_of(content: dict[str, Any]) -> str:
    """The report's HTML, its QR code (segno, the verify URL) inlined as SVG."""
    import segno

    qr = segno.make(content["verify_url"], error="m").svg_data_uri(scale=4, border=2)
    return _environment().get_template("report.html").render(**content, qr=qr)


def render_pdf(content: dict[str, Any]) -> bytes:
    """The PDF bytes of one report. Runs in a pool process."""
    import weasyprint

    pdf: bytes = weasyprint.HTML(string=html_of(content),
                                 base_url=str(TEMPLATES)).write_pdf()
    return pdf


def _warm(parent: int) -> None:
    """Each pool process loads WeasyPrint and the font configuration once, at its start, so
    that the first report is not the one that pays for it; and ends when the service does,
    even when it was killed (SIGKILL runs no cleanup, and a worker waiting for work would
    wait forever: measured, they stayed)."""
    import weasyprint

    def orphaned() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()

    weasyprint.HTML(string='<html lang="zh-CN"><body>信用</body></html>').write_pdf()


class Saturated(Exception):
    """Every rendering process is busy and the queue is full, or a render took too long."""


class Renderer:
    def __init__(self, workers: int, queue_max: int, timeout_s: float) -> None:
        self.workers = max(1, workers)
        self.slots = self.workers + max(0, queue_max)
        self.timeout_s = timeout_s
        self.in_flight = 0
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the service's process has an event loop, sockets and threads
            # that a forked child must not inherit.
            self._pool = ProcessPoolExecutor(self.workers,
                                             mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_warm,
                                             initargs=(os.getpid(),))
        return self._pool

    def start(self) -> None:
        """Start the processes (and their warm-up) before the first report."""
        pool = self._executor()
        for _ in range(self.workers):
            pool.submit(int)

    async def render(self, content: dict[str, Any]) -> bytes:
        if self.in_flight >= self.slots:
            raise Saturated(f"{self.in_flight} reports rendering or waiting")
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._executor(), render_pdf, content)
            return await asyncio.wait_for(future, self.timeout_s)
        except TimeoutError as exc:
            raise Saturated(f"a report took more than {self.timeout_s} s") from exc
        except BrokenProcessPool as exc:
            # A process died (killed, out of memory): the next report gets a new pool.
            self.close()
            raise Saturated("the rendering processes stopped") from exc
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
