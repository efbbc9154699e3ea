"""Choosing the torch device from a config string, and the CPU threads torch may use."""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import sys
from collections.abc import Iterator

import torch

__all__ = ["machine_info", "resolve_device", "torch_threads", "tune_malloc"]

# glibc's mallopt parameters
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MALLOC_ENV = "DC_PLUGINS_MALLOC"


def tune_malloc(mmap_threshold: int = 1 << 30) -> bool:
    """Let glibc's malloc serve and keep large blocks on the heap instead of mapping fresh pages
    for each (the command-line entry points call this; importing the library never does).

    Why: a training or matching step on a CPU allocates activations of tens to hundreds of MB
    (256 images x 128 channels x 32 x 32 floats = 134 MB) and frees them again; above glibc's
    mmap threshold (at most 32 MB when left to adjust itself) each one is a fresh ``mmap`` whose
    pages the kernel faults in and zeroes, and ``munmap`` when freed. Measured on the project's
    2-core machine: a DM iteration on CIFAR-10-JPEG (ipc 10, 256 real per class, 1 thread) took
    6.4-7.5 s with the default and 4.9 s with large blocks kept (BENCHMARKS.md). What it costs:
    the process keeps its peak heap instead of returning it to the system between steps.

    No-op (returns False) off Linux/glibc or when the environment sets ``DC_PLUGINS_MALLOC=default``.
    """
    if os.environ.get(MALLOC_ENV, "").lower() in ("default", "0", "off", "no"):
        return False
    if not sys.platform.startswith("linux") or not 0 < mmap_threshold < 2 ** 31:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    trim = min(2 * mmap_threshold, 2 ** 31 - 1)
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; asking for CUDA without it is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"unknown device {name!r}; allowed: auto, cpu, cuda, cuda:N") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available; use cpu or auto")
    return dev


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Limit torch's intra-op CPU threads to ``threads`` inside the block (None: leave them), and
    restore the previous number after, so a library call does not change its caller's setting."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1 (or None for torch's default), got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _proc_field(path: str, key: str) -> str | None:
    try:
        with open(path) as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None


def machine_info() -> dict:
    """What a timing or an accuracy was measured on: CPU model, cores, memory, torch, threads, GPU.

    Recorded in every result file because float results differ between CPU models (MKL picks
    other kernels), and times only compare within one machine.
    """
    mem_kb = _proc_field("/proc/meminfo", "MemTotal")
    return {"cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "memory_gb": round(int(mem_kb.split()[0]) / 2**20, 1) if mem_kb else None,
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
