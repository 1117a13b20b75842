"""Spawned process groups for the distributed tests: `run_ranks(fn, world_size, *args)`.

Each rank is a process started by torch.multiprocessing, joined by a FileStore in a fresh temporary directory
(no ports), on the gloo backend. `fn(rank, world_size, *args)` runs after `init_process_group` and returns a
picklable result; the results come back in rank order. An exception on any rank is raised here with the traceback of
every rank that failed; a rank that hangs (a collective the others never enter) is killed at `timeout`.
"""
from __future__ import annotations

import os
import pickle
import queue
import sys
import tempfile
import traceback

import torch.distributed as dist
import torch.multiprocessing as mp


class RankFailed(RuntimeError):
    pass


def _worker(rank, world_size, store_path, fn, args, results):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    try:
        dist.init_process_group("gloo", store=dist.FileStore(store_path, world_size), rank=rank,
                                world_size=world_size)
        try:
            out = fn(rank, world_size, *args)
        finally:
            dist.destroy_process_group()
        # plain pickle bytes: a tensor put on the queue as is travels by shared memory, which needs this process
        # alive until the parent reads it
        results.put((rank, True, pickle.dumps(out)))
    except BaseException:  # noqa: BLE001 - every failure goes back to the test, with its traceback
        results.put((rank, False, traceback.format_exc()))


def run_ranks(fn, world_size: int, *args, timeout: float = 240.0) -> list:
    """Runs fn(rank, world_size, *args) on `world_size` gloo ranks; returns their results in rank order."""
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    with tempfile.TemporaryDirectory() as tmp:
        store = os.path.join(tmp, "store")
        procs = [ctx.Process(target=_worker, args=(r, world_size, store, fn, args, results), daemon=True)
                 for r in range(world_size)]
        for p in procs:
            p.start()
        out: dict[int, object] = {}
        failures = []
        try:
            while len(out) + len(failures) < world_size:
                try:
                    rank, ok, value = results.get(timeout=timeout)
                except queue.Empty:
                    raise RankFailed(f"ranks {sorted(set(range(world_size)) - set(out))} did not finish in "
                                     f"{timeout:.0f} s") from None
                if ok:
                    out[rank] = pickle.loads(value)
                else:
                    failures.append((rank, value))
                    # the peers of a failed rank usually fail in gloo soon after, or wait forever in a collective:
                    # collect what comes within a few seconds (the first reported is not always the first cause)
                    try:
                        while len(out) + len(failures) < world_size:
                            rank, ok, value = results.get(timeout=5.0)
                            if not ok:
                                failures.append((rank, value))
                    except queue.Empty:
                        pass
                    break
        finally:
            for p in procs:
                p.join(timeout=5 if not failures else 0.5)
                if p.is_alive():
                    p.kill()
                    p.join()
        if failures:
            raise RankFailed("\n".join(f"rank {rank} of {world_size} failed:\n{tb}" for rank, tb in sorted(failures)))
    return [out[r] for r in range(world_size)]


if __name__ == "__main__":
    sys.exit("a helper of tests/distributed: import run_ranks")
