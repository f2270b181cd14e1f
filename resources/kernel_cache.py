"""numba's disk cache for the kernels of pynndescent and of the layout (compute/layout_kernels.py):
compiled machine code written next to their modules (or to numba's cache folder, NUMBA_CACHE_DIR), so
the next process loads it instead of compiling again.

It writes files, so it lives here and not in compute (whose kernels are declared without a cache):
the pipeline's graph and projection steps switch it on before their work, and benchmarks that time
those stages may too.
"""

from __future__ import annotations

from functools import lru_cache
from types import ModuleType

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
    from pynndescent import kernels, pynndescent_, rp_trees, utils

    return _enable_module_caches([pynndescent_, utils, kernels, rp_trees], UNCACHEABLE_PYNNDESCENT_KERNELS)


@lru_cache(maxsize=1)
def enable_layout_kernel_cache() -> int:
    """Turn on numba's disk cache for the layout's kernels; returns how many. Without it every
    process compiles them again before its first layout (several seconds, more under load)."""
    from atlas_assets.compute import layout_kernels

    return _enable_module_caches([layout_kernels])


def enable_kernel_caches() -> int:
    """Both caches (pynndescent's and the layout's); returns how many kernels are cached."""
    return enable_pynndescent_kernel_cache() + enable_layout_kernel_cache()


def _enable_module_caches(modules: list[ModuleType], skip: frozenset[str] = frozenset()) -> int:
    from numba.core.registry import CPUDispatcher

    enabled = 0
    for module in modules:
        for name, function in vars(module).items():
            uncached = isinstance(function, CPUDispatcher) and type(function._cache).__name__ == "NullCache"
            if uncached and name not in skip:
                try:
                    function.enable_caching()
                except RuntimeError:  # no writable cache location: compile per process, as before
                    return enabled
                enabled += 1
    return enabled
