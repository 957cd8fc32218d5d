"""Large buffers go back to the system as soon as they are freed (glibc malloc).

A PATCH on S3 fills one buffer of up to two part sizes (app/tus/s3parts.py). glibc maps a block
that large with mmap at first, but raises its mmap threshold each time such a block is freed,
so later buffers come from the heap arenas of the worker's threads, where freed memory stays
in the process and fragments. Measured with bench/s3.py's memory runs (8 concurrent uploads in
8 MiB PATCHes on a fresh server): 14.7 MB of worker RSS per concurrent upload at 32 MiB with
glibc's moving threshold, against 8.4 MB (the PATCH's own buffer) at 32 and 256 MiB alike with
a fixed one. Blocks below the threshold (the file store's 1 MiB blocks, a photo's buffer) keep
coming from the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 4 << 20  # every block from this size up is mapped and unmapped on its own


def release_large_blocks(threshold: int = MMAP_THRESHOLD) -> bool:
    """Fix glibc's mmap threshold for this process (gunicorn calls it in each new worker).
    False where the C library has no mallopt (not glibc): nothing changes there."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
