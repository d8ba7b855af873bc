"""Keep batch-sized buffers out of the heap, so that a long stage's memory stays bounded by a batch.

glibc serves a large allocation (above its mmap threshold, 128 KiB at start) from its own mapping, returned to the
OS when freed; but each time such a buffer is freed it raises the threshold to that buffer's size (up to 32 MiB).
From then on a generation batch's temporaries (the images, their float copy for a filter, a chunk's serialised
bytes: 3-13 MiB at 64 x 64) come from the heap, where the small tensors kept between batches (sample ids, scores)
land among them and keep the heap from shrinking. Measured with ``benchmarks/bench_scale.py``: a generating rank's
peak RSS grew 1.3-1.6x from S = 10,000 to 100,000; with the threshold fixed, 1.005x. A no-op off glibc.
"""

from __future__ import annotations

import ctypes
import functools
import sys

#: glibc's mallopt parameter number of the mmap threshold (malloc.h: M_MMAP_THRESHOLD)
M_MMAP_THRESHOLD = -3
#: buffers of at least this many bytes get their own mapping (a batch's tensors; not the small ones kept across it)
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD_BYTES) -> bool:
    """Fix glibc's mmap threshold at ``threshold`` bytes for the rest of the process (no dynamic raising); True
    where it took effect. Process-wide and cheap: the buffers above it are page-faulted afresh, which a generator's
    forward pass dwarfs."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: libc's, without searching for the library
    except (OSError, AttributeError):  # musl and other libcs without mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1
