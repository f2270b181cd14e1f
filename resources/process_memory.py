"""Handing memory that a process freed back to the system.

Freed memory is not returned by itself: pyarrow's pool (mimalloc) keeps freed pages, and glibc's
malloc keeps freed heap in per-thread arenas (onnxruntime's and numba's worker threads each get
one), so a process that has embedded, then built a graph, stays at the high-water mark of every
stage before. Measured on a 50,000-row map: see docs/scaling.md "Peak memory".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow as pa


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


def release_freed_memory() -> None:
    """Return the pages Arrow's pool and glibc's malloc hold after frees (a few ms; nothing is lost)."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
