"""Decoding tests read small files: a 1 MiB reader buffer instead of 32 MiB (each reader
allocates and clears its buffer, which dominated these tests' run time).  Buffer handling
itself is tested in tests/capture with the default and with tiny buffers."""
import pytest

from analyzer.capture import reader


@pytest.fixture(autouse=True)
def small_reader_buffer(monkeypatch):
    monkeypatch.setattr(reader, "BUFFER_SIZE", 1 << 20)
    monkeypatch.setattr(reader, "MAX_PCAPNG_BLOCK", 1 << 19)     # the buffer must hold the largest block
