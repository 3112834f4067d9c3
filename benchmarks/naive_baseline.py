"""The decoder a user would write first: pylsl + scipy.signal.welch + xgboost.predict.

    python benchmarks/naive_baseline.py --source NAME [--window-s 2] [--hop-s 0.1]

Pulls chunks (as lists, pylsl's default), keeps the last window in a numpy array, every hop of
samples computes Welch band powers of the last 2 s for every channel and predicts with an
XGBoost booster of the bundled model's size (200 rounds x 3 classes, depth 4), and pushes the
probabilities on `naive-scores` with the timestamp of the window's last sample (the same
convention as rtdecode, so the same consumer measures both).
"""

import argparse
import time

import numpy as np
import pylsl
import scipy.signal
import xgboost

from rtdecode.config import DEFAULT_BANDS

ap = argparse.ArgumentParser()
ap.add_argument("--source", required=True)
ap.add_argument("--window-s", type=float, default=2.0)
ap.add_argument("--hop-s", type=float, default=0.1)
a = ap.parse_args()

info = pylsl.resolve_byprop("name", a.source, timeout=10)[0]
fs, n_ch = info.nominal_srate(), info.channel_count()
inlet = pylsl.StreamInlet(info, max_buflen=30)
n_win, n_hop = int(a.window_s * fs), int(a.hop_s * fs)
bands = [(b.lo_hz, b.hi_hz) for b in DEFAULT_BANDS if b.lo_hz < fs / 2]

# A booster of the same size as the bundled models, on random rows (only its cost matters).
rng = np.random.default_rng(0)
n_feat = n_ch * len(bands)
X = rng.standard_normal((600, n_feat)).astype(np.float32)
booster = xgboost.train(
    {"objective": "multi:softprob", "num_class": 3, "max_depth": 4, "nthread": 1},
    xgboost.DMatrix(X, label=rng.integers(0, 3, 600)),
    num_boost_round=200,
)

out_info = pylsl.StreamInfo(
    "naive-scores", "Scores", 3, 1 / a.hop_s, "float32", f"naive-scores:{info.source_id()}"
)
outlet = pylsl.StreamOutlet(out_info)
buf = np.zeros((n_win, n_ch), np.float32)
buf_ts = np.zeros(n_win)
total = 0
next_decision = n_win
while True:
    chunk, ts = inlet.pull_chunk(timeout=0.0, max_samples=8192)
    if not ts:
        time.sleep(0.001)
        continue
    chunk = np.asarray(chunk, dtype=np.float32)
    buf = np.concatenate([buf, chunk])[-n_win:]
    buf_ts = np.concatenate([buf_ts, ts])[-n_win:]
    total += len(ts)
    if total >= next_decision:
        # like most first versions: decide on the newest window, late if behind
        f, pxx = scipy.signal.welch(buf, fs=fs, nperseg=int(fs / 2), axis=0)
        feats = np.concatenate(
            [np.log10(pxx[(f >= lo) & (f < hi)].sum(axis=0) + 1e-20) for lo, hi in bands]
        )
        probs = booster.predict(xgboost.DMatrix(feats[None, :].astype(np.float32)))[0]
        outlet.push_sample(probs.astype(np.float32), buf_ts[-1])
        next_decision = (total // n_hop + 1) * n_hop
