"""Bad command-line values: each refused by argparse with exit code 2 and a message naming the
flag, before any model, file or stream is opened."""

from __future__ import annotations

import pytest

from rtdecode.cli.main import build_parser, main

RUN = ["run", "--model", "m.onnx", "--source", "eeg"]
MONITOR = ["monitor", "--source", "eeg"]
TRAIN = ["train", "--data", "a.edf", "--out", "m.onnx"]
EVALUATE = ["evaluate", "--model", "m.onnx", "--data", "a.edf"]
REPLAY = ["replay", "a.edf"]
NOT_FINITE = ["nan", "inf", "-inf"]


def _cases(command: list[str], flag: str, values: list[str]) -> list:
    return [pytest.param(command, flag, v, id=f"{command[0]} {flag} {v}") for v in values]


BAD = [
    *_cases(RUN, "--status-every", ["-1", *NOT_FINITE, "x"]),
    *_cases(["run", "--model", "m.onnx"], "--source", ["", " "]),
    *_cases(["run", "--model", "m.onnx"], "--source-type", [""]),
    *_cases(["run", "--model", "m.onnx"], "--source-id", [""]),
    *_cases(RUN, "--resolve-timeout", ["0", "-1", *NOT_FINITE]),
    *_cases(RUN, "--duration", ["0", "-5", *NOT_FINITE]),
    *_cases(RUN, "--max-age-s", ["0", *NOT_FINITE]),
    *_cases(RUN, "--stall-s", ["0", *NOT_FINITE]),
    *_cases(RUN, "--log-rotate-mb", ["0", "nan", "inf"]),
    *_cases(RUN, "--log-rotate-hours", ["-1", "nan", "inf"]),
    *_cases(RUN, "--log-fsync-s", ["0", "nan"]),
    *_cases(RUN, "--log", [""]),
    *_cases(RUN, "--on-threshold", ["nan", "-0.1", "1.5"]),
    *_cases(RUN, "--off-threshold", ["nan", "2"]),
    *_cases(RUN, "--on-dwell", ["-1", "nan", "inf"]),
    *_cases(RUN, "--off-dwell", ["-1", "inf"]),
    *_cases(RUN, "--margin", ["nan", "-0.2", "7"]),
    *_cases(RUN, "--dwell", ["-1", "nan", "inf"]),
    *_cases(RUN, "--pulse-ms", ["0", "-10", "nan", "inf"]),
    *_cases(RUN, "--refractory-s", ["-1", "nan", "inf"]),
    *_cases(["demo"], "--duration", ["0", "inf"]),
    *_cases(["demo"], "--seed", ["-1", "1.5"]),
    *_cases(["simulate"], "--channels", ["0", "-3", "2.5"]),
    *_cases(["simulate"], "--rate", ["0", "nan", "inf"]),
    *_cases(["simulate"], "--chunk", ["0", "-5"]),
    *_cases(["simulate"], "--wait-for-consumer", ["-1", "nan", "inf"]),
    *_cases(["simulate"], "--seed", ["-1"]),
    *_cases(["simulate"], "--name", [""]),
    *_cases(MONITOR, "--channels-per-page", ["0", "-1"]),
    *_cases(MONITOR, "--fps", ["0", "nan", "inf"]),
    *_cases(MONITOR, "--nice", ["-5"]),
    *_cases(TRAIN, "--folds", ["1", "0", "-3", "x"]),
    *_cases(TRAIN, "--map", ["x", "=light", "s1=", "s1=light,x", ","]),
    *_cases(TRAIN, "--window-s", ["0", "-2", "nan", "inf"]),
    *_cases(TRAIN, "--hop-s", ["0", "nan", "inf"]),
    *_cases(TRAIN, "--baseline-s", ["0", "inf"]),
    *_cases(TRAIN, "--epoch-s", ["0", "nan"]),
    *_cases(TRAIN, "--trees", ["0", "-1"]),
    *_cases(TRAIN, "--max-depth", ["0"]),
    *_cases(TRAIN, "--max-false-alarms-per-hour", ["-1", "nan", "inf"]),
    *_cases(TRAIN, "--seed", ["-1"]),
    *_cases(TRAIN, "--classes", ["", ","]),
    *_cases(TRAIN, "--bands", [""]),
    *_cases(EVALUATE, "--map", ["x"]),
    *_cases(EVALUATE, "--channels", [""]),
    *_cases(REPLAY, "--chunk", ["-5", "0", "1.5"]),
    *_cases(REPLAY, "--speed", ["0", "-1", "nan", "inf"]),
    *_cases(REPLAY, "--wait-for-consumer", ["-1", "nan"]),
    *_cases(REPLAY, "--map", ["x"]),
    *_cases(REPLAY, "--name", [""]),
]


@pytest.mark.parametrize(("command", "flag", "value"), BAD)
def test_a_bad_value_is_exit_2_naming_the_flag(command, flag, value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*command, f"{flag}={value}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert repr(value) in err or repr(value.split(",")[-1]) in err  # the value as given
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "attribute", "parsed"),
    [
        ([*RUN, "--status-every", "0"], "status_every", 0.0),  # 0: no status line
        ([*RUN, "--status-every", "0.5"], "status_every", 0.5),
        ([*RUN, "--log-rotate-hours", "0"], "log_rotate_hours", 0.0),  # 0: never
        ([*RUN, "--on-threshold", "1"], "on_threshold", 1.0),
        ([*RUN, "--dwell", "0"], "dwell", 0.0),
        ([*MONITOR, "--nice", "0"], "nice", 0),
        ([*TRAIN, "--folds", "2"], "folds", 2),
        (
            [*TRAIN, "--map", " s1 = light ,s2=light", "--map", "s3=deep"],
            "map",
            [[("s1", "light"), ("s2", "light")], [("s3", "deep")]],
        ),
        ([*REPLAY], "chunk", None),  # None: about 1 ms of samples
        ([*REPLAY, "--chunk", "1"], "chunk", 1),
    ],
)
def test_the_edges_of_what_is_allowed_parse(argv, attribute, parsed):
    assert getattr(build_parser().parse_args(argv), attribute) == parsed


def test_map_flags_make_one_renaming():
    from rtdecode.cli.offline import _parse_map

    args = build_parser().parse_args([*TRAIN, "--map", "s1=light,s2=light", "--map", "s3=deep"])
    assert _parse_map(args.map) == {"s1": "light", "s2": "light", "s3": "deep"}
    assert _parse_map(None) == {}
