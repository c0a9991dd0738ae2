"""A real Jupyter kernel driven the way JupyterLab drives one (jupyter_client), for tests/course/test_kernel_*.

with Kernel() as kernel:            # started in notebooks/, like a course notebook
    kernel.run(SETUP)
    out = kernel.run("%%ipytest ...")
    out.error, out.stdout, out.stderr
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import KernelManager

from coursedb.paths import course_root

ROOT = course_root()
NOTEBOOKS = ROOT / "notebooks"
SETUP = "from coursedb.notebook import setup\n\ndb_url = setup()"


@dataclass
class Output:
    status: str = ""
    stdout: str = ""
    stderr: str = ""
    error: dict | None = None  # ename, evalue, traceback of the cell's error output
    results: list[str] = field(default_factory=list)

    @property
    def error_text(self) -> str:
        return "\n".join(self.error["traceback"]) if self.error else ""


class Kernel:
    def __init__(self, cwd: Path = NOTEBOOKS, env: dict[str, str] | None = None) -> None:
        # Unix sockets where there are any: over TCP, jupyter_client picks a free port and the kernel binds it
        # later, so kernels started at once by several processes (the room simulation's learners) can take the
        # same port ("Address already in use", the kernel dies). A folder of its own per kernel: no name race.
        self.sockets = None if os.name == "nt" else tempfile.mkdtemp(prefix="kernel-")
        ipc = {"transport": "ipc", "ip": os.path.join(self.sockets, "k")} if self.sockets else {}
        self.manager = KernelManager(kernel_name="python3", **ipc)
        self.manager.start_kernel(cwd=str(cwd), **({"env": env} if env is not None else {}))
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def run(self, code: str, timeout: float = 120, interrupt_after: float | None = None) -> Output:
        """Execute one cell; optionally press Kernel → Interrupt after ``interrupt_after`` seconds."""
        out = Output()

        def collect(msg: dict) -> None:
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                setattr(out, content["name"], getattr(out, content["name"]) + content["text"])
            elif kind == "error":
                out.error = content
            elif kind in ("execute_result", "display_data"):
                out.results.append(content["data"].get("text/plain", ""))

        timer = None
        if interrupt_after is not None:
            timer = threading.Timer(interrupt_after, self.manager.interrupt_kernel)
            timer.start()
        try:
            reply = self.client.execute_interactive(code, output_hook=collect, timeout=timeout)
        finally:
            if timer is not None:
                timer.cancel()
        out.status = reply["content"]["status"]
        return out

    def restart(self) -> None:
        """Kernel → Restart Kernel: a new kernel process, and a new client for it."""
        self.client.stop_channels()
        self.manager.restart_kernel(now=True)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=120)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        if self.sockets:
            shutil.rmtree(self.sockets, ignore_errors=True)  # the kernel removed its sockets; only the folder is left

    def __enter__(self) -> Kernel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
