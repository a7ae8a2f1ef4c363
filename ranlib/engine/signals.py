"""Ctrl-C and SIGTERM during training: noted by a handler, acted on at the end of the step.

While ``fit``'s loop runs (``stop_at_step_boundary``), SIGINT and SIGTERM only append their number to a list; at the
end of each step the loop asks ``agreed_signal`` whether to stop, saves a resumable checkpoint, and raises
``TrainingInterrupted``. Under torchrun the processes agree by one all-reduce, so every one stops at the same
iteration. During set-up and the final evaluation the signals act as usual.
"""

from __future__ import annotations

import contextlib
import signal
import threading

import torch

from ranlib.engine import distributed


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM stopped ``fit`` at a step boundary after it saved a resumable checkpoint of
    ``iteration``: calling ``fit`` again with the same configuration resumes there. A KeyboardInterrupt, so code
    that stops on Ctrl-C stops on it too; ``signal`` is the signal's number (the CLI exits with 128 + it)."""

    def __init__(self, iteration: int, signum: int):
        super().__init__(f"{signal.Signals(signum).name} stopped training at iteration {iteration}, which is saved; "
                         "fit the same configuration again to resume")
        self.iteration, self.signal = iteration, signum


@contextlib.contextmanager
def stop_at_step_boundary(received: list[int]):
    """While training: SIGINT and SIGTERM only append their number to ``received``, and ``fit`` stops at the end
    of the step with a checkpoint; the previous handlers come back afterwards. Outside the main thread, where
    Python cannot set handlers, signals act as before."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)


def agreed_signal(received: list[int], device: torch.device) -> int | None:
    """The signal that stops training at this step boundary, or None: the first this process received; under
    DDP one that any process received, so that every process stops at the same iteration (one all-reduce)."""
    if distributed.world_size() == 1:
        return received[0] if received else None
    counts = torch.tensor([signal.SIGINT in received, signal.SIGTERM in received], dtype=torch.int64, device=device)
    distributed.all_reduce_sum(counts)
    sigint, sigterm = counts.tolist()
    return signal.SIGINT if sigint else signal.SIGTERM if sigterm else None
