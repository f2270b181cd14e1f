"""The numba disk cache: compute declares its kernels without one (it writes no files); the resource
switches it on for the layout's and pynndescent's kernels."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300, check=True
    )
    return completed.stdout.strip()


def test_compute_kernels_have_no_disk_cache_of_their_own() -> None:
    kinds = _run(
        """
        from numba.core.registry import CPUDispatcher
        from atlas_assets.compute import layout_kernels
        kernels = [f for f in vars(layout_kernels).values() if isinstance(f, CPUDispatcher)]
        print(sorted({type(f._cache).__name__ for f in kernels}), len(kernels))
        """
    )
    assert kinds.startswith("['NullCache']"), kinds


def test_enabling_the_caches_covers_the_layout_kernels_once_per_process() -> None:
    counts = _run(
        """
        from numba.core.registry import CPUDispatcher
        from resources.kernel_cache import enable_kernel_caches
        from atlas_assets.compute import layout_kernels
        first = enable_kernel_caches()
        kernels = [f for f in vars(layout_kernels).values() if isinstance(f, CPUDispatcher)]
        cached = sum(type(f._cache).__name__ != "NullCache" for f in kernels)
        print(first > 0, cached == len(kernels), enable_kernel_caches() == first)
        """
    )
    assert counts == "True True True", counts


def test_a_small_map_never_imports_pynndescent() -> None:
    """Importing pynndescent costs ~3 s with its kernels cached and ~50 s without: the exact graph
    and the layout's cache must not pull it in."""
    imported = _run(
        """
        import sys
        import numpy as np
        from atlas_assets.compute import knn
        from resources.kernel_cache import enable_layout_kernel_cache
        enable_layout_kernel_cache()
        knn.build_graph(np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32), k=15)
        print("pynndescent" in sys.modules)
        """
    )
    assert imported == "False", imported
