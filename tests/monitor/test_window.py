"""The operator window read at a glance (issue 21 item 10), over a scripted feed without LSL:
threshold lines that show on the dark plots, wall-clock ticks on every time axis, state rows
whose labels do not overlap, one colour per state with a legend, a labelled spectrogram and a
colour scale on the band-power map. Checked on the widgets and on what they paint."""

import re
import time

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("pytestqt")

import pylsl  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from pyqtgraph.Qt import QtCore, QtGui  # noqa: E402

from rtdecode.acquisition._ringbuffer import RingBuffer  # noqa: E402
from rtdecode.config import EventHysteresis, FeatureConfig  # noqa: E402
from rtdecode.decoding.status import DecoderStatus, Observation  # noqa: E402
from rtdecode.monitor.window import (  # noqa: E402
    THRESHOLD_COLOUR,
    TIME_LABEL,
    MonitorConfig,
    MonitorWindow,
    WallClockAxis,
)

FS, N_CH, HOP = 1000.0, 4, 0.1
CLASSES = ("normal", "seizure")
pytestmark = pytest.mark.timeout(60)


class ScriptedFeed:
    """What a decoder's feed gives the window, written by the test: samples in a real ring
    buffer, decisions, a status. Timestamps are this machine's LSL clock, as a real feed's."""

    name = "scripted"

    def __init__(self):
        self.classes = CLASSES
        self.n_channels, self.fs_hz, self.input_fs_hz = N_CH, FS, FS
        self.channel_labels = tuple(f"ch{i}" for i in range(N_CH))
        self.feature_config = FeatureConfig(fs_hz=FS, window_s=0.5, hop_s=HOP)
        self.hysteresis = EventHysteresis("seizure", on_threshold=0.7, off_threshold=0.3)
        self.ring = RingBuffer(int(12 * FS), N_CH)
        self.current = DecoderStatus.empty(CLASSES)
        self._queue = []
        self._rng = np.random.default_rng(0)

    def decide(self, t, state, band_power=1.0):
        """A decision at LSL time ``t`` and the hop of samples before it."""
        n = int(HOP * FS)
        stamps = t - np.arange(n - 1, -1, -1) / FS
        self.ring.write(self._rng.normal(0, 1, (n, N_CH)).astype(np.float32), stamps)
        per_channel = self.feature_config.features_per_channel
        features = np.full((N_CH, per_channel), band_power, np.float32)
        features[:, : len(self.feature_config.bands)] += np.linspace(0, 1.5, N_CH)[:, None]
        p = 0.9 if state == "seizure" else 0.1
        self._queue.append(
            Observation(self.ring.written, t, (1 - p, p), state, False, features.ravel())
        )

    def decision_waiting(self):
        return bool(self._queue)

    def drain(self):
        out, self._queue = self._queue, []
        return out

    def status(self):
        return self.current

    def samples_received(self):
        return self.ring.written

    def acknowledge(self, state, onset_t):
        pass

    def running(self):
        return True

    def close(self):
        pass


class ScriptedTruth:
    available = True

    def __init__(self):
        self.marks = []

    def drain(self):
        out, self.marks = self.marks, []
        return out


def _schedule(t):
    """The scripted states: seizure from 10 s to 20 s of a 30 s run."""
    return "seizure" if 10.0 <= t < 20.0 else "normal"


@pytest.fixture
def monitor(qtbot):
    """A shown window over a scripted feed and truth; ``play(...)`` scripts decisions."""
    feed, truth = ScriptedFeed(), ScriptedTruth()
    window = MonitorWindow(
        feed,
        truth=truth,
        config=MonitorConfig(channels_per_page=4, trace_s=2.0, columns=200, alarm_sound=False),
    )
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)

    played = [-np.inf]

    def play(seconds=30.0, skip=(), band_power=1.0, per_refresh=10):
        """Decisions every hop over the last ``seconds`` up to now (after the previous play's;
        none in ``skip``, a (start, end) in seconds), truth marks at the same state changes."""
        t0 = max(pylsl.local_clock() - seconds, played[0])
        played[0] = t0 + seconds
        n = round(seconds / HOP)
        last = None
        for k in range(n):
            s = (k + 1) * HOP
            state = _schedule(s)
            if state != last:
                truth.marks.append((t0 + s, state))
                last = state
            if not (skip and skip[0] <= s < skip[1]):
                feed.decide(t0 + s, state, band_power)
            if k % per_refresh == per_refresh - 1 or k == n - 1:
                window.refresh()
        qtbot.wait(50)  # let the linked views follow and everything paint
        return t0

    return window, feed, play


def _pixel(image: QtGui.QImage, point: QtCore.QPointF) -> tuple[int, int, int]:
    c = image.pixelColor(int(point.x()), int(point.y()))
    return c.red(), c.green(), c.blue()


def _to_widget(plot: pg.PlotWidget, x: float, y: float) -> QtCore.QPointF:
    """Pixel of the view point (x, y) in ``plot.grab()``."""
    scene = plot.getViewBox().mapViewToScene(QtCore.QPointF(x, y))
    return QtCore.QPointF(plot.mapFromScene(scene))


