"""numba's disk cache for pynndescent's kernels: compiled machine code written next to pynndescent
(or to numba's cache folder), so the next process loads it instead of compiling again.

It writes files, so it lives here and not in compute; the pipeline's neighbour-graph step switches it
on before building a graph, and benchmarks that time pynndescent may too.
"""

from __future__ import annotations

from functools import lru_cache

UNCACHEABLE_PYNNDESCENT_KERNELS = frozenset({"nn_descent", "nn_descent_internal"})
"""pynndescent kernels numba refuses to cache (they use dynamic globals): see enable_pynndescent_kernel_cache."""


@lru_cache(maxsize=1)
def enable_pynndescent_kernel_cache() -> int:
    """Turn on numba's disk cache for pynndescent's NN-descent kernels; returns how many.

    pynndescent declares them cache=False, so every process compiled them again: its first call cost
    32-37 s on 2,000 rows (minutes under heavy load), against 17-18 s with these cached (fresh
    processes, filled cache, same recall). Numba cannot cache two of them
    (UNCACHEABLE_PYNNDESCENT_KERNELS use dynamic globals; asking only prints a warning per process),
    which keep compiling per process. A cached entry is only used for identical argument types, the
    distance function included, so caching cannot mix metrics. Idempotent (once per process).
    """
    from numba.core.registry import CPUDispatcher
    from pynndescent import kernels, pynndescent_, rp_trees, utils

    enabled = 0
    for module in (pynndescent_, utils, kernels, rp_trees):
        for name, function in vars(module).items():
            uncached = isinstance(function, CPUDispatcher) and type(function._cache).__name__ == "NullCache"
            if uncached and name not in UNCACHEABLE_PYNNDESCENT_KERNELS:
                try:
                    function.enable_caching()
                except RuntimeError:  # no writable cache location: compile per process, as before
                    return enabled
                enabled += 1
    return enabled
