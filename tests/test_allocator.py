"""amber's malloc tuning (``amber.backend.allocator``): after ``import amber``, arrays freed and
allocated again in a forward pass's pattern are reused from the heap, which the kernel's own
page-fault counter shows; without the tuning the same pattern faults every array in again.
Each case runs in a fresh interpreter, since the setting is per process."""

import os
import subprocess
import sys
import textwrap

import pytest

PATTERN = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import amber
    from amber.backend import allocator

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    # Feature maps of several sizes, each freed two allocations later (as a forward pass does).
    sizes = [7 << 20, 3 << 20, 12 << 20, 5 << 20, 7 << 20, 1 << 20]
    for size in sizes:
        np.ones(size // 4, np.float32)
    before = faults()
    for _ in range(20):
        alive = []
        for size in sizes:
            array = np.empty(size // 4, np.float32)
            array.fill(1)
            alive.append(array)
            if len(alive) > 2:
                alive.pop(0)
    print(allocator.applied, (faults() - before) / 20)
""")


def run_pattern(**env):
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environment.pop("AMBER_MALLOC_TUNING", None)
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", PATTERN], env=environment, capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] == "True", float(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is tuned on Linux only")
def test_freed_arrays_are_reused_instead_of_faulted_in_again():
    applied, tuned_faults = run_pattern()
    assert applied
    # 35 MiB of arrays per round: about 9,000 pages if each were faulted in afresh.
    assert tuned_faults < 500
    applied, untuned_faults = run_pattern(AMBER_MALLOC_TUNING="0")
    assert not applied
    assert untuned_faults > 4 * tuned_faults + 500


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt is tuned on Linux only")
def test_a_users_own_malloc_settings_win():
    applied, _ = run_pattern(MALLOC_TRIM_THRESHOLD_="131072")
    assert not applied
