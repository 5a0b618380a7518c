"""Signal handling, written once: supervised children drain on SIGTERM and leave SIGINT to the
supervisor; a foreground command stops gracefully on the first signal, at once on the second."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

logger = logging.getLogger(__name__)

EXIT_OK = 0
# A child that exits with this hit an error no restart can fix (sysexits.h EX_CONFIG): the
# supervisor does not restart it, stops the others and exits with it.
EXIT_FATAL = 78
EXIT_FORCED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

SignalHandler = Callable[[int, FrameType | None], None]


def start_supervised_child(initializer: Callable[[], None] | None) -> threading.Event:
    """Set up a process the supervisor spawned; the returned event is set by SIGTERM.

    Ctrl-C reaches the whole process group, so children ignore SIGINT: the supervisor alone
    decides what it means, and tells each child with SIGTERM.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if initializer is not None:
        initializer()
    stop = threading.Event()

    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    return stop


@contextmanager
def stop_signals(handler: SignalHandler) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler`` inside the block; the previous handlers after it."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """For a foreground command: the first SIGINT/SIGTERM sets the event (finish and exit 0),
    the second exits at once with ``EXIT_FORCED``."""
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            logger.warning("second %s: stopping now", name)
            raise SystemExit(EXIT_FORCED)
        logger.info("%s: stopping (send it again to stop at once)", name)
        stop.set()

    with stop_signals(request_stop):
        yield stop
