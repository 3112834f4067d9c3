"""The decision log never stops the decoding: a full disk, a log moved away or deleted, and the
lines written once the file can take them."""

import json
import logging
import os
import time

import pytest

from rtdecode.outputs import log as log_module
from rtdecode.outputs.log import JsonLinesLog


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_reported_the_lines_held_and_written_when_it_has_room(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(log_module, "_RETRY_S", 0.05)
    path = tmp_path / "decisions.jsonl"
    os.symlink("/dev/full", path)  # every write: ENOSPC, as on a full disk
    log = JsonLinesLog(path)
    with caplog.at_level(logging.WARNING, logger="rtdecode"):
        for k in range(5):
            log.write({"k": k})  # never raises
    assert log.error is not None and "No space left" in log.error
    assert log.held == 5 and log.errors >= 1
    assert any("cannot write the log" in r.message for r in caplog.records)
    # room again (the path now leads to a real file): the next write, a retry later, flushes all
    os.unlink(path)
    time.sleep(0.06)
    log.write({"k": 5})
    assert log.error is None and log.held == 0
    log.close()
    assert [d["k"] for d in _lines(path)] == list(range(6))


def test_a_log_moved_away_or_deleted_goes_on_in_a_new_file(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "_CHECK_S", 0.0)
    path = tmp_path / "decisions.jsonl"
    log = JsonLinesLog(path)
    log.write({"k": 0})
    path.rename(tmp_path / "moved.jsonl")  # an operator tidying up
    log.write({"k": 1})
    path.unlink()
    log.write({"k": 2})
    log.close()
    assert [d["k"] for d in _lines(tmp_path / "moved.jsonl")] == [0]
    assert [d["k"] for d in _lines(path)] == [2]  # k=1 went to the file deleted after it


def test_held_lines_are_bounded_and_the_dropped_counted(tmp_path, monkeypatch):
    monkeypatch.setattr(log_module, "_MAX_HELD", 10)
    monkeypatch.setattr(log_module, "_RETRY_S", 60.0)
    path = tmp_path / "decisions.jsonl"
    log = JsonLinesLog(path)
    log._failed(OSError(5, "Input/output error"), time.monotonic())  # a failing disk
    for k in range(25):
        log.write({"k": k})
    assert log.held == 10 and log.dropped == 15
    log.close()  # the disk is fine again: what is held is written at close
    assert [d["k"] for d in _lines(path)] == list(range(15, 25))


def test_closed_logs_still_refuse_writes(tmp_path):
    log = JsonLinesLog(tmp_path / "x.jsonl")
    log.close()
    with pytest.raises(RuntimeError, match="closed"):
        log.write({"k": 0})


def test_a_write_hung_in_the_file_hangs_only_its_own_thread(stuck_pipe, caplog):
    import threading

    log = JsonLinesLog(stuck_pipe.path)
    stuck_pipe.fill()
    hung = threading.Thread(target=log.write, args=({"n": 1},), daemon=True)
    hung.start()
    time.sleep(0.3)
    assert hung.is_alive()  # blocked in the file, holding the lock
    t0 = time.monotonic()
    log.write({"n": 2})  # another thread: its line is left to the hung one
    assert time.monotonic() - t0 < 0.5
    stuck_pipe.drain()
    hung.join(5.0)
    assert not hung.is_alive()
    assert [json.loads(x) for x in stuck_pipe.drain().splitlines()] == [{"n": 1}, {"n": 2}]
    stuck_pipe.fill()
    threading.Thread(target=log.write, args=({"n": 3},), daemon=True).start()
    time.sleep(0.3)
    t0 = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="rtdecode"):
        log.close()  # gives the hung write a few seconds, then leaves it
    assert time.monotonic() - t0 < 5.0
    assert "hangs in a write" in caplog.text
