"""Tests of geoxr.label.class_config (ClassConfig)."""

import json

import pytest

import geoxr
from geoxr import ClassConfig


def test_names_ids_and_default_colors():
    cc = ClassConfig(["background", "building"])
    assert cc.names == ("background", "building") and len(cc) == 2
    assert cc.get_class_id("building") == 1
    assert cc.null_class is None and cc.null_class_id is None
    assert len(cc.colors) == 2 and len(set(cc.colors)) == 2
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in cc.colors)


def test_ensure_null_class_appends_null():
    cc = ClassConfig(["background", "building"]).ensure_null_class()
    assert cc.names == ("background", "building", "null")
    assert cc.null_class == "null" and cc.null_class_id == 2
    assert cc.colors[2] == (0, 0, 0)
    assert cc.ensure_null_class() is cc


def test_a_class_named_null_is_the_null_class_as_in_raster_vision():
    # It was kept as a class to train on, and a "_null" class appended as the ignored one.
    cc = ClassConfig(["background", "building", "null"])
    assert cc.null_class == "null" and cc.null_class_id == 2 and cc.get_null_class_id() == 2
    assert cc.ensure_null_class() is cc and cc.ignore_class_id == 2
    assert ClassConfig.from_dict(cc.to_dict()) == cc
    named = ClassConfig(["null", "a", "b"], null_class="b")  # one named otherwise wins
    assert named.null_class_id == 2


def test_raster_vision_class_config_methods():
    cc = ClassConfig(["background", "building"], colors=["#000000", (255, 0, 0)])
    assert cc.get_name(1) == "building" and "building" in cc and "road" not in cc
    assert list(cc) == ["background", "building"]
    assert cc.get_color_to_class_id() == {(0, 0, 0): 0, (255, 0, 0): 1}
    with pytest.raises(geoxr.ClassConfigError, match="no null class"):
        cc.get_null_class_id()
    with pytest.raises(geoxr.ClassConfigError, match=r"ids 0\.\.1"):
        cc.get_name(2)
    assert cc.ensure_null_class().get_null_class_id() == 2


def test_existing_null_class_is_kept(nc_class_config):
    assert nc_class_config.null_class_id == 0
    assert nc_class_config.colors[0] == (0, 0, 0)
    assert nc_class_config.ensure_null_class() is nc_class_config
    assert nc_class_config.get_class_id("sediment") == 7


def test_a_null_class_named_by_the_empty_string_is_the_ignored_class():
    # Its name is falsy: the loss ignored id 2 (no class) and trained on it as class 0.
    config = ClassConfig(["", "a"], null_class="")
    assert config.null_class_id == config.ignore_class_id == 0
    assert config.ensure_null_class() == config


def test_colors_from_hex_and_tuples():
    cc = ClassConfig(["a", "b"], colors=["#ff8000", (1, 2, 3)])
    assert cc.colors == ((255, 128, 0), (1, 2, 3))


@pytest.mark.parametrize(
    "color",
    [(300, 0, 0), (0.5, 0.2, 0.9), (1, 2, 3, 255), "#gg0000", "#fff", 7, "#-f0000", "f f f "],
)
def test_a_colour_that_is_no_rgb_is_refused(color):
    # 300 went into COG colour maps (clamped by GDAL), fractions became black, and a bad
    # hex string or RGBA raised plain ValueErrors.
    with pytest.raises(geoxr.ClassConfigError, match=r"is not '#rrggbb' or three ints 0\.\.255"):
        ClassConfig(["a", "b"], colors=[color, (1, 2, 3)])


def test_dict_round_trip_through_json(nc_class_config):
    d = json.loads(json.dumps(nc_class_config.to_dict()))
    assert ClassConfig.from_dict(d) == nc_class_config
    assert d["null_class"] == "null" and d["names"][7] == "sediment"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"names": []}, "at least one class name"),
        ({"names": ["a", "a"]}, r"unique, got \['a', 'a'\]"),
        ({"names": ["a"], "null_class": "b"}, "null_class 'b' is not one of the class names"),
        ({"names": ["a", "b"], "colors": [(1, 2, 3)]}, "Got 1 colors for 2 classes"),
        ({"names": ["a"], "colors": ["#fff"]}, "is not '#rrggbb'"),
    ],
)
def test_invalid_configs_raise(kwargs, match):
    with pytest.raises(geoxr.ClassConfigError, match=match):
        ClassConfig(**kwargs)


def test_unknown_class_name_raises():
    with pytest.raises(geoxr.ClassConfigError, match=r"Unknown class 'tree'; known: \['a'\]"):
        ClassConfig(["a"]).get_class_id("tree")
    assert issubclass(geoxr.ClassConfigError, ValueError)


def test_default_colours_name_one_class_each_past_the_palette():
    # The 10-colour palette repeated: class 10 had class 0's colour, and an RGB label
    # raster (or get_color_to_class_id) took one for the other.
    cc = ClassConfig([f"c{i}" for i in range(40)], null_class="c3")
    assert cc.colors[:3] == ClassConfig(["a", "b", "c"]).colors  # the palette first, as before
    assert cc.colors[3] == (0, 0, 0) and len(set(cc.colors)) == 40
    assert cc.get_color_to_class_id()[cc.colors[10]] == 10
