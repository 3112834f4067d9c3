"""The non-causal reference phase and the circular statistics of the phase report."""

import math

import numpy as np
import pytest

from rtdecode.phase.estimators import wrap
from rtdecode.phase.reference import (
    ReferencePhase,
    circular_summary,
    reference_phase,
    write_rose_plot,
)


def test_reference_phase_of_a_chirping_cosine_is_its_phase():
    fs = 1000.0
    t = np.arange(int(20 * fs)) / fs
    truth = 2 * np.pi * (7.0 * t + 0.02 * t**2) + 1.0  # 7 -> 7.8 Hz
    x = 50 * np.cos(truth) + np.random.default_rng(0).normal(0, 5, t.size)
    phase, rate = reference_phase(x, fs, (6.0, 9.0))
    k = np.arange(int(2 * rate), int(18 * rate))  # away from the ends
    err = wrap(phase[k] - truth[(k * fs / rate).astype(int)])
    assert np.max(np.abs(err)) < math.radians(5)


def test_reference_read_in_chunks_with_a_boxcar_keeps_the_timing():
    fs = 32000.0
    t = np.arange(int(12 * fs)) / fs
    truth = 2 * np.pi * 0.9 * t
    data = np.stack([np.cos(truth), 0.5 * np.cos(truth), np.zeros_like(t)], axis=1)
    chunks = (data[i : i + 7001] for i in range(0, len(data), 7001))
    ref = ReferencePhase(chunks, fs, (0.5, 2.0), [0, 1])
    samples = np.array([3.0, 5.25, 7.5, 9.125]) * fs + 0.5
    err = wrap(ref.at(samples) - 2 * np.pi * 0.9 * samples / fs)
    assert np.max(np.abs(err)) < math.radians(2)


def test_circular_summary_known_values():
    s = circular_summary(np.radians([10, 20, 30, 100]))
    assert s["pulses"] == 4
    assert s["within_45"] == 0.75
    mean = np.angle(np.mean(np.exp(1j * np.radians([10, 20, 30, 100]))))
    assert s["mean_error_deg"] == pytest.approx(math.degrees(mean), abs=0.01)
    assert 0 < s["vector_length"] < 1
    # across the +-180 seam the circular mean is 180, not 0
    assert abs(circular_summary(np.radians([179, -179]))["mean_error_deg"]) == pytest.approx(180)
    assert circular_summary([])["mean_error_deg"] is None


def test_rose_plot_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = write_rose_plot({"theta": np.radians([0, 10, -20, 40]), "none": []}, tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
