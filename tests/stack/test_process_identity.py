"""Process identity by PID and start survives a step of the kernel's boot time (the wall clock
being corrected), and still tells a reused PID apart."""

from __future__ import annotations

import os
import sys

import psutil
import pytest

from flywheel.stack import ProcessRecord, is_alive, same_process, start_ticks


def test_a_boot_time_step_does_not_make_a_live_process_gone() -> None:
    """psutil's start time is the kernel's whole-second boot time plus the process's ticks: when
    the wall clock is corrected the boot time steps (measured here: 17 s in half an hour) and every
    start time with it. A live process must stay alive through that — it used not to: the stack
    was never stopped, healthy runtimes were called dead."""
    me = psutil.Process()
    started, cmd = me.create_time(), me.cmdline()
    ticks = start_ticks(os.getpid())
    # a record with the ticks since boot: no clock step matters, a different start does
    if sys.platform.startswith("linux"):
        assert ticks is not None
        assert is_alive(ProcessRecord("me", os.getpid(), started + 17, 0, "", "", cmd, ticks))
        assert not is_alive(ProcessRecord("me", os.getpid(), started, 0, "", "", cmd, ticks + 5))
    # a record written before (no ticks): a small or a whole-second shift with the same command
    for shift in (-1.0, 1.0, 17.0):
        assert is_alive(ProcessRecord("me", os.getpid(), started + shift, 0, "", "", cmd))
    assert same_process(os.getpid(), started + 1.0) is not None
    # another process on a reused PID: a start time off by a fraction, or another command
    assert not is_alive(ProcessRecord("me", os.getpid(), started - 30.37, 0, "", "", cmd))
    assert not is_alive(ProcessRecord("me", os.getpid(), started - 30, 0, "", "", ["other"]))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ticks since boot come from /proc")
def test_start_ticks_are_the_kernels() -> None:
    assert start_ticks(os.getpid()) == start_ticks(os.getpid()) is not None
    assert start_ticks(2**22 + 12345) is None  # no such process
