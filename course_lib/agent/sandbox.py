"""Tool calls in a worker process, under a time and a memory limit: a call past
``tool_timeout_s`` is stopped with the process (and any it started), and on Linux the worker may
map at most ``tool_memory_mb`` MiB more than the program had. Taught in book/07b_agents.md,
section 3."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import warnings

from .tools import Tool, _run_tool

# Tool calls in a worker process, under a time and a memory limit
START_TIMEOUT_S = 120  # a "spawn" worker imports course_lib (and torch) before its first call


def _cap_memory(memory_mb: int) -> None:
    """Let this process map at most ``memory_mb`` MiB more than it maps now (RLIMIT_AS, read
    against /proc). Linux enforces it; without /proc (macOS, Windows) nothing is capped."""
    try:
        import resource
        with open("/proc/self/statm") as f:
            limit = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE") + memory_mb * 2**20
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = min([limit] + [x for x in (soft, hard) if x != resource.RLIM_INFINITY])
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError):
        pass


def _serve(conn, tools: dict, memory_mb: int, agent_end) -> None:
    """The worker: receive (tool name, arguments), send back the observation, until EOF."""
    if agent_end is not None:  # forked: this copy of the agent's end would hide its EOF
        agent_end.close()
    if hasattr(os, "setpgid"):  # a group of its own: a timeout also stops what a call started
        os.setpgid(0, 0)
    if "torch" in sys.modules:  # torch's OpenMP pool did not survive a fork and would hang
        sys.modules["torch"].set_num_threads(1)
    _cap_memory(memory_mb)
    conn.send("ready")
    while True:
        try:
            name, args = conn.recv()
        except EOFError:  # the agent closed its end or exited
            return
        try:
            reply = _run_tool(tools[name], args)
        except BaseException as exc:  # SystemExit and the like are observations too
            reply = f"error: {name} failed: {type(exc).__name__}"
        try:
            conn.send(reply)
        except Exception as exc:  # e.g. a result too large to pickle within the memory limit
            conn.send(f"error: {name}'s result could not be sent back ({type(exc).__name__})")


def _call_in_thread(tool: Tool, args: dict, timeout_s: float) -> str:
    """The fallback for a tool a "spawn" worker cannot unpickle: the loop stops waiting after
    ``timeout_s``, but a thread cannot be stopped, so the call runs on in the background."""
    replies = []

    def work():
        try:
            replies.append(_run_tool(tool, args))
        except BaseException as exc:
            replies.append(f"error: {tool.name} failed: {type(exc).__name__}")

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout_s)
    return replies[0] if replies else (f"error: {tool.name} did not finish within {timeout_s:g} "
                                       "s (it runs on in a thread)")


def _picklable(tool: Tool) -> bool:
    try:
        pickle.dumps(tool)
        return True
    except Exception:  # closures and lambdas, or what they hold
        return False


class _Worker:
    """One agent's tool calls in a child process, started at the first call and reused: a call
    past its time, or one that kills the process, stops it; the next call starts a new one."""

    def __init__(self, tools: list[Tool], memory_mb: int, start_method: str):
        self.tools = {t.name: t for t in tools}
        self.memory_mb, self.start_method = memory_mb, start_method
        self.process = self.conn = None
        self.in_threads: set[str] | None = None  # decided at the first call

    def choose_threads(self) -> None:
        """A "spawn" worker gets pickled copies of the tools: the others run in threads."""
        self.in_threads = set() if self.start_method == "fork" else {
            name for name, tool in self.tools.items() if not _picklable(tool)}
        if self.in_threads:
            warnings.warn(f"ReActAgent: tools {sorted(self.in_threads)} cannot be pickled for a "
                          "'spawn' worker; they run in threads, with no memory limit, and a call "
                          "past its time is abandoned, not stopped", RuntimeWarning, stacklevel=4)

    def start(self) -> None:
        tools = {n: t for n, t in self.tools.items() if n not in self.in_threads}
        context = multiprocessing.get_context(self.start_method)
        self.conn, there = context.Pipe()
        agent_end = self.conn if self.start_method == "fork" else None
        self.process = context.Process(target=_serve, args=(there, tools, self.memory_mb,
                                                            agent_end), daemon=True)
        try:
            with warnings.catch_warnings():  # Python 3.12+ warns on fork while threads run;
                warnings.simplefilter("ignore", DeprecationWarning)  # a deadlock times out
                self.process.start()
        except Exception as exc:  # e.g. inside a daemonic process, which may have no children
            warnings.warn(f"ReActAgent: no worker process ({type(exc).__name__}: {exc}); the "
                          "tools run in threads, with no memory limit", RuntimeWarning,
                          stacklevel=4)
            self.in_threads, self.process = set(self.tools), None
        there.close()
        with contextlib.suppress(EOFError, OSError):
            if self.process and self.conn.poll(START_TIMEOUT_S) and self.conn.recv() == "ready":
                return
        self.stop()

    def call(self, tool: Tool, args: dict, timeout_s: float) -> str:
        if self.in_threads is None:
            self.choose_threads()
        if self.process is not None and not self.process.is_alive():
            self.stop()
        if self.process is None and tool.name not in self.in_threads:
            self.start()
        if tool.name in self.in_threads:
            return _call_in_thread(tool, args, timeout_s)
        if self.process is None:
            return f"error: the worker process for {tool.name} did not start"
        try:
            self.conn.send((tool.name, args))
            if self.conn.poll(timeout_s):
                return self.conn.recv()
            reply = f"error: {tool.name} did not finish within {timeout_s:g} s and was stopped"
        except (EOFError, OSError):  # the process died during the call
            self.process.join(1)
            reply = f"error: {tool.name} crashed (exit code {self.process.exitcode})"
        except BaseException:  # interrupted while waiting: the call must not run on
            self.stop()
            raise
        self.stop()
        return reply

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        if self.process is None:
            self.conn = None
            return
        if hasattr(os, "killpg"):
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.kill()
        self.process.join()
        self.process = self.conn = None
