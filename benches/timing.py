"""Timing helper shared by the benchmarks."""

import statistics
import time


def median_timing(fn, min_time=0.3, repeats=7, max_loops=1 << 16):
    """Medians over ``repeats`` samples, each a loop of calls long enough to be timed reliably
    (after one warm-up call): wall seconds per call and CPU seconds per call of the whole
    process (all threads)."""
    fn()
    loops = 1
    while True:
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start >= min_time / repeats or loops >= max_loops:
            break
        loops *= 2
    wall, cpu = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(loops):
            fn()
        wall.append((time.perf_counter() - start) / loops)
        cpu.append((time.process_time() - cpu_start) / loops)
    return statistics.median(wall), statistics.median(cpu)


def median_seconds(fn, min_time=0.3, repeats=7, max_loops=1 << 16):
    """Median wall seconds per call (see ``median_timing``)."""
    return median_timing(fn, min_time, repeats, max_loops)[0]
