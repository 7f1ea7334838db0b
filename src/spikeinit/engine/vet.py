"""Run a kernel first where it cannot take the user's process down.

Under ``auto`` the engine may time, and then use, a kernel the user never asked for: a
channels-last convolution, oneDNN's matmul. Upstream bugs in such kernels abort the process or
corrupt its memory (:mod:`spikeinit.engine.hazards` lists the known ones). So before a candidate
of a new shape class is run in this process, it is run in a child process: the exact
operation, forward and (in training) backward, :data:`RUNS` times, and compared with the
default kernel's result. Only if the child answers, with matching numbers, is the candidate
timed and used here. A child that dies (an abort, a segfault), hangs past
:data:`TIMEOUT_S`, or cannot be started leaves the default kernel in place.

The verdict is kept per machine with the other choices (:mod:`spikeinit.engine.tuning`,
section ``"vetted"``): a class is vetted once per machine. The child is started on the first
request of a process and then serves the process's later requests (docs/engine.md gives the
cost); it imports torch only.

Example:
    >>> request = conv_request(nn.Conv2d(16, 16, 3, padding=1), (2, 16, 8, 8), "infer")
    >>> request["kind"], request["frames"]
    ('conv', [2, 16, 8, 8])
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
from typing import Any

import torch
from torch import nn

from spikeinit.engine import tuning

RUNS = 5
"""How many times the child runs a candidate (a corrupting kernel may abort only on a later
run, as oneDNN issue #6035 does)."""

TIMEOUT_S = 120.0
"""A child that has not answered a request by then is killed, and the candidate rejected."""

_CHILD = r"""
import json, os, sys
import torch
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def conv(r):
    dtype = DTYPES[r["dtype"]]
    x = torch.randn(*r["frames"], dtype=dtype)
    w = torch.randn(r["out"], r["in"] // r["groups"], *r["kernel"], dtype=dtype)
    b = torch.randn(r["out"], dtype=dtype) if r["bias"] else None
    results = {}
    for layout in ("contiguous", "channels_last"):
        fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        xs = x.contiguous(memory_format=fmt).detach().requires_grad_(r["mode"] == "train+input")
        ws = w.detach().requires_grad_(r["mode"] != "infer")
        runs = r["runs"] if layout == "channels_last" else 1
        for _ in range(runs):
            y = F.conv2d(xs, ws, b, r["stride"], r["padding"], r["dilation"], r["groups"])
            out = [y.detach()]
            if r["mode"] != "infer":
                wrt = [ws, xs] if r["mode"] == "train+input" else [ws]
                out += [g.detach() for g in torch.autograd.grad(y, wrt, torch.ones_like(y))]
        results[layout] = out
    return all(torch.allclose(a, c, rtol=1e-3, atol=1e-3 * max(1.0, float(c.abs().max())))
               for a, c in zip(results["channels_last"], results["contiguous"]))


def linear(r):
    a = torch.randn(r["m"], r["k"])
    b = torch.randn(r["n"], r["k"])
    if r["a"] == "c":
        a = a.t().contiguous().t()
    if r["b"] == "c":
        b = b.t().contiguous().t()
    for _ in range(r["runs"]):
        got = torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    want = torch.mm(a, b.t())
    return bool(torch.allclose(got, want, rtol=1e-3, atol=1e-3 * max(1.0, float(want.abs().max()))))


for line in sys.stdin:
    request = json.loads(line)
    if request["kind"] == "abort":  # the self-test of the parent's crash handling
        os.abort()
    ok = conv(request) if request["kind"] == "conv" else linear(request)
    print(json.dumps({"ok": bool(ok), "why": "" if ok else "results differ from the default"}),
          flush=True)
"""


class Vetter:
    """A child process that runs candidate kernels for this process (started on first use,
    restarted after it dies)."""

    def __init__(self) -> None:
        self._child: subprocess.Popen[str] | None = None
        self._threads = 0
        self._lock = threading.Lock()

    def _start(self, threads: int) -> subprocess.Popen[str]:
        if self._child is not None and self._child.poll() is None and self._threads == threads:
            return self._child
        self.close()
        self._threads = threads
        self._child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(threads)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
            env={**os.environ, "OMP_NUM_THREADS": str(threads)})
        return self._child

    def run(self, request: dict[str, Any]) -> tuple[bool, str]:
        """``(survived with the default's numbers, why not)`` for one request."""
        with self._lock:
            try:
                child = self._start(torch.get_num_threads())
                assert child.stdin is not None and child.stdout is not None
                child.stdin.write(json.dumps({**request, "runs": RUNS}) + "\n")
                child.stdin.flush()
                ready, _, _ = select.select([child.stdout], [], [], TIMEOUT_S)
                line = child.stdout.readline() if ready else ""
            except (OSError, ValueError) as error:
                self.close()
                return False, f"the child process could not run it ({error})"
            if not line:
                why = self._death()
                self.close()
                return False, why
            answer = json.loads(line)
            return bool(answer["ok"]), str(answer.get("why", ""))

    def _death(self) -> str:
        child = self._child
        if child is None:
            return "no child process"
        try:
            code = child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return f"the child process did not answer within {TIMEOUT_S:.0f} s"
        if code < 0:
            try:
                return f"the child process died of {signal.Signals(-code).name}"
            except ValueError:
                return f"the child process died of signal {-code}"
        return f"the child process exited with status {code}"

    def close(self) -> None:
        """Stop the child (it is started again on the next request)."""
        child, self._child = self._child, None
        if child is None:
            return
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if child.poll() is None:
            child.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


