"""The live projector, alone or as ``projector.workers`` processes.

Workers split the lead partitions as a rebuild's do (``Share``): each folds its share on its
own connection under its own locks, and worker 0 also folds ticks, job and control events.
The parent forwards SIGINT / SIGTERM and, when one worker ends, ends the others and exits
with an error, so whatever supervises `leadflow run projector` restarts the whole set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
from multiprocessing.process import BaseProcess

from ..runtime.embedded import die_with_parent
from ..runtime.errors import InfrastructureError
from ..runtime.logging import setup_logging
from ..runtime.process import tune_gc
from ..runtime.settings import Settings
from .rebuild import plan_shares
from .service import Projector, Share

log = logging.getLogger(__name__)

#: Seconds a worker is given to finish its batch after SIGTERM before it is killed.
STOP_GRACE = 30.0


async def run_projector(settings: Settings) -> None:
    """The projector process: fold the log into the read models until SIGINT / SIGTERM."""
    count = settings.pipeline.projector.workers
    shares = await plan_shares(settings, count) if count > 1 else [None]
    if shares == [None]:
        await Projector(settings).run_forever()
        return
    await _supervise(settings, [s for s in shares if s is not None])


def _worker_main(settings: Settings, share: Share, parent: int) -> None:
    """Entry point of a worker process."""
    die_with_parent()
    if os.getppid() != parent:
        return  # the parent died before the line above could tie this process to it
    setup_logging(settings.log_level, f"projector-{share.index}")
    tune_gc()
    asyncio.run(Projector(settings, share=share).run_forever())


async def _supervise(settings: Settings, shares: list[Share]) -> None:
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = [
        context.Process(target=_worker_main, name=f"projector-{s.index}",
                        args=(settings, s, os.getpid())) for s in shares]
    for worker in workers:
        worker.start()
    log.info("projector: %d workers over the lead partitions", len(workers),
             extra={"action": "projector_workers"})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set() and all(w.is_alive() for w in workers):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
    finally:
        ended = [w for w in workers if not w.is_alive()]
        await _stop_all(workers)
    if not stop.is_set():
        names = ", ".join(f"{w.name} (exit code {w.exitcode})" for w in ended)
        raise InfrastructureError(f"projector worker {names} ended, so the others were stopped; "
                                  "see its log above. Run the projector again (its workers "
                                  "resume from the offsets they committed)")


async def _stop_all(workers: list[BaseProcess]) -> None:
    """SIGTERM (each finishes its batch), then SIGKILL whoever outlives the grace period."""
    for worker in workers:
        if worker.is_alive():
            worker.terminate()
    for worker in workers:
        await asyncio.to_thread(worker.join, STOP_GRACE)
        if worker.is_alive():
            worker.kill()
            await asyncio.to_thread(worker.join, 5)
