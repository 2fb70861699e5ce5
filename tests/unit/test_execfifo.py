"""``execfifo.release``: runc start's FIFO protocol, with a thread standing in for runc init."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from tether.runtime import execfifo


def _init(path: Path, delay: float, byte: bool = True) -> threading.Thread:
    """runc init's side: open the FIFO for writing (blocks until a reader), write "0",
    close (its exec)."""

    def run() -> None:
        time.sleep(delay)
        fd = os.open(path, os.O_WRONLY)
        if byte:
            os.write(fd, b"0")
        time.sleep(0.01)
        os.close(fd)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_released_and_the_fifo_removed(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / execfifo.FIFO)
    t = _init(tmp_path / execfifo.FIFO, 0.05)
    assert execfifo.release(tmp_path, os.getpid())
    t.join()
    assert not (tmp_path / execfifo.FIFO).exists()  # runc's status: running


def test_no_fifo_is_left_to_runc(tmp_path: Path) -> None:
    assert not execfifo.release(tmp_path, os.getpid())


def test_a_dead_init_is_left_to_runc(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / execfifo.FIFO)
    assert not execfifo.release(tmp_path, None)
    assert (tmp_path / execfifo.FIFO).exists()


def test_a_writer_without_the_byte_is_left_to_runc(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / execfifo.FIFO)
    t = _init(tmp_path / execfifo.FIFO, 0.0, byte=False)
    assert not execfifo.release(tmp_path, os.getpid())
    t.join()
    assert (tmp_path / execfifo.FIFO).exists()
