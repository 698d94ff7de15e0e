"""Lines from standard input for the console chat, whatever standard input is.

asyncio's pipe transport accepts only pipes, sockets and terminals (a file or a closed stdin
makes it raise), and its StreamReader stops for good at a line over 64 KiB. A daemon thread
doing plain blocking reads works for every kind of input, never keeps the process alive, and
lets this module bound a line itself: a longer one is reported and skipped, and reading goes on.
"""

from __future__ import annotations

import asyncio
import os
import threading

MAX_LINE = 64 * 1024  # bytes; a longer line is skipped (reported as TOO_LONG), never buffered whole
CHUNK = 64 * 1024
TOO_LONG = b"\x00too long\x00"  # cannot come from a real line: lines are split on \n and NUL is dropped


class StdinLines:
    """`await readline()` gives one line (bytes, with its newline), TOO_LONG, or b"" at the end."""

    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ended = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        threading.Thread(target=self._pump, name="console stdin", daemon=True).start()

    async def readline(self) -> bytes:
        if self._ended:
            return b""
        line = await self._queue.get()
        if not line:
            self._ended = True
        return line

    def _put(self, item: bytes) -> None:
        assert self._loop is not None
        # Blocks the reader thread while the queue is full, so a fast file cannot fill memory.
        future = asyncio.run_coroutine_threadsafe(self._queue.put(item), self._loop)
        try:
            future.result()
        except RuntimeError:  # the loop closed: the process is exiting
            raise SystemExit from None

    def _pump(self) -> None:
        buffered = bytearray()
        skipping = False  # inside a line that is already too long: drop until its newline
        try:
            while True:
                try:
                    chunk = os.read(self._fd, CHUNK)
                except InterruptedError:
                    continue
                except OSError:  # closed or unreadable stdin: the same as end of input
                    chunk = b""
                if not chunk:
                    if buffered and not skipping:
                        self._put(bytes(buffered))
                    self._put(b"")
                    return
                buffered += chunk.replace(b"\x00", b"")
                while True:
                    end = buffered.find(b"\n")
                    if end < 0:
                        if len(buffered) > MAX_LINE:
                            if not skipping:
                                self._put(TOO_LONG)
                            skipping = True
                            buffered.clear()
                        break
                    line = bytes(buffered[: end + 1])
                    del buffered[: end + 1]
                    if skipping:
                        skipping = False
                    elif len(line) > MAX_LINE:
                        self._put(TOO_LONG)
                    else:
                        self._put(line)
        except SystemExit:
            return


async def stdin_lines() -> StdinLines:
    lines = StdinLines()
    lines.start()
    return lines
