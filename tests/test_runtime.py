"""How the process runs on this machine: glibc's malloc keeps freed memory for the next step."""

import os
import platform
import subprocess
import sys

import pytest

from fmnist_lightning.train import train
from helpers.compose import compose

# A block above every threshold glibc would pick by itself (its dynamic mmap threshold stops
# at 32 MiB), written and freed twice: the page faults of the second time are printed.
SECOND_BLOCK_FAULTS = """
import ctypes, resource
from fmnist_lightning.training.machine import keep_freed_memory
print(keep_freed_memory())
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
size = 40 << 20
def faults_of_one_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_one_block()
print(faults_of_one_block())
"""
PAGES = (40 << 20) // 4096

needs_glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="needs glibc"
)


def second_block_faults(**environment: str) -> tuple[str, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_"))}
    result = subprocess.run(
        [sys.executable, "-c", SECOND_BLOCK_FAULTS],
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    was_set, faults = result.stdout.split()
    return was_set, int(faults)


@needs_glibc
def test_freed_memory_is_reused_without_faulting_its_pages_in_again():
    was_set, faults = second_block_faults()
    assert was_set == "True"
    assert faults < PAGES // 10  # the heap kept the block: its pages are still there


@needs_glibc
def test_a_malloc_setting_of_the_environment_wins():
    """glibc's own default, set explicitly, is kept: every block is faulted in afresh."""
    was_set, faults = second_block_faults(MALLOC_TRIM_THRESHOLD_="131072")
    assert was_set == "False"
    assert faults > PAGES // 2


def test_a_training_run_keeps_freed_memory(monkeypatch, synthetic_root, tmp_path):
    calls = []
    monkeypatch.setattr("fmnist_lightning.train.keep_freed_memory", lambda: calls.append(1))
    overrides = ["debug=fast_dev_run", f"data.root={synthetic_root}", f"paths.run_dir={tmp_path}"]
    train(compose("train", [*overrides, "trainer.accelerator=cpu", "data.batch_size=32"]))
    assert calls == [1]