def _luminance(rgb) -> float:
    """WCAG relative luminance of an sRGB colour."""
    c = np.asarray(rgb, float) / 255.0
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(c @ [0.2126, 0.7152, 0.0722])


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _drawn_tick_labels(axis: pg.AxisItem) -> list[tuple[QtCore.QRectF, str]]:
    """The tick labels ``axis`` paints (its own draw specs), with their rectangles."""
    image = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)
    painter = QtGui.QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return [(rect, text) for rect, _, text in texts]


def test_threshold_lines_stand_out_on_the_dark_plot(monitor):
    window, _, play = monitor
    play(20.0)
    background = window.prob_plot.backgroundBrush().color().getRgb()[:3]
    assert [line.value() for line in window.threshold_lines] == [0.7, 0.3]
    image = window.prob_plot.grab().toImage()
    x0, x1 = window.prob_plot.getViewBox().viewRange()[0]
    for line in window.threshold_lines:
        pen = line.pen.color().getRgb()[:3]
        assert _contrast(pen, background) >= 7.0  # WCAG AAA for text; they were 1.0
        for c in window.classes:  # and unlike any state's colour
            assert np.abs(np.subtract(pen, window.state_colour(c))).max() > 60
        # in the painted plot, the threshold's row is mostly the line's colour (dashed, dotted)
        xs = np.linspace(x0, x1, 200)[5:-5]
        hits = 0
        for x in xs:
            p = _to_widget(window.prob_plot, x, line.value())
            rows = [_pixel(image, p + QtCore.QPointF(0, dy)) for dy in (-1, 0, 1)]
            hits += any(np.abs(np.subtract(r, THRESHOLD_COLOUR)).max() < 80 for r in rows)
        assert hits / len(xs) > 0.3
        assert line.label.toPlainText().startswith(("on ", "off "))


@pytest.mark.parametrize("span_s", [10.0, 300.0, 7200.0])
def test_wall_clock_ticks_read_as_clock_times_at_any_span(qtbot, span_s):
    """What used to read ``53.000 54.000 ... 01:53:00 01.000``: HH:MM:SS or HH:MM, on round
    clock times, evenly spaced, never overlapping, on an 800-pixel axis."""
    plot = pg.PlotWidget(axisItems={"bottom": WallClockAxis()})
    qtbot.addWidget(plot)
    plot.resize(800, 200)
    plot.show()
    qtbot.waitExposed(plot)
    t0 = time.time()
    plot.setXRange(t0, t0 + span_s, padding=0)
    qtbot.wait(20)
    drawn = _drawn_tick_labels(plot.getAxis("bottom"))
    labels = [text for _, text in drawn]
    assert 3 <= len(labels) <= 15, labels
    assert all(re.fullmatch(r"\d\d:\d\d(:\d\d)?", s) for s in labels), labels
    assert len({len(s) for s in labels}) == 1  # one format along the axis
    seconds = [int(s[:2]) * 3600 + int(s[3:5]) * 60 + int(s[6:8] or 0) for s in labels]
    steps = np.diff(seconds) % 86400
    assert len(set(steps)) == 1 and seconds[0] % steps[0] == 0  # even, on round times
    if len(labels[0]) == 5:
        assert steps[0] % 60 == 0  # HH:MM only for whole minutes
    rects = [rect for rect, _ in drawn]
    assert all(a.right() < b.left() for a, b in zip(rects, rects[1:]))


def test_every_time_axis_reads_one_wall_clock(monitor):
    window, feed, play = monitor
    t0 = play(30.0)
    plots = {
        "traces": window.trace_plot,
        "spectrogram": window.spec_plot,
        "probabilities": window.prob_plot,
        "states": window.timeline_plot,
    }
    for name, plot in plots.items():
        axis = plot.getAxis("bottom")
        assert isinstance(axis, WallClockAxis), name
        assert axis.labelText == TIME_LABEL, name
    newest = window.wall_time(t0 + 30.0)
    assert abs(newest - time.time()) < 2.0
    wx, _ = window.prob_curves[0].getData()
    assert wx[-1] == pytest.approx(newest, abs=1e-6)
    for image in (window.spec_img, window.timeline_img):
        rect = image.mapRectToView(image.boundingRect())
        assert rect.right() == pytest.approx(newest, abs=1e-3)
    # the states start with the first decision, the hop before it (what its window covers)
    rect = window.timeline_img.mapRectToView(window.timeline_img.boundingRect())
    assert rect.left() == pytest.approx(window.wall_time(t0 + HOP) - HOP, abs=HOP / 2)
    tx, _ = window.trace_curves[0].getData()
    assert tx[-1] == pytest.approx(window.wall_time(feed.ring.timestamp(feed.ring.written - 1)))
    # the spectrogram, probabilities and states show one time range, pixel for pixel
    ranges = [p.getViewBox().viewRange()[0] for p in plots.values() if p is not window.trace_plot]
    assert np.allclose(ranges, ranges[0], rtol=0, atol=1e-3 * (ranges[0][1] - ranges[0][0]))
    for edge in ("left", "right"):
        xs = []
        for plot in (window.spec_plot, window.prob_plot, window.timeline_plot):
            box = plot.getViewBox().sceneBoundingRect()
            corner = box.topLeft() if edge == "left" else box.topRight()
            xs.append(plot.mapTo(window, plot.mapFromScene(corner)).x())
        assert max(xs) - min(xs) <= 1, (edge, xs)


