"""Phase-targeted stimulation: which causal estimator, and how close pulses land to the phase.

    python benchmarks/bench_phase.py methods [--minutes 4] [--no-real-data] [--record]
    python benchmarks/bench_phase.py targets [--minutes 10] [--no-real-data] [--record]
    python benchmarks/bench_phase.py live [--seconds 150] [--source KIND] [--record]
    python benchmarks/bench_phase.py live --dreams [--seconds 900] [--record]

``methods`` compares the estimators of :mod:`rtdecode.phase.estimators` (endpoint-corrected
Hilbert transform, AR forward prediction + Hilbert) and their window lengths, through the
decoder's own path (32 kHz -> decimation -> :class:`rtdecode.phase.tracker.PhaseTracker`): at
every decision (hop 0.1 s) inside the target state the next crossing of the target phase is
predicted, as the stimulation engine schedules it (landing between the decision plus the
output's latency and one hop later), and scored against the true phase: the simulator's known
phase (``phase_rhythms``), and on the real recording the non-causal reference (zero-phase
band-pass + Hilbert of the whole recording), inside the labelled state. Also scored: the same
at a finer cadence (an estimate every 10 ms, each scheduling the crossings of the next 10 ms),
to see what a finer phase step than the decisions' would buy.

``targets`` runs whole protocols as ``rtdecode evaluate --stim`` does (decoded states, the
stimulation engine, the phase report) on a simulated recording and on the real one, and checks
the issue's targets: |circular mean error| <= 10 degrees, >= 80 % of pulses within +-45 degrees,
no pulse decided outside the rule's state.

``live`` runs it for real: ``rtdecode simulate --phase-rhythms`` (64 ch x 32 kHz) and ``rtdecode
run --stim`` with the bundled sleep model as separate processes (and then the same samples in a
dry run, so that the live path's figure can be told from the signal's), the trigger device on a
pseudo-terminal in this one (:class:`rtdecode.stimulation.emulator.PtyTriggerDevice`, which
times its output edges as the firmware's clock would). Each output edge is placed on the
stream's sample clock (from the decision log's timestamps) and scored against the simulator's
true phase there (the simulator regenerated from its seed); also reported: how far the edge
landed from where the engine meant it to (the latency compensation's error). ``--source``
chooses what pushes the simulator's samples (``LIVE_SOURCES``: the simulator's own steady
pushing, Open Ephys's 1024-sample blocks, a stalling Python source stamped at push, MNE-LSL's
``PlayerLSL`` with its own stamps); ``--dreams`` replays the real recording instead, by
``PlayerLSL``, decoded by a model trained on it and scored against its non-causal reference
phase.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from _record import machine_info, record, shared_data  # noqa: E402

from rtdecode.config import FeatureConfig
from rtdecode.features.streaming import StreamingFeatures
from rtdecode.phase.estimators import wrap
from rtdecode.phase.reference import circular_summary, phase_at, reference_phase
from rtdecode.phase.tracker import PhaseTracker
from rtdecode.simulator.generator import LfpSimulator, SimulatorConfig
from rtdecode.stimulation.engine import PHASE_STEP_S

LATENCY_S = 0.002  # assumed decision -> output latency of the dry runs (the live one is measured)
FINE_STEP_S = 0.01
AASM_SLOW_WAVE_UV = 75.0  # the AASM's slow wave: 0.5-2 Hz, >= 75 uV peak to peak (frontal)
RHYTHMS = {
    # rhythm: (simulator phase name, state, band, window lengths tried)
    "theta": ("theta", "rem", (6.0, 9.0), (0.5, 1.0, 2.0)),
    "slow": ("slow", "nrem", (0.5, 2.0), (2.0, 4.0, 6.0)),
}
TARGETS_DEG = (0.0, 180.0)


def simulated(minutes: float, seed: int, n_channels: int = 4, fs_hz: float = 32000.0):
    """A sleep recording with rhythms of known phase: data, labels, phases, classes."""
    sim = LfpSimulator(
        SimulatorConfig(
            scenario="sleep",
            n_channels=n_channels,
            fs_hz=fs_hz,
            seed=seed,
            phase_rhythms=True,
            wake_s=(20.0, 40.0),
            nrem_s=(40.0, 80.0),
            rem_s=(40.0, 80.0),
        )
    )
    data, labels, phases = sim.generate_with_phase(int(minutes * 60 * fs_hz))
    return data, labels, phases, sim.classes


def dreams(data_dir: Path):
    """The DREAMS excerpt: signal (n, 1), per-sample stage labels, 100 Hz; deep NREM (S3, S4)
    as "nrem", every other stage as itself."""
    from rtdecode.offline.recordings import open_recording

    rec = open_recording(data_dir / "dreams" / "excerpt1.edf")
    x = np.concatenate(list(rec.chunks(1 << 16, 0, rec.n_samples)))[:, :1].astype(np.float32)
    rows = np.genfromtxt(
        data_dir / "dreams" / "excerpt1_hypnogram.csv", delimiter=",", names=True, dtype=None,
        encoding="utf-8",
    )  # fmt: skip
    labels = np.full(x.shape[0], 0, np.int8)  # 0: other
    for row in rows:
        if int(row["code"]) in (0, 1):  # S4, S3 (R&K order: 1 is S3, 0 is S4)
            a = int(round(float(row["onset_s"]) * rec.fs_hz))
            b = int(round((float(row["onset_s"]) + float(row["duration_s"])) * rec.fs_hz))
            labels[a:b] = 1
    return x, labels, rec.fs_hz, ("other", "nrem")


def schedule_errors(
    data: np.ndarray,
    in_state: np.ndarray,
    truth_at,
    config: FeatureConfig,
    band: tuple[float, float],
    method: str,
    window_s: float,
    target_rad: float,
    step_samples: int,
    min_share: float = 0.0,
    min_amplitude: float = 0.0,
) -> dict:
    """Errors of the crossings each estimate schedules, as the engine does; ``truth_at(samples)``
    gives the true phase at input-sample indices. Estimates every ``step_samples``. ``method``
    ``"echt/peak"`` or ``"echt/centre"``: the ecHT with that ``echt_frequency``."""
    fs = config.fs_hz
    features = StreamingFeatures(config, data.shape[1])
    method, _, echt_frequency = method.partition("/")
    tracker = PhaseTracker(
        config, list(range(data.shape[1])), band, window_s=window_s, method=method,
        echt_frequency=echt_frequency or "blend",
    )  # fmt: skip
    chunk = step_samples
    landed, shares, cost, n_estimates = [], [], 0.0, 0
    for pos in range(0, data.shape[0] - chunk + 1, chunk):
        before = features.analysis_samples
        features.push(data[pos : pos + chunk])
        made = features.analysis_samples - before
        if made:
            tracker.push(
                features.recent_analysis(made), features.analysis_samples * config.decimation
            )
        end = pos + chunk
        if not in_state[end - 1]:
            continue
        t0 = time.perf_counter()
        est = tracker.estimate(end)
        cost += time.perf_counter() - t0
        n_estimates += 1
        if est is None or est.band_share < min_share or est.amplitude < min_amplitude:
            continue
        arrival = end - 1 + LATENCY_S * fs
        c = est.next_crossing(target_rad, arrival, fs)
        # at most one crossing per step at these rates; later ones are the next step's
        if c < arrival + step_samples and c < data.shape[0] and in_state[int(c)]:
            landed.append(c)
            shares.append(est.band_share)
    landed = np.array(landed)
    errors = wrap(truth_at(landed) - target_rad) if landed.size else np.zeros(0)
    out = circular_summary(errors)
    out["estimate_ms"] = round(1e3 * cost / max(1, n_estimates), 3)
    return out, errors, np.array(shares)


def _summary_text(r: dict) -> str:
    if not r["pulses"]:
        return "no pulse"
    return (
        f"mean {r['mean_error_deg']:+.1f} R {r['vector_length']:.2f} "
        f"within45 {100 * r['within_45']:.0f}% n={r['pulses']}"
    )


def _config(fs_hz: float) -> FeatureConfig:
    return FeatureConfig(fs_hz=fs_hz, window_s=2.0, hop_s=0.1)


def cmd_methods(args) -> dict:
    figures = {}
    sets = []
    data, labels, phases, classes = simulated(args.minutes, seed=11)
    for rhythm, (phase_name, state, band, windows) in RHYTHMS.items():
        if args.rhythm not in (None, rhythm):
            continue
        truth = phases[phase_name]
        in_state = labels == classes.index(state)
        sets.append(
            (f"simulator {rhythm} in {state}", data, in_state, 32000.0, band, windows,
             lambda s, t=truth: np.interp(s, np.arange(t.size), np.unwrap(t)))
        )  # fmt: skip
    if not args.no_real_data and args.rhythm in (None, "slow"):
        x, lab, fs, _ = dreams(shared_data(args.data))
        ref, rate = reference_phase(x[:, 0], fs, RHYTHMS["slow"][2])
        sets.append(
            ("DREAMS slow oscillation in S3/S4", x, lab == 1, fs, RHYTHMS["slow"][2],
             RHYTHMS["slow"][3], lambda s, r=ref, q=rate, f=fs: phase_at(r, q, f, s))
        )  # fmt: skip
    for name, x, in_state, fs, band, windows, truth_at in sets:
        config = _config(fs)
        print(f"\n{name} ({in_state.mean() * 100:.0f}% of {x.shape[0] / fs / 60:.1f} min):")
        default_window = max(0.5, 2.0 / band[0])  # the rules' default: two cycles
        runs = [(m, w, c, 0.0) for m in args.methods.split(",")
                for w in (windows if m in ("echt", "ar") else (default_window,))
                for c in ("hop", "10ms")]  # fmt: skip
        if name.startswith("DREAMS"):
            # the AASM's slow wave is >= 75 uV peak to peak: an envelope of 37.5 uV
            runs += [(m, 4.0, "hop", AASM_SLOW_WAVE_UV / 2) for m in args.methods.split(",")]
        for method, window_s, cadence, min_amplitude in runs:
            step = config.hop_samples if cadence == "hop" else int(FINE_STEP_S * fs)
            rows = []
            for target_deg in TARGETS_DEG:
                s, _, _ = schedule_errors(
                    x, in_state, truth_at, config, band, method, window_s,
                    math.radians(target_deg), step, min_amplitude=min_amplitude,
                )  # fmt: skip
                rows.append(s)
            gate = f" | amplitude >= {min_amplitude:g}" if min_amplitude else ""
            key = f"{name} | {method} | window {window_s:g} s | {cadence}{gate}"
            figures[key] = rows
            text = "; ".join(f"target {t:g}: {_summary_text(r)}" for t, r in zip(TARGETS_DEG, rows))
            print(f"  {method:<11} {window_s:>3g} s {cadence:>4}{gate}: {text}; "
                  f"{rows[0]['estimate_ms']:.2f} ms/estimate", flush=True)  # fmt: skip
    return figures


def _rule(
    name: str, state: str, channels: list[str], band: str, target_deg: int, output: int,
    extra: str = "",
):  # fmt: skip
    """One phase rule of a rules file (5 ms pulses on the device's output ``output``); ``extra``
    adds keys to its phase table."""
    listed = ", ".join(f'"{c}"' for c in channels)
    return (
        f'[[rule]]\nname = "{name}"\nwhen = "in:{state}"\npulse_ms = 5\nchannel = {output}\n'
        f"phase = {{ channels = [{listed}], band = {band}, target_deg = {target_deg}{extra} }}\n\n"
    )


SIM_RULES = (
    _rule("theta-peak", "rem", ["ch001"], "[6, 9]", 0, 0)
    + _rule("theta-trough", "rem", ["ch001"], "[6, 9]", 180, 1)
    + _rule("so-up", "nrem", ["ch000", "ch010"], "[0.5, 2]", 0, 2)
)
# scalp EEG: pulses only on slow waves as the AASM scores them (>= 75 uV peak to peak)
DREAMS_RULES = _rule(
    "so-up", "nrem", ["C3-A1"], "[0.5, 2]", 0, 0, f", min_amplitude = {AASM_SLOW_WAVE_UV / 2:g}"
)
TARGET_MEAN_DEG = 10.0
TARGET_WITHIN_45 = 0.8


def _dry_run(
    model_path, data_path, labels_path, rules_text, folder, *, column="label", mapping=None
):
    """``rtdecode evaluate --stim`` through its functions: triggers, the phase report (rose plot
    in ``folder``), the stimulation report, and the recording."""
    from rtdecode.decoding.model import OnnxModel
    from rtdecode.offline.evaluation import decode_recording, phase_report, stim_report
    from rtdecode.offline.labels import map_labels, read_labels
    from rtdecode.offline.recordings import open_recording
    from rtdecode.stimulation.rules import load_protocol

    rules = folder / "rules.toml"
    rules.write_text(rules_text)
    protocol = load_protocol(rules)
    rec = open_recording(data_path)
    segments = map_labels(
        read_labels(labels_path, recording=rec, label_column=column), mapping or {}
    )
    t0 = time.perf_counter()
    decoded = decode_recording(OnnxModel(model_path), rec, stim=protocol)
    wall = time.perf_counter() - t0
    rose = folder / "rose.png"
    report = phase_report(decoded.triggers, protocol, rec, segments, rose_plot=str(rose))
    states = stim_report(decoded.triggers, protocol, segments, rec.duration_s)
    return decoded, report, states, rec, wall, rose


DREAMS_MAP = {"s1": "light", "s2": "light", "s3": "nrem", "s4": "nrem"}


def _meets(r: dict) -> bool:
    return (
        r["pulses"] > 0
        and abs(r["mean_error_deg"]) <= TARGET_MEAN_DEG
        and r["within_45"] >= TARGET_WITHIN_45
    )


def _print_rules(title, report, states, truth=None):
    print(f"\n{title}")
    for name, r in report.items():
        line = f"  {name:<13} target {r['target_deg']:>4g} deg: {_summary_text(r)}"
        line += f"; decided outside {r['state']}: {r['outside_state']}"
        line += f"; landed outside a labelled {r['state']}: {r.get('landed_outside_label')}"
        line += f"; {100 * (states[name].get('inside_target_share') or 0):.1f}% decided in it"
        if r.get("inside_label", {}).get("pulses"):
            line += f"\n  {'':<13} those that landed in it: {_summary_text(r['inside_label'])}"
        if truth is not None:
            line += f"\n  {'':<13} against the simulator's true phase: {_summary_text(truth[name])}"
        line += "  MEETS the targets" if _meets(truth[name] if truth else r) else "  misses"
        print(line)


def _train_dreams(data_dir: Path, model: Path) -> None:
    """``rtdecode train`` on the DREAMS excerpt (S1/S2 as light, S3/S4 as nrem) into ``model``."""
    import subprocess

    mapping = ",".join(f"{k}={v}" for k, v in DREAMS_MAP.items())
    subprocess.run(
        [sys.executable, "-m", "rtdecode", "train", "--data",
         str(data_dir / "dreams" / "excerpt1.edf"), "--labels",
         str(data_dir / "dreams" / "excerpt1_hypnogram.csv"), "--label-column", "stage",
         "--map", mapping, "--out", str(model), "--folds", "3", "--no-progress"],
        check=True, capture_output=True,
    )  # fmt: skip


def cmd_targets(args) -> dict:
    import tempfile

    from rtdecode.models import bundled_model_path

    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_phase_") as tmp:
        folder = Path(tmp)
        # the simulator at the bundled sleep model's analysis rate (64 ch x 2 kHz: the model
        # decodes it with no decimation); the 32 kHz path's alignment is tested in
        # tests/phase/test_tracker.py
        fs = 2000.0
        sim = LfpSimulator(
            SimulatorConfig(
                scenario="sleep", n_channels=64, fs_hz=fs, seed=31, phase_rhythms=True,
                wake_s=(20.0, 40.0), nrem_s=(40.0, 80.0), rem_s=(40.0, 80.0),
            )
        )  # fmt: skip
        data, labels, phases = sim.generate_with_phase(int(args.minutes * 60 * fs))
        np.savez(folder / "sim.npz", data=data, fs=fs)
        del data
        changes = sim.state_changes() + [(len(labels), None)]
        (folder / "labels.csv").write_text(
            "onset_s,duration_s,label\n"
            + "".join(
                f"{a / fs},{(b - a) / fs},{st}\n" for (a, st), (b, _) in zip(changes, changes[1:])
            )
        )
        decoded, report, states, rec, wall, rose = _dry_run(
            bundled_model_path("sleep"),
            folder / "sim.npz",
            folder / "labels.csv",
            SIM_RULES,
            folder,
        )
        truth = {}
        for name, r in report.items():
            rhythm = "theta" if name.startswith("theta") else "slow"
            landing = np.array(
                [x.phase["landing_sample"] for x in decoded.triggers if x.rule == name and x.phase]
            )
            true = np.interp(landing, np.arange(labels.size), np.unwrap(phases[rhythm]))
            truth[name] = circular_summary(wrap(true - math.radians(r["target_deg"])))
        _print_rules(
            f"simulator, {args.minutes:g} min, 64 ch x 2 kHz, bundled sleep model "
            f"(decoded at {rec.duration_s / wall:.0f}x real time)", report, states, truth,
        )  # fmt: skip
        figures["simulator"] = {"reference": report, "truth": truth, "states": states}
        out = Path(__file__).resolve().parent / "out"
        out.mkdir(exist_ok=True)
        (out / "bench_phase_simulator_rose.png").write_bytes(rose.read_bytes())

        if not args.no_real_data:
            data_dir = shared_data(args.data)
            edf = data_dir / "dreams" / "excerpt1.edf"
            hyp = data_dir / "dreams" / "excerpt1_hypnogram.csv"
            model = folder / "dreams.onnx"
            _train_dreams(data_dir, model)
            d2, report2, states2, rec2, wall2, rose2 = _dry_run(
                model, edf, hyp, DREAMS_RULES, folder, column="stage", mapping=DREAMS_MAP
            )
            _print_rules(
                "DREAMS excerpt 1 (C3-A1, 100 Hz, 30 min; S3/S4 as nrem), a model trained on it "
                "(in-sample: the states are what it decodes, not the hypnogram)", report2, states2,
            )  # fmt: skip
            figures["dreams"] = {"reference": report2, "states": states2}
            (out / "bench_phase_dreams_rose.png").write_bytes(rose2.read_bytes())
            # the estimator alone, gated by the hypnogram instead of a decoder's states
            x, lab, fs2, _ = dreams(data_dir)
            ref, rate = reference_phase(x[:, 0], fs2, (0.5, 2.0))
            for key, min_amplitude in (("hypnogram_gated", AASM_SLOW_WAVE_UV / 2),
                                       ("hypnogram_gated_any_amplitude", 0.0)):  # fmt: skip
                # an estimate every PHASE_STEP_S, as the engine's between its decisions
                oracle, _, _ = schedule_errors(
                    x, lab == 1, lambda s: phase_at(ref, rate, fs2, s), _config(fs2), (0.5, 2.0),
                    "echt", 4.0, 0.0, max(1, round(PHASE_STEP_S * fs2)),
                    min_amplitude=min_amplitude,
                )  # fmt: skip
                print(f"  the same rule gated by the hypnogram's S3/S4, amplitude >= "
                      f"{min_amplitude:g} uV: {_summary_text(oracle)}")  # fmt: skip
                figures["dreams"][key] = oracle
    return figures


def _dry_run_pulses(samples: np.ndarray, fs: float) -> dict[str, list[float]]:
    """Each rule's pulses' landing samples in a dry run of ``samples`` (the bundled sleep model,
    SIM_RULES): what the live run is compared with, on the very samples it decoded."""
    import tempfile

    from rtdecode.decoding.model import OnnxModel
    from rtdecode.models import bundled_model_path
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.stimulation.rules import load_protocol

    with tempfile.TemporaryDirectory(prefix="bench_phase_dry_") as tmp:
        np.savez(Path(tmp) / "live.npz", data=samples, fs=fs)
        (Path(tmp) / "rules.toml").write_text(SIM_RULES)
        decoded = decode_recording(
            OnnxModel(bundled_model_path("sleep")),
            open_recording(Path(tmp) / "live.npz"),
            stim=load_protocol(Path(tmp) / "rules.toml"),
        )
    out: dict[str, list[float]] = {}
    for x in decoded.triggers:
        if x.phase and x.suppressed is None:
            out.setdefault(x.rule, []).append(x.phase["landing_sample"])
    return out


# the live sources: what pushes the simulator's samples (regenerated from the seed to score)
LIVE_SOURCES = {
    "simulate": "rtdecode simulate: 1 ms chunks generated ahead on a thread of its own, "
    "stamped at push",
    "blocks": "rtdecode simulate --chunk 1024: Open Ephys's ~1024-sample blocks (32 ms), "
    "stamped at push",
    "stalls": "a lab's own Python source: each 100 ms block generated in the pushing thread, "
    "which also stalls 20-50 ms about every second, then catches up; pylsl stamps at push",
    "player": "MNE-LSL's PlayerLSL playing the simulator's samples from a FIF file, 10 ms "
    "chunks, its own nominal stamps",
}
DREAMS_LIVE_FROM_S = 900.0  # the excerpt's S3/S4 epochs are all after minute 16
DREAMS_PLAYER_CHUNK = 4  # 40 ms at 100 Hz: an EEG amplifier's block


def _sim_config(fs: float, seed: int) -> SimulatorConfig:
    """The simulator as ``rtdecode simulate --phase-rhythms --first-state-s 5`` runs it."""
    return SimulatorConfig(
        scenario="sleep", n_channels=64, fs_hz=fs, seed=seed, phase_rhythms=True,
        first_state_s=5.0,
    )  # fmt: skip


def _regenerate(fs: float, seed: int, n: int):
    """The simulator's first ``n`` samples, their true phases and states, and its classes."""
    sim = LfpSimulator(_sim_config(fs, seed))
    phases = {"theta": np.empty(n), "slow": np.empty(n)}
    states = np.empty(n, np.int8)
    samples = np.empty((n, 64), np.float32)
    for a in range(0, n, 1 << 16):
        x, lab, ph = sim.generate_with_phase(min(1 << 16, n - a))
        samples[a : a + lab.size] = x
        states[a : a + lab.size] = lab
        for k in phases:
            phases[k][a : a + lab.size] = ph[k]
    return samples, phases, states, sim.classes


def run_stalling_source(name: str, seed: int, fs: float, seconds: float) -> None:
    """The simulator pushed as labs' own Python sources push: each 100 ms block generated in
    the pushing thread, 1 ms chunks paced at the nominal rate, a stall of 20-50 ms about every
    second (uniform 0.5-1.5 s apart), then what is due at once; pylsl stamps each chunk at its
    push."""
    import pylsl

    sim = LfpSimulator(_sim_config(fs, seed))
    outlet = pylsl.StreamOutlet(
        pylsl.StreamInfo(name, "EEG", 64, fs, "float32", name), chunk_size=32, max_buffered=60
    )
    if not outlet.wait_for_consumers(60):
        raise SystemExit("no consumer came")
    rng = np.random.default_rng(2)
    block, chunk, total, pushed = int(0.1 * fs), 32, int(seconds * fs), 0
    t0 = time.monotonic()
    next_stall = t0 + rng.uniform(0.5, 1.5)
    while pushed < total:
        data, _ = sim.generate(block)
        for a in range(0, block, chunk):
            delay = t0 + (pushed + chunk) / fs - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= next_stall:
                time.sleep(rng.uniform(0.020, 0.050))
                next_stall = time.monotonic() + rng.uniform(0.5, 1.5)
            outlet.push_chunk(data[a : a + chunk])
            pushed += chunk


def run_player_source(name: str, fif: str, chunk: int, seconds: float) -> None:
    """MNE-LSL's ``PlayerLSL``, its code untouched, playing ``fif`` for ``seconds``.

    It is given the recording read by MNE with its ``times`` computed once: MNE computes them
    afresh at every access, which the player makes at every chunk (18 ms a chunk for 190 s at
    32 kHz: the player fell behind real time by 12 %)."""
    import mne
    from mne_lsl.player import PlayerLSL

    raw = mne.io.read_raw_fif(fif, preload=True, verbose="error")
    times = raw.times

    class _TimedRaw(type(raw)):
        @property
        def times(self) -> np.ndarray:
            return times

    raw.__class__ = _TimedRaw
    player = PlayerLSL(raw, chunk_size=chunk, name=name, source_id=name)
    player.start()
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        time.sleep(0.1)
        if not player.running:
            raise SystemExit("PlayerLSL stopped (its log says why)")
    player.stop()


def _write_fif(path: Path, samples: np.ndarray, fs: float, names: list[str]) -> None:
    """``samples`` (n, channels, microvolts) as a FIF file of ``misc`` channels, so MNE keeps
    the values as written (as the model learnt them), not as volts."""
    import mne

    info = mne.create_info(names, fs, "misc")
    raw = mne.io.RawArray(samples.T.astype(np.float64), info, verbose="error")
    raw.save(path, fmt="single", overwrite=True, verbose="error")


def _stamp_clock(name: str, file_rows: np.ndarray, fs: float, seconds: float = 3.0) -> float:
    """Where a player's stamps put the file's samples: reads ``seconds`` of the stream, finds
    them in the file (exact values) and returns ``c`` such that file sample ``i`` is stamped
    ``c + i / fs`` (the median over what was read)."""
    import pylsl

    info = pylsl.resolve_byprop("name", name, timeout=30)
    if not info:
        raise SystemExit(f"no stream {name!r} came")
    inlet = pylsl.StreamInlet(info[0], max_buflen=30, processing_flags=0)
    buf = np.empty((8192, info[0].channel_count()), np.float64)
    rows, stamps = [], []
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        _, ts = inlet.pull_chunk(timeout=0.0, max_samples=8192, dest_obj=buf)
        if ts:
            rows.append(buf[: len(ts)].astype(np.float32))
            stamps += ts
        else:
            time.sleep(0.002)
    inlet.close_stream()
    got = np.concatenate(rows)
    k = min(len(got), 256)
    matches = [
        c for c in np.flatnonzero(file_rows[:, 0] == got[0, 0])
        if c + k <= len(file_rows) and np.array_equal(file_rows[c : c + k], got[:k])
    ]  # fmt: skip
    if len(matches) != 1:
        raise SystemExit(f"the stream's first samples are found {len(matches)} times in the file")
    index = matches[0] + np.arange(len(stamps))
    return float(np.median(np.asarray(stamps) - index / fs))


def _run_live(folder: Path, device, rules_text: str, model: str, name: str, seconds: float):
    """``rtdecode run --stim`` for ``seconds`` on the stream ``name`` (already there or coming),
    the device on its port: the decision log's lines, and each output's edges and the first
    bytes' times of its pulse commands at the device."""
    import json
    import subprocess

    from rtdecode.cli.common import PACKAGE_PARENT

    rules = folder / "rules.toml"
    rules.write_text(f'[output]\nport = "{device.port}"\n\n' + rules_text)
    log = folder / "run.jsonl"
    run = subprocess.run(
        [sys.executable, "-m", "rtdecode", "run", "--model", model, "--source", name,
         "--headless", "--status-every", "0", "--log", str(log), "--stim", str(rules),
         "--duration", f"{seconds:g}"],
        cwd=PACKAGE_PARENT, capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"rtdecode run failed ({run.returncode}): {run.stderr[-2000:]}")
    time.sleep(0.5)  # the last pulses' edges
    edges = {ch: device.pulses(ch) for ch in range(3)}
    read_t = {ch: [r.first_byte_t for r in device.received
                   if r.command.command == b"P" and r.command.channel == ch]
              for ch in range(3)}  # fmt: skip
    return [json.loads(x) for x in log.read_text().splitlines()], edges, read_t


def _pulses(lines: list[dict], rule: str) -> list[dict]:
    return [d for d in lines if d.get("event") == "trigger" and d["rule"] == rule
            and d["suppressed"] is None and d["action"] == "pulse"]  # fmt: skip


def _score_live(
    trig: list[dict], on: np.ndarray, offset: int, fs: float, phase: np.ndarray,
    target_deg: float, read_t: list[float],
) -> dict:  # fmt: skip
    """A rule's live pulses: ``on`` their output edges as sample indices of the recording whose
    unwrapped phase is ``phase``, ``trig`` their log lines (landing samples counted from the
    decoder's first sample, the recording's ``offset``)."""
    entry = {"pulses_logged": len(trig), "edges": int(on.size)}
    if not on.size or on.size != len(trig):
        return entry
    true = np.interp(on, np.arange(phase.size), phase)
    entry |= circular_summary(wrap(true - math.radians(target_deg)))
    meant = offset + np.array([d["phase"]["landing_sample"] for d in trig])
    off_ms = (on - meant) / fs * 1e3
    entry["landing_vs_meant_ms_p50"] = round(float(np.median(off_ms)), 3)
    entry["landing_vs_meant_ms_p90_abs"] = round(float(np.percentile(np.abs(off_ms), 90)), 3)
    entry["latency_ms_p50"] = round(float(np.median([d["phase"]["latency_ms"] for d in trig])), 3)
    # the output's latency as the device saw it (write -> its first byte read) beside the
    # estimate the engine used (half the acknowledgement's round trip)
    if len(read_t) == len(trig):
        one_way = [(r - d["written_t"]) * 1e3 for r, d in zip(read_t, trig)]
        entry["write_to_device_ms_p50"] = round(float(np.median(one_way)), 3)
        half = [d["round_trip_ms"] / 2 for d in trig if d.get("round_trip_ms") is not None]
        entry["half_round_trip_ms_p50"] = round(float(np.median(half)), 3)
    return entry


def _live_text(entry: dict) -> str:
    if "pulses" not in entry:
        return f"{entry['pulses_logged']} pulses logged, {entry['edges']} edges at the device"
    return (
        f"{_summary_text(entry)}; the same samples in a dry run: "
        f"{_summary_text(entry['dry_run'])}; edge - meant landing p50 "
        f"{entry['landing_vs_meant_ms_p50']:+.2f} ms (|p90| "
        f"{entry['landing_vs_meant_ms_p90_abs']:.2f}); latency made up for p50 "
        f"{entry['latency_ms_p50']:.2f} ms; write -> device p50 "
        f"{entry.get('write_to_device_ms_p50')} ms, half round trip p50 "
        f"{entry.get('half_round_trip_ms_p50')} ms"
    )


def _decision_ages(decisions: list[dict], figures: dict, counts: dict[str, int]) -> None:
    """The decision's age as published (the trigger goes first), per state, where the phase
    rules estimating in it are ``counts[state]``: what the phase rules cost the decisions."""
    for state, estimating in counts.items():
        ages = [d["age_ms"] for d in decisions if d.get("state") == state and "age_ms" in d]
        if ages:
            p50, p99 = np.percentile(ages, [50, 99])
            figures[f"decision_age_ms_{state}"] = {
                "p50": round(float(p50), 3), "p99": round(float(p99), 3), "n": len(ages)
            }  # fmt: skip
            print(
                f"  decisions in {state} ({estimating} phase rules estimating): age p50 "
                f"{p50:.2f} ms, p99 {p99:.2f} ms (n={len(ages)})"
            )


def _source_process(*args: str):
    import subprocess

    from rtdecode.cli.common import PACKAGE_PARENT

    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "_source", *args],
        cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def cmd_live(args) -> dict:
    import subprocess
    import tempfile

    from rtdecode.cli.common import PACKAGE_PARENT
    from rtdecode.stimulation.emulator import PtyTriggerDevice

    if args.dreams:
        return cmd_live_dreams(args)
    args.seconds = args.seconds or 150.0
    fs, seed, name = 32000.0, 41, f"bench-phase-{time.monotonic_ns()}"
    kind = args.source
    with tempfile.TemporaryDirectory(prefix="bench_phase_") as tmp, PtyTriggerDevice() as device:
        folder = Path(tmp)
        clock = None  # player: file sample i is stamped clock + i / fs
        if kind == "player":
            # the player starts before the decoder and loops: a file longer than the run
            n_file = int((args.seconds + 40) * fs)
            samples, phases, states, classes = _regenerate(fs, seed, n_file)
            fif = folder / "sim_raw.fif"
            _write_fif(fif, samples, fs, [f"ch{i:03d}" for i in range(64)])
            source = _source_process("player", name, str(fif), "320", f"{args.seconds + 30:g}")
        elif kind == "stalls":
            source = _source_process("stalls", name, str(seed), f"{fs:g}", f"{args.seconds:g}")
        else:
            source = subprocess.Popen(
                [sys.executable, "-m", "rtdecode", "simulate", "--scenario", "sleep",
                 "--channels", "64", "--rate", f"{fs:g}", "--seed", str(seed), "--phase-rhythms",
                 "--name", name, "--first-state-s", "5", "--duration", f"{args.seconds:g}",
                 "--wait-for-consumer", "60", "--chunk", "1024" if kind == "blocks" else "32"],
                cwd=PACKAGE_PARENT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
        try:
            if kind == "player":
                clock = _stamp_clock(name, samples, fs)
            lines, edges, read_t = _run_live(
                folder, device, SIM_RULES, "sleep", name, args.seconds + 3
            )
        finally:
            source.kill()
            source.wait()
    decisions = [d for d in lines if "probs" in d]
    # the decoder's first sample in the played samples, and the stamps' clock
    if clock is None:
        offset = 0
        clock = float(np.median([d["t"] - (d["end_sample"] - 1) / fs for d in decisions]))
    else:
        offset = int(round(float(np.median(
            [(d["t"] - clock) * fs - (d["end_sample"] - 1) for d in decisions]
        ))))  # fmt: skip
    n = offset + max(d["end_sample"] for d in decisions) + int(fs)
    if kind != "player":
        samples, phases, states, classes = _regenerate(fs, seed, n)
    # the very samples the decoder read, through `evaluate --stim`'s path
    dry = _dry_run_pulses(samples[offset:n], fs)
    del samples
    figures = {"source": kind}
    print(
        f"\nlive, {args.seconds:g} s, 64 ch x 32 kHz, bundled sleep model, {len(decisions)} "
        f"decisions; source: {LIVE_SOURCES[kind]}"
    )
    _decision_ages(decisions, figures, {"rem": 2, "nrem": 1, "wake": 0})
    for ch, rule in enumerate(("theta-peak", "theta-trough", "so-up")):
        trig = _pulses(lines, rule)
        target = {"theta-peak": 0.0, "theta-trough": 180.0, "so-up": 0.0}[rule]
        rhythm, state = ("slow", "nrem") if rule == "so-up" else ("theta", "rem")
        on = (np.array([e[0] for e in edges[ch]]) - clock) * fs
        phase = np.unwrap(phases[rhythm])
        entry = _score_live(trig, on, offset, fs, phase, target, read_t[ch])
        if "pulses" in entry:
            inside = states[np.clip(on.astype(int), 0, states.size - 1)] == classes.index(state)
            entry["landed_outside_true_state"] = int((~inside).sum())
            landing = offset + np.array(dry.get(rule, []))
            true = np.interp(landing, np.arange(phase.size), phase)
            entry["dry_run"] = circular_summary(wrap(true - math.radians(target)))
        print(
            f"  {rule:<13} {_live_text(entry)}"
            + (f"; landed outside true {state}: {entry['landed_outside_true_state']}"
               if "pulses" in entry else "")
            + ("  MEETS the targets" if "pulses" in entry and _meets(entry) else "  misses")
        )  # fmt: skip
        figures[rule] = entry
    return figures


def cmd_live_dreams(args) -> dict:
    """The DREAMS excerpt replayed by MNE-LSL's PlayerLSL from minute 15 (every S3/S4 epoch
    is after it) in 40 ms blocks, decoded live by a model trained on it, the slow-oscillation
    up-state rule at the AASM amplitude; pulses scored against the non-causal reference phase
    of the whole recording, and the same samples in a dry run."""
    import tempfile

    from rtdecode.decoding.model import OnnxModel
    from rtdecode.offline.evaluation import decode_recording
    from rtdecode.offline.recordings import open_recording
    from rtdecode.stimulation.emulator import PtyTriggerDevice
    from rtdecode.stimulation.rules import load_protocol

    data_dir = shared_data(args.data)
    x, labels, fs, _ = dreams(data_dir)
    start = int(DREAMS_LIVE_FROM_S * fs)
    played = x[start:]
    seconds = min(args.seconds or math.inf, played.shape[0] / fs - 30.0)
    name = f"bench-phase-dreams-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory(prefix="bench_phase_") as tmp, PtyTriggerDevice() as device:
        folder = Path(tmp)
        model = folder / "dreams.onnx"
        _train_dreams(data_dir, model)
        fif = folder / "dreams_raw.fif"
        _write_fif(fif, played, fs, ["C3-A1"])
        source = _source_process(
            "player", name, str(fif), str(DREAMS_PLAYER_CHUNK), f"{seconds + 20:g}"
        )
        try:
            clock = _stamp_clock(name, played, fs)
            lines, edges, read_t = _run_live(
                folder, device, DREAMS_RULES, str(model), name, seconds
            )
        finally:
            source.kill()
            source.wait()
        decisions = [d for d in lines if "probs" in d]
        offset = int(round(float(np.median(
            [(d["t"] - clock) * fs - (d["end_sample"] - 1) for d in decisions]
        ))))  # fmt: skip
        n = offset + max(d["end_sample"] for d in decisions)
        np.savez(folder / "played.npz", data=played[offset:n], fs=fs, channel_names=["C3-A1"])
        (folder / "dry.toml").write_text(DREAMS_RULES)
        decoded = decode_recording(
            OnnxModel(model), open_recording(folder / "played.npz"),
            stim=load_protocol(folder / "dry.toml"),
        )  # fmt: skip
    dry = [t.phase["landing_sample"] for t in decoded.triggers if t.phase and t.suppressed is None]
    ref, rate = reference_phase(x[:, 0], fs, (0.5, 2.0))
    # the reference phase of the whole recording, unwrapped, on the played file's samples
    phase = np.unwrap(phase_at(ref, rate, fs, np.arange(start, x.shape[0])))
    deep = labels[start:] == 1
    trig = _pulses(lines, "so-up")
    on = (np.array([e[0] for e in edges[0]]) - clock) * fs
    entry = _score_live(trig, on, offset, fs, phase, 0.0, read_t[0])
    figures: dict = {"source": "PlayerLSL, DREAMS excerpt 1 from minute 15, 40 ms blocks"}
    print(
        f"\nlive, DREAMS excerpt 1 (C3-A1, 100 Hz) from minute {DREAMS_LIVE_FROM_S / 60:g}, "
        f"{seconds:.0f} s replayed by PlayerLSL in {DREAMS_PLAYER_CHUNK}-sample blocks, a model "
        f"trained on it, {len(decisions)} decisions"
    )
    _decision_ages(decisions, figures, {"nrem": 1, "light": 0, "wake": 0})
    if "pulses" in entry:
        landing = offset + np.array(dry)
        true = np.interp(landing, np.arange(phase.size), phase)
        entry["dry_run"] = circular_summary(wrap(true - 0.0))
        true_on = np.interp(on, np.arange(phase.size), phase)
        in_deep = deep[np.clip(on.astype(int), 0, deep.size - 1)]
        entry["inside_label"] = circular_summary(wrap(true_on[in_deep]))
    print(
        f"  so-up         {_live_text(entry)}"
        + (f"\n  {'':<13} those that landed in labelled S3/S4: "
           f"{_summary_text(entry['inside_label'])}" if "pulses" in entry else "")
        + ("  MEETS the targets" if "pulses" in entry and _meets(entry) else "  misses")
    )  # fmt: skip
    figures["so-up"] = entry
    return figures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=("methods", "targets", "live"))
    parser.add_argument(
        "--seconds", type=float, default=None,
        help="live: run length (default 150; --dreams: the replayed part, 14.5 min)",
    )  # fmt: skip
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--no-real-data", action="store_true")
    parser.add_argument("--rhythm", choices=tuple(RHYTHMS), default=None, help="only this one")
    parser.add_argument(
        "--methods", default="echt,echt/peak,echt/centre,ar",
        help="methods: estimators compared (echt/peak, echt/centre: the ecHT's frequency)",
    )  # fmt: skip
    parser.add_argument(
        "--source", choices=tuple(LIVE_SOURCES), default="simulate",
        help="live: what pushes the simulator's samples (default simulate)",
    )  # fmt: skip
    parser.add_argument(
        "--dreams", action="store_true",
        help="live: the DREAMS excerpt replayed by PlayerLSL instead of the simulator",
    )  # fmt: skip
    parser.add_argument("--record", action="store_true")
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_source":  # a live source, in a process of its own
        if argv[1] == "player":
            run_player_source(argv[2], argv[3], int(argv[4]), float(argv[5]))
        else:
            run_stalling_source(argv[2], int(argv[3]), float(argv[4]), float(argv[5]))
        return 0
    args = parser.parse_args(argv)
    print(machine_info())
    if args.what == "methods":
        figures = cmd_methods(args)
    elif args.what == "targets":
        figures = cmd_targets(args)
    else:
        figures = cmd_live(args)
    if args.record:
        setup = (
            {"seconds": args.seconds, "source": "dreams" if args.dreams else args.source}
            if args.what == "live"
            else {"minutes": args.minutes}
        )
        record(f"bench_phase_{args.what}", figures, setup=setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
