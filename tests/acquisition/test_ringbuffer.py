"""Ring buffer against a plain numpy reference: random chunk sizes, wrap-around, overrun."""

import contextlib
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtdecode.acquisition._ringbuffer import OverrunError, RingBuffer
from rtdecode.common.memory import resident_zeros


def _stream(n_samples, n_channels, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((n_samples, n_channels)).astype(np.float32)
    ts = np.arange(n_samples, dtype=np.float64) * 1e-3 + 100.0
    return data, ts


def test_random_chunks_wrap_and_match_reference():
    data, ts = _stream(5000, 3)
    ring = RingBuffer(257, 3)
    rng = np.random.default_rng(1)
    pos = 0
    while pos < len(data):
        n = int(rng.integers(1, 90))
        ring.write(data[pos : pos + n], ts[pos : pos + n])
        pos = min(pos + n, len(data))
        # the newest k samples, for several k, equal the reference slice
        for k in (1, 17, min(pos, 257)):
            if k > pos:
                continue
            out = np.empty((k, 3), np.float32)
            out_ts = np.empty(k)
            ring.read(pos, out, out_ts)
            np.testing.assert_array_equal(out, data[pos - k : pos])
            np.testing.assert_array_equal(out_ts, ts[pos - k : pos])
    assert ring.written == len(data)
    assert ring.overruns == 0


def test_read_latest_returns_end_index():
    data, ts = _stream(1000, 2)
    ring = RingBuffer(100, 2)
    ring.write(data[:730], ts[:730])
    out = np.empty((40, 2), np.float32)
    assert ring.read_latest(out) == 730
    np.testing.assert_array_equal(out, data[690:730])


def test_chunk_larger_than_capacity_keeps_newest():
    data, ts = _stream(1000, 2)
    ring = RingBuffer(64, 2)
    ring.write(data, ts)
    out = np.empty((64, 2), np.float32)
    ring.read(1000, out)
    np.testing.assert_array_equal(out, data[-64:])


def test_overwritten_range_fails_loudly_and_is_counted():
    data, ts = _stream(300, 2)
    ring = RingBuffer(100, 2)
    ring.write(data, ts)
    out = np.empty((10, 2), np.float32)
    with pytest.raises(OverrunError, match="overwritten"):
        ring.read(150, out)  # samples 140..149 were overwritten by 200..299
    assert ring.overruns == 1
    ring.read(300, out)  # the newest are fine
    np.testing.assert_array_equal(out, data[290:300])


def test_segments_are_the_samples_in_place_and_wrap_in_two():
    data, ts = _stream(1000, 3)
    ring = RingBuffer(100, 3)
    ring.write(data[:130], ts[:130])
    # [90, 130) lies at slots 90..99 then 0..29: two views, in order
    parts = ring.segments(90, 130)
    assert [len(p[0]) for p in parts] == [10, 30]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), data[90:130])
    np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), ts[90:130])
    assert all(not p[0].flags.writeable and p[0].flags.c_contiguous for p in parts)
    ring.check(90)  # intact
    assert ring.timestamp(129) == ts[129]
    (one,) = ring.segments(100, 130)
    np.testing.assert_array_equal(one[0], data[100:130])
    assert ring.segments(130, 130)[0][0].shape == (0, 3)


def test_segments_lapped_while_in_use_fail_the_check_and_are_counted():
    data, ts = _stream(1000, 2)
    ring = RingBuffer(100, 2)
    ring.write(data[:100], ts[:100])
    ((view, _),) = ring.segments(0, 100)
    ring.write(data[100:120], ts[100:120])  # overwrites slots 0..19 under the view
    assert view[0, 0] == data[100, 0]  # what a reader saw is torn...
    with pytest.raises(OverrunError, match="overwritten while in use"):
        ring.check(0)  # ...and the check says so
    ring.check(20)  # samples from 20 on are intact
    with pytest.raises(OverrunError):
        ring.segments(10, 50)  # gone already
    with pytest.raises(OverrunError):
        ring.timestamp(5)
    assert ring.overruns == 3
    with pytest.raises(ValueError, match="only 120 written"):
        ring.segments(100, 121)
    with pytest.raises(ValueError, match="not written"):
        ring.timestamp(120)


@pytest.mark.parametrize(
    "end, n, message",
    [(50, 10, "only 40 written"), (5, 10, "starts before"), (40, 200, "cannot read 200")],
)
def test_bad_ranges_are_value_errors(end, n, message):
    data, ts = _stream(40, 2)
    ring = RingBuffer(100, 2)
    ring.write(data, ts)
    with pytest.raises(ValueError, match=message):
        ring.read(end, np.empty((n, 2), np.float32))


