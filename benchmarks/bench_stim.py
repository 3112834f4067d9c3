"""Closed-loop latency: from a window's last sample being pushed to the trigger command's first
byte arriving at the device, beside the floor of the same run.

    python benchmarks/bench_stim.py [--seconds 120] [--channels 64] [--rate 32000]
                                    [--chunk-ms 1] [--stamps push|nominal] [--stalls]
                                    [--player] [--realtime PRIORITY] [--second-relay]
                                    [--record]
    python benchmarks/bench_stim.py idle [--record]

Four processes, as on a rig: a source (``bench_stim.py source``) pushing 64 ch x 32 kHz of noise
in 1 ms chunks (``--chunk-ms``) stamped at their push (``--stamps``), whose amplitude switches
between two levels every 0.5 s (``--stalls``: its pushing thread stalls 20-50 ms about every
second, as a lab's source that makes or reads the next block of data does, then catches up;
``--player``: MNE-LSL's ``PlayerLSL`` plays the same noise from a FIF file, its own timing and
stamps; ``--rate``/``--channels``: EEG rates); a
real ``rtdecode run --stim`` with a model trained here to tell the two levels apart (state model,
no hysteresis: a state change at every switch) and a rule per state (``enter:``: a pulse at each
change); a floor relay (``bench_stim.py relay``) that reads the same stream and computes nothing,
republishing each pull's timestamps on a pseudo-terminal of its own; and this process, holding
the trigger device on a pseudo-terminal (``rtdecode.stimulation.emulator``), which notes when
each command's first byte arrives, and the floor's port, read the same way.

Per trigger: **latency** = first byte at the device minus the window's last sample's timestamp
(with 1 ms chunks stamped at their push, about that sample's push; in larger chunks pylsl dates
the samples before the last back at the nominal rate, and ``--stamps nominal`` sends nominal
times: the excess below is what compares, both sides sharing the stamp);
**floor** = the first byte of the relay's republished frame for the pull that held that sample
arriving at its own pseudo-terminal (read in this process as the device reads its own), minus the
same timestamp: the LSL hop, an output hop of the same kind and the machine's scheduling, with
nothing computed; **excess** = latency - floor. Also shown: when the relay's pull returned (the
floor without an output hop, as recorded before 2026-12-03 19:45), and, at every decision (not
only the triggers'), when it was made over when the relay's pull returned.
**Write after decision** = the command's write minus the moment the decision was made
(``decision_to_write_ms - age_ms`` from the decision log). With ``--realtime N`` the decoder
(``rtdecode run --realtime N``), the relay and the device's process run at that ``SCHED_FIFO``
priority, the source at normal priority (as another program on the machine). Every trigger is
accounted for: the log's trigger lines, the device's commands and their acknowledgements must
agree. ``--record`` appends the run to ``benchmarks/results/bench_stim.jsonl``.

``--second-relay``: a second floor relay, the same program as the first, reads the same stream
beside it. Its excess over the first, at the same samples, is what a decoder that computed
nothing would show: the spread this machine's scheduling alone puts between two processes
waiting on one stream (measured at every decision's last sample, not only the triggers').

``idle``: what the decision's own work (the window's last chunk through the features, then the
model) costs in this process when the thread was idle before it, as the decode thread is
between hops: the same model and samples, the window-ending chunk pushed right after the
previous chunk, or after sleeping 1, 10 or 50 ms. Recorded in ``results/bench_stim_idle.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import tty
from pathlib import Path

import numpy as np
import pylsl
from _record import record  # noqa: E402  (benchmarks/ is the script's folder)
from bench_decoder import machine  # noqa: E402
from bench_scaling import model_is_current  # noqa: E402

from rtdecode.cli.common import PACKAGE_PARENT
from rtdecode.common.channels import default_channel_labels
from rtdecode.common.threads import run_at_realtime_priority
from rtdecode.config import DEFAULT_BANDS, FeatureConfig, StateHysteresis
from rtdecode.decoding.model import ModelContract
from rtdecode.features.streaming import extract_features
from rtdecode.stimulation.emulator import PtyTriggerDevice

HERE = Path(__file__).resolve().parent
RT = [sys.executable, "-m", "rtdecode"]
SWITCH_S = 0.5  # the source's amplitude changes this often
LOUD = 4.0
_STOP: list = []
_FLOOR_FRAME = struct.Struct("<dd")  # a pull's first and last timestamps


def noise(n: int, n_channels: int, start: int, fs_hz: float, rng) -> np.ndarray:
    """Noise whose amplitude is 20 or 20 x LOUD, switching every SWITCH_S from sample ``start``."""
    x = rng.standard_normal((n, n_channels)).astype(np.float32) * 20.0
    loud = ((start + np.arange(n)) // int(SWITCH_S * fs_hz)) % 2 == 1
    x[loud] *= LOUD
    return x


def make_model(path: Path, n_channels: int, fs_hz: float) -> Path:
    """A quiet/loud state model of the decoder's real shape (trained on features of this
    benchmark's noise, computed by rtdecode's own feature code; reused when the file at
    ``path`` holds these features)."""
    from rtdecode.training.boosting import XGBParams, export_onnx, fit_xgboost

    # a short window (a state change in every window of SWITCH_S): the bands it resolves
    bands = tuple(b for b in DEFAULT_BANDS if b.lo_hz >= 15.0)
    config = FeatureConfig(fs_hz=fs_hz, window_s=0.25, hop_s=0.05, bands=bands, ratios=())
    if model_is_current(path, config):
        return path
    rng = np.random.default_rng(0)
    n = int(8 * SWITCH_S * fs_hz)
    ends, X = extract_features(noise(n, n_channels, 0, fs_hz, rng), config)
    window = config.window_samples
    # label a window by its regime when it lies inside one (the others are left out)
    regime = lambda s: (s // int(SWITCH_S * fs_hz)) % 2  # noqa: E731
    keep = np.array([regime(e - window) == regime(e - 1) for e in ends])
    y = np.array([regime(e - 1) for e in ends])[keep]
    booster = fit_xgboost(X[keep], y, None, None, 2, XGBParams(n_estimators=50, max_depth=3))
    contract = ModelContract(
        task="state",
        classes=("quiet", "loud"),
        n_channels=n_channels,
        channel_labels=None,
        features=config,
        feature_names=tuple(config.feature_names(default_channel_labels(n_channels))),
        hysteresis=StateHysteresis(margin=0.0, dwell_s=0.0),
        training={"data": "bench_stim noise, quiet/loud (benchmark model)"},
    )
    return export_onnx(booster, contract, path, X[:20])


def run_source(
    name: str,
    n_channels: int,
    fs_hz: float,
    chunk: int,
    seconds: float,
    stamps: str = "push",
    stalls: bool = False,
) -> None:
    """Push the noise in ``chunk``-sample chunks at the nominal rate, each chunk's last sample
    stamped at its push (``push``) or at its nominal time from the first push (``nominal``);
    with ``stalls``, the pushing thread stops 20-50 ms about every second (uniform 0.5-1.5 s
    apart) and then pushes what is due at once."""
    rng = np.random.default_rng(1)
    stall_rng = np.random.default_rng(2)
    next_stall = time.monotonic() + stall_rng.uniform(0.5, 1.5)
    pool_n = int(2 * SWITCH_S * fs_hz)  # one quiet and one loud half, looped
    pool = noise(pool_n, n_channels, 0, fs_hz, rng)
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(name, "EEG", n_channels, fs_hz, "float32", name),
        chunk_size=chunk,
        max_buffered=30,
    )
    t0, k = time.monotonic(), 0
    lsl_t0 = pylsl.local_clock()
    wraps = pool_n % chunk != 0  # a chunk may run over the pool's end (1024-sample blocks)
    while time.monotonic() - t0 < seconds and not _STOP:
        delay = t0 + (k + 1) * chunk / fs_hz - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if stalls and time.monotonic() >= next_stall:
            time.sleep(stall_rng.uniform(0.020, 0.050))
            next_stall = time.monotonic() + stall_rng.uniform(0.5, 1.5)
        at = (k * chunk) % pool_n
        block = (
            pool.take(np.arange(at, at + chunk) % pool_n, axis=0)
            if wraps
            else pool[at : at + chunk]
        )
        stamp = pylsl.local_clock() if stamps == "push" else lsl_t0 + (k + 1) * chunk / fs_hz
        outlet.push_chunk(block, stamp)
        k += 1


def run_player(name: str, n_channels: int, fs_hz: float, chunk: int, seconds: float) -> None:
    """MNE-LSL's ``PlayerLSL``, its code untouched, playing the noise from a FIF file (made once
    in the temporary folder) in ``chunk``-sample chunks, for ``seconds``.

    The file holds 8 switches and one sample more: mne-lsl 1.14's player, when a loop brings it
    exactly to the file's end, pushes the whole file again as one chunk (see bench_sources). Its
    channels are ``misc``, so MNE keeps the values as written (microvolts, as the model learnt
    them), not as volts."""
    import mne
    from mne_lsl.player import PlayerLSL

    fif = Path(tempfile.gettempdir()) / f"bench_stim_{n_channels}x{fs_hz:g}_raw.fif"
    if not fif.is_file():
        n = int(8 * SWITCH_S * fs_hz) + 1
        x = noise(n, n_channels, 0, fs_hz, np.random.default_rng(1))
        info = mne.create_info([f"ch{i:03d}" for i in range(n_channels)], fs_hz, "misc")
        mne.io.RawArray(x.T.astype(np.float64), info, verbose="error").save(
            fif, fmt="single", overwrite=True, verbose="error"
        )
    player = PlayerLSL(fif, chunk_size=chunk, name=name, source_id=name)
    player.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and not _STOP:
        time.sleep(0.1)
        if not player.running:
            raise SystemExit("PlayerLSL stopped (its log says why)")
    player.stop()


def run_relay(name: str, out: str, floor_port: str) -> None:
    """The floor: read the stream, compute nothing, and republish each pull's first and last
    timestamps on ``floor_port`` (a pseudo-terminal, as the device's), noting when each pull
    returned (written to ``out`` as JSON when stopped)."""
    info = pylsl.resolve_byprop("name", name, timeout=20)[0]
    inlet = pylsl.StreamInlet(info, max_buflen=30, processing_flags=0)
    n = info.channel_count()
    # the stream's own sample type (PlayerLSL sends double64)
    dtype = {pylsl.cf_double64: np.float64, pylsl.cf_int32: np.int32, pylsl.cf_int16: np.int16}
    buf = np.empty((4096, n), dtype=dtype.get(info.channel_format(), np.float32))
    port = os.open(floor_port, os.O_WRONLY | os.O_NOCTTY)
    pulls = []
    while not _STOP:
        # wait in pull_sample (pull_chunk with a timeout waits for a full buffer), then drain
        sample, ts = inlet.pull_sample(timeout=0.2)
        if sample is None:
            continue
        _, got = inlet.pull_chunk(timeout=0.0, max_samples=4096, dest_obj=buf)
        last = float(got[-1]) if got else ts
        os.write(port, _FLOOR_FRAME.pack(ts, last))
        pulls.append((pylsl.local_clock(), ts, last))
    os.close(port)
    Path(out).write_text(json.dumps(pulls))


class FloorPort:
    """The floor's end of the relay's republishing: a pseudo-terminal read as the device reads
    its own, noting when each frame's first byte arrived (LSL clock) with its timestamps."""

    def __init__(self) -> None:
        self._master, self._slave = pty.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self.frames: list[tuple[float, float, float]] = []  # (arrived, first ts, last ts)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buf, first_t = b"", 0.0
        size = _FLOOR_FRAME.size
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(self._master, 4096)
            except OSError:
                continue  # the relay closed its side
            if not buf:
                first_t = pylsl.local_clock()
            buf += data
            while len(buf) >= size:
                first, last = _FLOOR_FRAME.unpack(buf[:size])
                self.frames.append((first_t, first, last))
                buf = buf[size:]
                first_t = pylsl.local_clock()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self._master)
        os.close(self._slave)


