"""Freed memory is handed back to the system between map stages."""

import sys

import numpy as np
import pytest

from resources import process_memory
from resources.process_memory import release_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux-only")
def test_glibc_malloc_trim_is_found_on_linux():
    assert process_memory._malloc_trim() is not None


def test_release_keeps_every_live_array_intact():
    kept = [np.full(1000, index, dtype=np.int64) for index in range(200)]
    freed = [np.ones(1000) for _ in range(2000)]
    del freed

    release_freed_memory()

    assert all(int(array.sum()) == index * 1000 for index, array in enumerate(kept))