def test_wrong_shapes_are_rejected():
    ring = RingBuffer(10, 3)
    with pytest.raises(ValueError, match="holds 3"):
        ring.write(np.zeros((2, 4), np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="timestamps"):
        ring.write(np.zeros((2, 3), np.float32), np.zeros(3))
    with pytest.raises(ValueError, match="capacity"):
        RingBuffer(0, 3)


@pytest.mark.timeout(30)
def test_wait_for_wakes_on_write_and_on_close():
    ring = RingBuffer(100, 1)
    assert not ring.wait_for(1, 0.01)  # times out
    writer = threading.Timer(0.05, ring.write, args=(np.ones((5, 1), np.float32), np.zeros(5)))
    writer.start()
    assert ring.wait_for(5, 5.0)
    closer = threading.Timer(0.05, ring.close)
    closer.start()
    assert not ring.wait_for(1000, 5.0)  # returns on close, target not reached
    assert ring.closed


@pytest.mark.timeout(60)
@contextlib.contextmanager
def _switch_interval(seconds: float):
    """The interpreter's thread switch interval set to ``seconds`` within the block."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(seconds)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_concurrent_writer_reader_never_returns_torn_data():
    """A writer thread hammers a small ring; every successful read is exactly the reference."""
    n_channels, capacity = 4, 512
    total = 200_000
    # Each sample's values encode its absolute index, so a torn read cannot pass.
    idx = np.arange(total, dtype=np.float32)
    data = np.repeat(idx[:, None], n_channels, axis=1).copy()
    ts = np.arange(total, dtype=np.float64)
    ring = RingBuffer(capacity, n_channels)
    done = threading.Event()

    def write():
        pos = 0
        rng = np.random.default_rng(3)
        while pos < total:
            n = int(rng.integers(1, 64))
            ring.write(data[pos : pos + n], ts[pos : pos + n])
            pos += n
        done.set()

    # Both threads run Python between their compiled calls: with the default 5 ms switch
    # interval the spinning reader held the GIL while the writer waited, ~15 ms a write (50-60 s
    # here, at the test's timeout); switching every 20 us keeps them interleaved.
    with _switch_interval(2e-5):
        thread = threading.Thread(target=write)
        thread.start()
        out = np.empty((200, n_channels), np.float32)
        out_ts = np.empty(200)
        good = failed = 0
        while not done.is_set() or good == 0:
            end = ring.written
            if end < 200:
                continue
            try:
                ring.read(end, out, out_ts)
            except OverrunError:
                failed += 1
                continue
            expected = np.arange(end - 200, end, dtype=np.float32)
            np.testing.assert_array_equal(out[:, 0], expected)
            np.testing.assert_array_equal(out[:, -1], expected)
            np.testing.assert_array_equal(out_ts, expected.astype(np.float64))
            good += 1
        thread.join()
    assert good > 0
    assert ring.overruns == failed


@settings(max_examples=60, deadline=None, database=None)
@given(
    capacity=st.integers(1, 64),
    chunks=st.lists(st.integers(0, 80), min_size=1, max_size=30),
    read_n=st.integers(1, 64),
)
def test_property_reads_equal_reference(capacity, chunks, read_n):
    total = sum(chunks)
    data, ts = _stream(max(total, 1), 2, seed=capacity)
    ring = RingBuffer(capacity, 2)
    pos = 0
    for n in chunks:
        ring.write(data[pos : pos + n], ts[pos : pos + n])
        pos += n
        k = min(read_n, capacity, pos)
        if k == 0:
            continue
        out = np.empty((k, 2), np.float32)
        ring.read(pos, out)
        np.testing.assert_array_equal(out, data[pos - k : pos])


def _resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_ring_memory_is_resident_from_construction():
    """The ring's pages are faulted in when it is made, not by the writer's first pass over it
    (on the 2-core VM each first touch of a 2 MiB page stalled the acquisition ~4 ms: late
    decisions for the first 8 s of every run)."""
    capacity, n_channels = 262_144, 64  # 64 MiB: mapped afresh, above malloc's mmap threshold
    before = _resident_bytes()
    ring = RingBuffer(capacity, n_channels)
    grown = _resident_bytes() - before
    assert ring.capacity == capacity
    assert grown >= 0.9 * capacity * n_channels * 4, f"only {grown / 2**20:.1f} MiB resident"


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_resident_zeros_are_zeros_in_memory_now():
    before = _resident_bytes()
    array = resident_zeros((4096, 2048), np.float32)  # 32 MiB
    grown = _resident_bytes() - before
    assert array.shape == (4096, 2048) and array.dtype == np.float32
    assert not array.any()
    assert grown >= 0.9 * array.nbytes
    before = _resident_bytes()
    lazy = np.zeros((4096, 2048), np.float32)  # what it replaces: mapped, not yet in memory
    assert _resident_bytes() - before < 0.1 * lazy.nbytes
