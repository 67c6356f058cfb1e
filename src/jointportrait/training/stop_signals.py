"""Stop training cleanly on SIGTERM or SIGINT (cluster pre-emption, Ctrl-C).

Inside :func:`stop_on_signals` the first SIGTERM or SIGINT only sets a flag;
the trainer looks at it between optimizer steps (:meth:`StopRequest.requested`,
agreed across processes), writes a checkpoint of the step reached unless one
exists already, and raises :class:`~jointportrait.errors.TrainingStopped`
(exit status 128 + signal). So a stop costs at most the rest of the current
step (and a validation pass when one is due) plus one checkpoint save, and a
pre-empted run loses no finished step. A second signal restores the previous
handlers and re-delivers itself: the process stops at once (Ctrl-C twice).
Handlers can only be installed from the main thread; elsewhere the block runs
without them.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import torch

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
    """The signal received (``signum``), or None; set by the handlers of :func:`stop_on_signals`."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def requested(self, accelerator=None) -> int | None:
        """The stop signal when any process received one (a collective call when there are several processes)."""
        if accelerator is None or accelerator.num_processes == 1:
            return self.signum
        flag = torch.tensor([float(self.signum or 0)], device=accelerator.device)
        seen = accelerator.reduce(flag, reduction="sum")
        return self.signum or (int(signal.SIGTERM) if float(seen) > 0 else None)


@contextlib.contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[StopRequest]:
    """Inside this block the first of ``signals`` requests a stop; a second one stops at once."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        logger.debug("not the main thread: no stop handlers installed")
        yield request
        return
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum, frame) -> None:
        if request.signum is not None:  # the second signal: no more waiting
            restore()
            signal.raise_signal(signum)
            return
        request.signum = signum
        logger.warning("%s received: finishing this step and writing a checkpoint (send it again to stop at once)",
                       signal.Signals(signum).name)

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield request
    finally:
        restore()
