"""A gateway process maps large blocks on their own pages, whatever it freed before."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from gateway.server import map_large_blocks

# Frees a 4 MiB block (glibc alone then raises its thresholds to match), then 8 MiB in blocks of
# 200 KiB; prints the KiB freed but still held by the heap.
_PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from gateway.server import map_large_blocks

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd",
            "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    if sys.argv[1] == "mapped":
        assert map_large_blocks()
    freed = bytes(4 * 1024 * 1024)
    del freed
    blocks = [bytes(200 * 1024) for _ in range(40)]
    del blocks
    print(libc.mallinfo2().fordblks // 1024)
    """
)


def _held_kib(mode: str) -> int:
    run = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(run.stdout)


def test_large_blocks_freed_are_given_back_after_a_larger_one_was() -> None:
    assert _held_kib("default") >= 6 * 1024  # glibc alone keeps them: the probe can tell
    assert _held_kib("mapped") < 3 * 1024


def test_an_operators_own_threshold_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert map_large_blocks() is False
