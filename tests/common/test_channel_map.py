"""Channel identity and channel maps: parsing every map format, resolving a map against a model's
and a stream's labels, and the messages when they differ."""

import logging

import pytest

from rtdecode.common.channel_map import (
    BY_LABEL,
    ChannelMap,
    ChannelMapError,
    known_labels,
    label_difference,
    route_channels,
)
from rtdecode.common.channels import default_channel_labels

MODEL = ("CSC1", "CSC2", "CSC3", "CSC4")
WHERE = {"model": "model m.onnx", "source": "stream 'rig'"}


def test_labels_that_are_the_defaults_or_incomplete_carry_no_identity():
    assert known_labels(MODEL, 4) == MODEL
    assert known_labels(None, 4) is None
    assert known_labels(default_channel_labels(4), 4) is None  # what a header without labels gets
    assert known_labels(("a", "", "c", "d"), 4) is None
    assert known_labels(("a", "b"), 4) is None
    assert known_labels(("ch001", "ch000"), 2) == ("ch001", "ch000")  # not the defaults' order


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("m.csv", "model,stream\nCSC1,CH04\n# a comment\n\nCSC2,CH03\nCSC3,CH02\nCSC4,CH01\n"),
        ("m.csv", "CSC1, CH04\nCSC2,CH03\nCSC3,CH02\nCSC4,CH01"),
        ("m.tsv", "CSC1\tCH04\nCSC2\tCH03\nCSC3\tCH02\nCSC4\tCH01\n"),
        ("m.json", '{"CSC1": "CH04", "CSC2": "CH03", "CSC3": "CH02", "CSC4": "CH01"}'),
        ("m.toml", 'CSC1 = "CH04"\nCSC2 = "CH03"\nCSC3 = "CH02"\nCSC4 = "CH01"\n'),
    ],
)
def test_every_file_format_gives_the_same_map(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    assert (
        ChannelMap.parse(str(path)).pairs
        == ChannelMap.parse("CSC1=CH04, CSC2=CH03,CSC3=CH02,CSC4=CH01").pairs
    )


def test_a_map_resolves_to_the_stream_channel_of_each_model_channel_in_model_order():
    stream = ("CH01", "CH02", "AUX", "CH03", "CH04")
    cmap = ChannelMap.parse("CSC4=CH01,CSC3=CH02,CSC2=CH03,CSC1=CH04")  # pairs in any order
    assert cmap.resolve(MODEL, stream, **WHERE) == (4, 3, 1, 0)
    assert ChannelMap.parse(BY_LABEL).resolve(MODEL, ("X",) + MODEL[::-1], **WHERE) == (4, 3, 2, 1)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("CSC1", "neither a file"),
        ("CSC1=CH01,CSC2", "'CSC2' is not MODEL=STREAM"),
        ("CSC1=CH01,CSC1=CH02", "model channel(s) CSC1 mapped more than once"),
        ("CSC1=CH01,CSC2=CH01", "stream channel(s) CH01 mapped more than once"),
        ("missing.csv", "does not exist"),
    ],
)
def test_malformed_maps_are_refused_with_the_reason(text, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ChannelMapError) as err:
        ChannelMap.parse(text)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        ("m.csv", "CSC1,CH01\nCSC2\n", "line 2: 'CSC2' is not two labels"),
        ("m.json", '{"CSC1": "CH01", "CSC1": "CH02"}', "CSC1 mapped more than once"),
        ("m.json", '["CSC1", "CH01"]', "one JSON object"),
        ("m.json", '{"CSC1": 1}', "'CSC1' is not a string"),
        ("m.toml", "CSC1 = ", "not valid TOML"),
    ],
)
def test_malformed_map_files_name_the_line_or_key(tmp_path, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ChannelMapError) as err:
        ChannelMap.parse(str(path))
    assert needle in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "stream", "needle"),
    [
        ("CSC1=CH01,CSC2=CH02,CSC3=CH03,CSC9=CH04", ("CH01", "CH02", "CH03", "CH04"), "CSC9"),
        ("CSC1=CH01,CSC2=CH02", ("CH01", "CH02", "CH03", "CH04"), "2 of the 4 channels"),
        (
            "CSC1=CH01,CSC2=CH02,CSC3=CH03,CSC4=CH09",
            ("CH01", "CH02", "CH03", "CH04"),
            "no channel labelled CH09",
        ),
        (
            "CSC1=CH01,CSC2=CH02,CSC3=CH03,CSC4=CH04",
            ("CH01", "CH02", "CH03", "CH04", "CH04"),
            "several channels labelled CH04",
        ),
        (BY_LABEL, ("CSC1", "CSC2", "CSC3"), "no channel labelled CSC4"),
    ],
)
def test_a_map_that_does_not_fit_the_model_or_stream_is_refused(text, stream, needle):
    with pytest.raises(ChannelMapError) as err:
        ChannelMap.parse(text).resolve(MODEL, stream, **WHERE)
    assert needle in str(err.value)


def test_the_difference_shows_missing_extra_and_reordered_channels():
    text = label_difference(
        MODEL, ("CSC2", "CSC1", "CSC3", "AUX1"), expected_name="the model", found_name="the stream"
    )
    assert "1 channel(s) of the model missing from the stream (CSC4)" in text
    assert "1 channel(s) of the stream not in the model (AUX1)" in text
    assert "CSC1 is channel 0 of the model, 1 of the stream" in text
    many = [f"C{i}" for i in range(64)]
    text = label_difference(many, many[::-1], expected_name="the model", found_name="the stream")
    assert "64 channel(s) in common in another order" in text and "(59 more)" in text
    assert label_difference(MODEL, MODEL, expected_name="the model", found_name="the stream") == ""


def test_route_channels_refuses_other_labels_and_passes_the_same(caplog):
    assert route_channels(MODEL, MODEL, **WHERE) is None
    with pytest.raises(ChannelMapError) as err:
        route_channels(MODEL, MODEL[::-1], **WHERE)
    message = str(err.value)
    assert message.startswith("stream 'rig' does not carry the channels of model m.onnx")
    assert "--channel-map" in message and BY_LABEL in message  # every channel is there
    with pytest.raises(ChannelMapError) as err:
        route_channels(MODEL, ("A", "B", "C", "D"), **WHERE)
    assert "4 channel(s) of the model missing" in str(err.value)
    assert BY_LABEL not in str(err.value)  # by-label could not find them
    # a map that says "as they come" is no reordering
    assert route_channels(MODEL, MODEL, ChannelMap.parse(BY_LABEL), **WHERE) is None
    assert route_channels(MODEL, ("X",) + MODEL, ChannelMap.parse(BY_LABEL), **WHERE) == (
        1,
        2,
        3,
        4,
    )


def test_without_labels_on_one_side_only_a_warning_says_identity_is_unchecked(caplog):
    with caplog.at_level(logging.WARNING, logger="rtdecode"):
        assert route_channels(MODEL, default_channel_labels(4), **WHERE) is None
    (record,) = caplog.records
    assert "channel identity cannot be checked: no channel labels on stream 'rig'" in (
        record.getMessage()
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rtdecode"):
        # another count: the caller's count check refuses it, no warning before the error
        assert route_channels(MODEL, default_channel_labels(8), **WHERE) is None
    assert not caplog.records
