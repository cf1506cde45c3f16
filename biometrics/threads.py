"""How many threads the biometric work runs on: one BLAS thread for the matcher, one OpenCV thread for extraction.

The matcher's matmuls are small: OpenBLAS threads waiting for a busy core made a 1:1 match 1.0 ms instead of
0.35 ms (median, load 6 on the 2 cores). An extraction is a few hundred small OpenCV calls: with OpenCV's
thread pool it took 33-37 ms a print at load 6, on one thread 27-28 ms (wall clock, 80 FVC2002 prints).
The BLAS limit is process-wide (set once where a process starts biometric work: the auth service, the
bench); the OpenCV one is held only around an extraction, so a scanner sharing the process keeps its threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import cv2

MATCH_BLAS_THREADS = 1


def limit_blas_threads() -> None:
    """Every BLAS library loaded in this process on MATCH_BLAS_THREADS threads, from now on."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=MATCH_BLAS_THREADS, user_api="blas")


@contextlib.contextmanager
def opencv_on_one_thread() -> Iterator[None]:
    """OpenCV on one thread inside the block, its setting before restored after."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