def test_state_row_labels_do_not_overlap(monitor):
    window, _, play = monitor
    play(5.0)
    axis = window.timeline_plot.getAxis("left")
    drawn = dict((text, rect) for rect, text in _drawn_tick_labels(axis))
    assert set(drawn) == {"decoded", "truth"}
    decoded, truth = drawn["decoded"], drawn["truth"]
    assert not decoded.intersects(truth)
    assert decoded.bottom() < truth.top()  # decoded above truth, with room between
    # each label sits within its own row of the painted plot
    view = window.timeline_plot.getViewBox()
    for label, (lo, hi) in (("decoded", (1.0, 2.0)), ("truth", (0.0, 1.0))):
        top = axis.mapFromScene(view.mapViewToScene(QtCore.QPointF(0, hi))).y()
        bottom = axis.mapFromScene(view.mapViewToScene(QtCore.QPointF(0, lo))).y()
        assert top <= drawn[label].top() and drawn[label].bottom() <= bottom, label


def test_one_colour_per_state_in_both_rows_and_a_legend(monitor):
    window, _, play = monitor
    t0 = play(30.0)
    legend = [(sample.item, label.text) for sample, label in window.state_legend.items]
    names = [name for _, name in legend]
    assert names[: len(window.classes)] == list(window.classes)
    assert names[len(window.classes) :] == ["no signal", "bad signal"]
    swatch = {name: item.opts["brush"].color().getRgb()[:3] for item, name in legend}
    image = window.timeline_plot.grab().toImage()
    for state, at in (("normal", 5.0), ("seizure", 15.0), ("normal", 25.0)):
        colour = window.state_colour(state)
        x = window.wall_time(t0 + at)
        decoded = _pixel(image, _to_widget(window.timeline_plot, x, 1.5))
        truth = _pixel(image, _to_widget(window.timeline_plot, x, 0.5))
        assert decoded == truth == colour == swatch[state], state
        # the banner and the probability curve use the same colour
        k = window.classes.index(state)
        assert window.prob_curves[k].opts["pen"].color().getRgb()[:3] == colour
    assert window.state_colour("normal") != window.state_colour("seizure")


def test_a_gap_in_the_decisions_is_a_gap_in_the_decoded_row(monitor):
    window, _, play = monitor
    t0 = play(30.0, skip=(4.0, 8.0))
    image = window.timeline_plot.grab().toImage()
    background = window.timeline_plot.backgroundBrush().color().getRgb()[:3]
    gap = _pixel(image, _to_widget(window.timeline_plot, window.wall_time(t0 + 6.0), 1.5))
    assert gap == background  # no decision then: nothing drawn
    # the states after the gap stay at their own times
    x = window.wall_time(t0 + 10.5)
    assert _pixel(image, _to_widget(window.timeline_plot, x, 1.5)) == window.state_colour("seizure")
    x = window.wall_time(t0 + 9.5)
    assert _pixel(image, _to_widget(window.timeline_plot, x, 1.5)) == window.state_colour("normal")


def test_band_power_map_has_a_colour_scale_that_follows_the_data(monitor):
    window, _, play = monitor
    bar = window.heat_bar
    assert isinstance(bar, pg.ColorBarItem)
    assert bar.scene() is window.heat_plot.scene() and bar.isVisible()
    for band_power in (1.2, 6.3):  # log10 powers from band_power to band_power + 1.5
        play(2.0, band_power=band_power, per_refresh=1)
        data = window.heat_img.image
        lo, hi = bar.levels()
        assert lo <= data.min() < lo + 0.5 and hi - 0.5 < data.max() <= hi
        assert tuple(window.heat_img.getLevels()) == (lo, hi)  # the image is drawn on it
    # the scale's numbers are painted beside the map
    labels = [float(text) for _, text in _drawn_tick_labels(bar.axis)]
    assert labels and min(labels) >= lo and max(labels) <= hi


def test_latency_reads_a_dash_until_the_first_decision(monitor):
    from dataclasses import replace

    window, feed, _ = monitor
    window.refresh()
    assert "<b>latency</b> -" in window.health.text() and "0.00 ms" not in window.health.text()
    feed.current = replace(feed.current, decisions=3, latency_p50_ms=1.25, latency_p99_ms=4.5)
    window._next_health_t = 0.0
    window.refresh()
    assert "<b>latency</b> p50 1.25 ms p99 4.50 ms" in window.health.text()
