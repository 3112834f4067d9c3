"""Files written whole or not at all: staged, then moved into place with interrupts held."""

import signal

import pytest

from rtdecode.common import files
from rtdecode.common.files import commit_files, discard_staged, staging_path


def _staged(folder, names):
    staged = {}
    for name in names:
        target = folder / name
        target.write_text("old")
        staged[target] = staging_path(target)
        staged[target].write_text("new")
    return staged


def test_staged_files_are_hidden_beside_their_target(tmp_path):
    path = staging_path(tmp_path / "m.onnx")
    assert path.parent == tmp_path and path.name.startswith(".m.onnx.")


def test_an_interrupt_while_files_move_is_held_until_all_are_moved(tmp_path, monkeypatch):
    staged = _staged(tmp_path, ["m.onnx", "m.json", "m.md"])
    replace = files.os.replace
    moved = []

    def replace_then_interrupt(src, dst):
        replace(src, dst)
        moved.append(dst)
        if len(moved) == 1:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C after the first of three

    monkeypatch.setattr(files.os, "replace", replace_then_interrupt)
    assert commit_files(staged) == (signal.SIGINT,)
    assert all(target.read_text() == "new" for target in staged)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.md", "m.onnx"]
    # the handlers are back: Ctrl-C interrupts again
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)


def test_discard_removes_what_is_left_staged(tmp_path):
    staged = _staged(tmp_path, ["a", "b"])
    discard_staged(staged)
    discard_staged(staged)  # twice is harmless
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
    assert (tmp_path / "a").read_text() == "old"


def test_a_folder_fingerprint_follows_its_files_content(tmp_path):
    file_fingerprint = files.file_fingerprint
    session = tmp_path / "session"
    (session / "sub").mkdir(parents=True)
    (session / "CSC1.ncs").write_bytes(b"a" * 1000)
    (session / "sub" / "CSC2.ncs").write_bytes(b"b" * 1000)
    first = file_fingerprint(session)
    copy = tmp_path / "copy"
    (copy / "sub").mkdir(parents=True)
    (copy / "CSC1.ncs").write_bytes(b"a" * 1000)
    (copy / "sub" / "CSC2.ncs").write_bytes(b"b" * 1000)
    assert first is not None and file_fingerprint(copy) == first
    (copy / "sub" / "CSC2.ncs").write_bytes(b"b" * 999 + b"c")
    assert file_fingerprint(copy) != first
    (copy / "sub" / "CSC2.ncs").write_bytes(b"b" * 1000)
    (copy / "sub" / "CSC2.ncs").rename(copy / "sub" / "CSC3.ncs")
    assert file_fingerprint(copy) != first