def frame_arrivals(frames: np.ndarray, stamps: np.ndarray) -> np.ndarray:
    """When the relay's pull that held each of ``stamps`` returned, or its republished frame
    reached its port (LSL clock; NaN where none holds it). ``frames`` rows: (returned or
    arrived, first ts, last ts), in order."""
    if len(frames) == 0:
        return np.full(len(stamps), np.nan)
    k = np.searchsorted(frames[:, 2], stamps - 1e-7)
    held = k < len(frames)
    k = np.minimum(k, len(frames) - 1)
    held &= frames[k, 1] <= stamps + 1e-7
    return np.where(held, frames[k, 0], np.nan)


def run_idle(n_channels: int, fs_hz: float, chunk: int, record_it: bool) -> None:
    """The decision's work, after the thread idled for 0, 1, 10 or 50 ms (see the docstring)."""
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.features.streaming import StreamingFeatures, one_blas_thread

    model = OnnxModel(
        make_model(Path(tempfile.gettempdir()) / f"bench_stim_{n_channels}.onnx", n_channels, fs_hz)
    )
    config = model.contract.features
    x = noise(int(40 * config.hop_s * fs_hz), n_channels, 0, fs_hz, np.random.default_rng(2))
    figures: dict = {}
    print("| idle before the window's last chunk | features p50 / p90 ms | model p50 / p90 ms |")
    print("|---|---|---|")
    with one_blas_thread():
        for idle_ms in (0, 1, 10, 50):
            features = StreamingFeatures(config, n_channels)
            feat, score = [], []
            for _ in range(3 if idle_ms < 50 else 1):
                for k in range(0, len(x) - chunk + 1, chunk):
                    ends = (
                        features.samples_in
                        < features.next_decision_sample()
                        <= (features.samples_in + chunk)
                    )
                    if ends and idle_ms:
                        time.sleep(idle_ms * 1e-3)
                    t0 = time.perf_counter()
                    rows = features.push(x[k : k + chunk])
                    t1 = time.perf_counter()
                    for row in rows:
                        t2 = time.perf_counter()
                        model.predict_proba(row.features[None, :])
                        score.append(time.perf_counter() - t2)
                        feat.append(t1 - t0)
            f_ms, m_ms = np.array(feat[5:]) * 1e3, np.array(score[5:]) * 1e3
            p = lambda v, q: float(np.percentile(v, q))  # noqa: E731
            print(
                f"| {idle_ms} ms ({f_ms.size} windows) | {p(f_ms, 50):.3f} / {p(f_ms, 90):.3f} "
                f"| {p(m_ms, 50):.3f} / {p(m_ms, 90):.3f} |"
            )
            for name, v in (("features", f_ms), ("model", m_ms)):
                figures[f"{name}_after_{idle_ms}ms_p50_ms"] = p(v, 50)
                figures[f"{name}_after_{idle_ms}ms_p90_ms"] = p(v, 90)
    if record_it:
        record(
            "bench_stim_idle",
            figures,
            setup={"channels": n_channels, "rate_hz": fs_hz, "chunk_samples": chunk},
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "role", nargs="?", choices=("bench", "source", "relay", "idle"), default="bench"
    )
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--rate", type=float, default=32000.0)
    ap.add_argument("--chunk-ms", type=float, default=1.0)
    ap.add_argument(
        "--stamps",
        choices=("push", "nominal"),
        default="push",
        help="the source stamps each chunk at its push (default) or at its nominal time",
    )
    ap.add_argument(
        "--stalls",
        action="store_true",
        help="the source's pushing thread stalls 20-50 ms about every second, then catches up",
    )
    ap.add_argument(
        "--player", action="store_true", help="MNE-LSL's PlayerLSL is the source (its own stamps)"
    )
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--floor-port", default=None)
    ap.add_argument("--record", action="store_true", help="append the run to results/")
    ap.add_argument(
        "--realtime",
        type=int,
        default=None,
        metavar="PRIORITY",
        help="the decoder (rtdecode run --realtime), the relay and the device at this SCHED_FIFO "
        "priority",
    )
    ap.add_argument(
        "--second-relay",
        action="store_true",
        help="a second floor relay beside the first: its excess over the first is the spread of "
        "a decoder that computes nothing",
    )
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: _STOP.append(1))
    chunk = max(1, round(a.chunk_ms * 1e-3 * a.rate))
    if a.role == "source" and a.player:
        run_player(a.name, a.channels, a.rate, chunk, a.seconds + 60)
        return
    if a.role == "source":
        run_source(a.name, a.channels, a.rate, chunk, a.seconds + 60, a.stamps, a.stalls)
        return
    rt = [] if a.realtime is None else ["--realtime", str(a.realtime)]
    if a.role == "idle":
        print(machine(), flush=True)
        run_idle(a.channels, a.rate, chunk, a.record)
        return
    if a.role == "relay":
        if a.realtime is not None:  # the floor scheduled as the decoder is
            run_at_realtime_priority(a.realtime)
        run_relay(a.name, a.out, a.floor_port)
        return

    print(machine(), flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench_stim-"))
    model = make_model(
        Path(tempfile.gettempdir()) / f"bench_stim_{a.channels}x{a.rate:g}.onnx",
        a.channels,
        a.rate,
    )
    name = f"bench-stim-{time.monotonic_ns()}"
    me = [sys.executable, str(Path(__file__).resolve())]
    common = ["--name", name, "--channels", str(a.channels), "--rate", str(a.rate)]
    source = subprocess.Popen(
        me
        + ["source", *common, "--seconds", str(a.seconds), "--chunk-ms", str(a.chunk_ms)]
        + ["--stamps", a.stamps]
        + (["--stalls"] if a.stalls else [])
        + (["--player"] if a.player else [])
    )
    relay_out = tmp / "relay.json"
    floor_port = FloorPort()
    relay = subprocess.Popen(
        me + ["relay", *common, "--out", str(relay_out), "--floor-port", floor_port.port, *rt]
    )
    relays = [relay]
    if a.second_relay:
        second_port = FloorPort()
        relays.append(
            subprocess.Popen(
                me
                + ["relay", *common, "--out", str(tmp / "relay2.json")]
                + ["--floor-port", second_port.port, *rt]
            )
        )
    if a.realtime is not None:
        # this process stands in for the board, whose microcontroller waits for nobody
        run_at_realtime_priority(a.realtime)
    log = tmp / "decisions.jsonl"
    with PtyTriggerDevice() as device:
        rules = tmp / "rules.toml"
        rules.write_text(
            f'[output]\nport = "{device.port}"\n'
            '[[rule]]\nname = "to-loud"\nwhen = "enter:loud"\npulse_ms = 1\n'
            '[[rule]]\nname = "to-quiet"\nwhen = "enter:quiet"\npulse_ms = 1\nchannel = 1\n'
        )
        decoder = subprocess.run(
            RT
            + ["run", "--model", str(model), "--source", name, "--headless", "--status-every", "0"]
            + ["--stim", str(rules), "--log", str(log), "--duration", str(a.seconds)]
            + rt,
            cwd=PACKAGE_PARENT,
            capture_output=True,
            text=True,
        )
        received = [r for r in device.received if r.command.command == b"P"]
    for proc in (*relays, source):
        proc.terminate()
        proc.wait(20)
    floor_port.close()
    if a.second_relay:
        second_port.close()
    if decoder.returncode != 0:
        raise SystemExit(f"rtdecode run failed:\n{decoder.stderr[-3000:]}")
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    age = {d["end_sample"]: d["age_ms"] for d in lines if "probs" in d}
    triggers = [d for d in lines if d.get("event") == "trigger" and d["action"] == "pulse"]
    acked = sum(1 for d in triggers if d.get("ack", {}).get("status") == "ok")
    pulls = np.array(json.loads(relay_out.read_text()))  # (returned, first ts, last ts)
    frames = np.array(floor_port.frames)  # (arrived at the floor's port, first ts, last ts)

    # drop the first 5 s (connections, caches)
    t_start = triggers[0]["t"] + 5.0 if triggers else 0.0
    kept = [(d, r) for d, r in zip(triggers, received) if d["t"] >= t_start]
    at = np.array([d["t"] for d, _ in kept])
    lat_ms = (np.array([r.first_byte_t for _, r in kept]) - at) * 1e3
    floor_ms = (frame_arrivals(pulls, at) - at) * 1e3  # the relay's pull that held the sample
    port_floor_ms = (frame_arrivals(frames, at) - at) * 1e3  # its republished frame at its port
    age_ms = np.array([age[d["end_sample"]] for d, _ in kept])
    write_ms = np.array([d["decision_to_write_ms"] for d, _ in kept]) - age_ms
    wire_ms = np.array([(r.first_byte_t - d["written_t"]) * 1e3 for d, r in kept])
    excess = lat_ms - floor_ms
    port_excess = lat_ms - port_floor_ms
    ok = np.isfinite(port_excess)
    # every decision, not only the triggers: made (its timestamp plus its age) over the relay's
    # pull of its last sample (no output hop on either side)
    decided = [d for d in lines if "probs" in d and d["t"] >= t_start]
    stamps = np.array([d["t"] for d in decided])
    made = stamps + np.array([d["age_ms"] for d in decided]) * 1e-3
    decision_excess = (made - frame_arrivals(pulls, stamps)) * 1e3
    second = {}
    if a.second_relay:
        # the second relay's excess over the first at every decision's last sample after the
        # first 5 s, and at the triggers' (the decoder's own excess is measured at these)
        frames2 = np.array(second_port.frames)
        second["decisions"] = (
            frame_arrivals(frames2, stamps) - frame_arrivals(frames, stamps)
        ) * 1e3
        second["triggers"] = (frame_arrivals(frames2, at) - frame_arrivals(frames, at)) * 1e3

    def pct(x, q):
        x = x[np.isfinite(x)]
        return float(np.percentile(x, q)) if x.size else float("nan")

    figures = {
        "triggers": len(triggers),
        "device_commands": len(received),
        "acknowledged": acked,
        "measured": int(ok.sum()),
        "latency_p50_ms": pct(lat_ms, 50),
        "latency_p99_ms": pct(lat_ms, 99),
        "latency_max_ms": pct(lat_ms, 100),
        "floor_p50_ms": pct(floor_ms, 50),
        "floor_p99_ms": pct(floor_ms, 99),
        "excess_p50_ms": pct(excess, 50),
        "excess_p99_ms": pct(excess, 99),
        "excess_max_ms": pct(excess, 100),
        "port_floor_p50_ms": pct(port_floor_ms, 50),
        "port_floor_p99_ms": pct(port_floor_ms, 99),
        "port_excess_p50_ms": pct(port_excess, 50),
        "port_excess_p99_ms": pct(port_excess, 99),
        "port_excess_max_ms": pct(port_excess, 100),
        "write_after_decision_p50_ms": pct(write_ms, 50),
        "write_after_decision_p99_ms": pct(write_ms, 99),
        "decision_age_p50_ms": pct(age_ms, 50),
        "decision_age_p99_ms": pct(age_ms, 99),
        "write_to_device_p50_ms": pct(wire_ms, 50),
        "write_to_device_p99_ms": pct(wire_ms, 99),
        "decisions_measured": int(np.isfinite(decision_excess).sum()),
        "decision_excess_p50_ms": pct(decision_excess, 50),
        "decision_excess_p99_ms": pct(decision_excess, 99),
        "decision_excess_max_ms": pct(decision_excess, 100),
    }
    for where, x in second.items():
        figures[f"second_relay_excess_{where}_n"] = int(np.isfinite(x).sum())
        for q in (50, 99, 100):
            figures[f"second_relay_excess_{where}_p{q}_ms"] = pct(x, q)
    source_kind = (
        "PlayerLSL"
        if a.player
        else f"stamped {a.stamps}" + (", stalling 20-50 ms about every second" if a.stalls else "")
    )
    print(
        f"\n{a.channels} ch x {a.rate / 1000:g} kHz, {a.chunk_ms:g} ms chunks, {source_kind}, "
        f"{a.seconds:g} s: "
        f"{len(triggers)} triggers, {len(received)} commands at the device, {acked} acknowledged"
    )
    print(
        "| from the window's last sample's push (steps: between the points named) | p50 ms | p99 ms | max ms |"
    )
    print("|---|---|---|---|")
    for label, x in (
        ("first byte at the device (rtdecode)", lat_ms),
        ("floor: the relay's republished frame at its port", port_floor_ms),
        ("**excess over the floor**", port_excess),
        ("the relay's pull returns", floor_ms),
        ("excess over the relay's pull", excess),
        ("steps: the decision made (age from the push)", age_ms),
        ("steps: decided -> command handed to the port", write_ms),
        ("steps: handed to the port -> first byte at the device", wire_ms),
    ):
        print(f"| {label} | {pct(x, 50):.3f} | {pct(x, 99):.3f} | {pct(x, 100):.3f} |")
    print(
        f"| every decision ({np.isfinite(decision_excess).sum()}): made, over the relay's pull | "
        f"{pct(decision_excess, 50):.3f} | {pct(decision_excess, 99):.3f} | "
        f"{pct(decision_excess, 100):.3f} |"
    )
    for where, x in second.items():
        label = f"a second relay's excess over the floor, at the {where}' last samples"
        print(
            f"| {label} ({np.isfinite(x).sum()}) | {pct(x, 50):.3f} | {pct(x, 99):.3f} | "
            f"{pct(x, 100):.3f} |"
        )
    print(
        f"port write after the decision: p50 {figures['write_after_decision_p50_ms']:.3f} ms, "
        f"p99 {figures['write_after_decision_p99_ms']:.3f} ms"
    )
    if len(triggers) != len(received) or acked != len(triggers):
        print("NOT every trigger accounted for", flush=True)
    if a.record:
        record(
            "bench_stim",
            figures,
            setup={
                "channels": a.channels,
                "rate_hz": a.rate,
                "chunk_ms": a.chunk_ms,
                "stamps": "player" if a.player else a.stamps,
                "stalls": a.stalls,
                "source": "PlayerLSL" if a.player else "pylsl outlet",
                "seconds": a.seconds,
                "device": "PtyTriggerDevice (pseudo-terminal)",
                "realtime_priority": a.realtime,
                "second_relay": a.second_relay,
            },
        )


if __name__ == "__main__":
    main()