_vetter = Vetter()
atexit.register(_vetter.close)


def _valid_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("safe"), bool)


_choices = tuning.Choices("vetted", _valid_entry)


def request_name(request: dict[str, Any]) -> str:
    """The key of a request in the kept verdicts."""
    return json.dumps(request, sort_keys=True, separators=(",", ":"))


def vetted(request: dict[str, Any]) -> bool:
    """Whether the candidate of ``request`` survived a run in a child process on this machine
    (run now if it is new; the verdict is kept)."""

    def measure() -> dict[str, Any]:
        safe, why = _vetter.run(request)
        return {"safe": safe, "why": why, "source": "vetted in a child process",
                tuning.MEASURED: True}

    return bool(tuning.decide(_choices, request_name(request), measure)["safe"])


def verdicts() -> dict[str, dict[str, Any]]:
    """The kept verdicts for the current thread count, by request."""
    return _choices.items()


def forget_verdicts() -> None:
    """Drop this process's verdicts (the cache file stays) and stop the child."""
    with tuning.lock:
        _choices.clear()
        _vetter.close()


def conv_request(conv: nn.Conv2d, frames: tuple[int, ...] | torch.Size, mode: str,
                 dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The child's request to run ``conv`` channels-last on ``frames`` ``(N, C, H, W)``
    (``mode``: ``infer``, ``train`` or ``train+input``)."""
    return {"kind": "conv", "in": conv.in_channels, "out": conv.out_channels,
            "kernel": list(conv.kernel_size), "stride": list(conv.stride),
            "padding": list(conv.padding) if not isinstance(conv.padding, str) else conv.padding,
            "dilation": list(conv.dilation), "groups": conv.groups, "bias": conv.bias is not None,
            "frames": [int(n) for n in frames], "mode": mode,
            "dtype": str(dtype).removeprefix("torch.")}


def linear_request(m: int, k: int, n: int, a_layout: str, b_layout: str) -> dict[str, Any]:
    """The child's request to run oneDNN's ``(m, k) @ (n, k).T`` (layouts ``r``/``c``)."""
    return {"kind": "linear", "m": int(m), "k": int(k), "n": int(n), "a": a_layout,
            "b": b_layout}
