"""A newcomer's first minute: the demo shows a state change within its first 20 s, and liblsl's
console lines stay hidden unless -v is given (or the lab's own liblsl config sets a level)."""

import os
import re
import subprocess
import sys

import pytest

from rtdecode.cli.common import PACKAGE_PARENT

pytestmark = [pytest.mark.lsl, pytest.mark.timeout(180)]

_LIBLSL_LINE = re.compile(r"INFO\||ERR\||transmission broke off")


def _rtdecode(*args, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "rtdecode", *args],
        cwd=PACKAGE_PARENT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_the_demo_shows_a_state_change_within_20_s_and_no_liblsl_lines():
    done = _rtdecode("demo", "--headless", "--duration", "20")
    assert done.returncode == 0, done.stderr
    changes = re.findall(r"decoded (\w+)\s+truth (\w+)", done.stdout)
    assert len(changes) >= 2, done.stdout
    assert changes[0][0] == "normal" and ("seizure", "seizure") in changes[1:], done.stdout
    assert "for 20 s" in done.stdout  # it says how long it runs
    assert not _LIBLSL_LINE.search(done.stderr), done.stderr


@pytest.mark.parametrize(
    "verbose, config, shown",
    [(False, None, False), (True, None, True), (False, "[log]\nlevel = 0\n", True)],
    ids=["quiet", "-v", "lab-config-wins"],
)
def test_liblsl_console_lines_only_with_v_or_the_labs_config(tmp_path, verbose, config, shown):
    env = {}
    if config is not None:
        (tmp_path / "lsl_api.cfg").write_text(config)
        env["LSLAPICFG"] = str(tmp_path / "lsl_api.cfg")
    args = ["-v"] if verbose else []
    args += ["simulate", "--duration", "1", "--channels", "2", "--rate", "250"]
    done = _rtdecode(*args, "--name", f"rtd-quiet-{os.getpid()}-{verbose}", env=env)
    assert done.returncode == 0, done.stderr
    assert bool(re.search(r"INFO\|", done.stderr)) == shown, done.stderr


def test_bundled_models_by_name_and_their_list(capsys):
    from rtdecode.cli.main import main
    from rtdecode.models import bundled_model_path

    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    for name in ("seizure", "sleep"):
        assert name in listed and str(bundled_model_path(name)) in listed
    assert main(["info", "sleep"]) == 0
    assert "task: state" in capsys.readouterr().out
    with pytest.raises(SystemExit) as refused:
        main(["info", "sezure"])
    assert refused.value.code == 2
    assert "no bundled model of that name (bundled: seizure, sleep" in capsys.readouterr().err


def test_the_status_line_shows_no_latency_before_the_first_decision():
    from rtdecode.decoding.status import DecoderStatus

    empty = DecoderStatus.empty(("wake", "nrem"))
    assert "latency -" in empty.line() and "0.00" not in empty.line()
