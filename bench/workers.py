"""Candidates that each live in a process of their own, driven one call at a time from the parent.

A real training run has one model, one optimizer and one allocator per process; several large models in one process
slow the ones that allocate most (glibc hands every tensor over 32 MB a fresh ``mmap`` whose pages fault on first
touch). So each candidate is built in a spawned worker by ``build(name, settings)`` (a top-level function of the
bench, so the child can import it), which returns a callable (one timed unit of work, e.g. a training step) with an
optional ``figures()`` method. A :class:`Worker` is itself a callable, so ``timing.interleaved_times`` drives workers
as it drives in-process candidates; ``finish()`` collects the figures and the worker's peak RSS.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections.abc import Callable
from pathlib import Path

import torch


def status_kb(field: str) -> int:
    """A kB figure of /proc/self/status: VmRSS (now) or VmHWM (this process's peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status (this measurement needs Linux).")


def serve(build: Callable[[str, dict], Callable[[], object]], name: str, settings: dict, connection) -> None:
    """A worker: build one candidate, then run it once per "run" message until "figures" (its figures, memory)."""
    torch.set_num_threads(settings.pop("threads"))
    try:
        candidate = build(name, settings)
    except Exception:  # the parent raises it: a worker that died silently would leave it waiting
        connection.send(("error", f"building {name!r} failed:\n{traceback.format_exc()}"))
        return
    start_kb = status_kb("VmRSS")
    connection.send("ready")
    while connection.recv() == "run":
        candidate()
        connection.send("done")
    figures = candidate.figures() if hasattr(candidate, "figures") else {}
    connection.send({**figures, "peak_kb": status_kb("VmHWM"), "start_kb": start_kb})


class Worker:
    """The parent's handle on one candidate's process; calling it runs the candidate once there and waits."""

    def __init__(self, build: Callable[[str, dict], Callable[[], object]], name: str, settings: dict):
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: its own allocator and peak RSS
        self.connection, theirs = context.Pipe()
        settings = dict(settings) | {"threads": torch.get_num_threads()}
        self.process = context.Process(target=serve, args=(build, name, settings, theirs), daemon=True)
        self.process.start()
        self._expect("ready")

    def _reply(self):
        for _ in range(3600):
            if self.connection.poll(1):
                return self.connection.recv()
            if not self.process.is_alive():
                raise RuntimeError(f"worker {self.process.pid} died (exit code {self.process.exitcode})")
        raise RuntimeError(f"worker {self.process.pid} sent nothing for an hour")

    def _expect(self, message: str) -> None:
        reply = self._reply()
        if isinstance(reply, tuple) and reply[0] == "error":
            raise RuntimeError(f"worker {self.process.pid}: {reply[1]}")
        if reply != message:
            raise RuntimeError(f"worker {self.process.pid} replied {reply!r}, expected {message!r}")

    def __call__(self) -> None:
        self.connection.send("run")
        self._expect("done")

    def finish(self) -> dict:
        self.connection.send("figures")
        figures = self._reply()
        self.process.join()
        return figures
