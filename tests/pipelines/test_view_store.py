"""glyphsr-view without napari: the layers it adds (visible label layers, distinct colours, the store's arrays),
the clear message when napari is missing, refusals; with napari when it is installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from glyphsr.pipelines import view_store
from glyphsr.pipelines.demo_figures import GLYPH_COLORS, hex_rgb


class FakeViewer:
    """Records napari's add_* calls."""

    def __init__(self):
        self.added = []
        self.point = None

        class Dims:
            def set_point(dims, axis, value):
                self.point = (axis, value)

        class Selection:
            active = None

        class Layers:
            selection = Selection()

        self.dims, self.layers = Dims(), Layers()

    def add_image(self, data, **kw):
        self.added.append(("image", data, kw))
        return kw["name"]

    def add_labels(self, data, **kw):
        self.added.append(("labels", data, kw))
        return kw["name"]


def test_layers_show_the_masks_in_colours_that_stand_apart(synth_store: Path) -> None:
    viewer = FakeViewer()
    view_store.add_store(viewer, synth_store, sample=3)
    assert [(k, kw["name"]) for k, _, kw in viewer.added] == [("image", "HR"), ("labels", "line"),
                                                              ("labels", "glyphs")]
    (_, hr, hr_kw), (_, line, line_kw), (_, glyphs, glyph_kw) = viewer.added
    assert hr_kw["rgb"] and hr.shape == (40, 32, 128, 3)
    assert line.shape == glyphs.shape == (40, 32, 128)
    assert line_kw["visible"] and glyph_kw["visible"]  # napari-ome-zarr's reader hides them
    from glyphsr.data.mask_store import MaskStore

    root = MaskStore.open(synth_store).root
    np.testing.assert_array_equal(np.asarray(glyphs[:5]), root["labels/glyphs/0"][:5, 0])
    np.testing.assert_array_equal(np.asarray(hr[2]), root["0"][2].transpose(1, 2, 0))
    cmap = glyph_kw["colormap"]
    assert cmap[0] == cmap[None] == (0, 0, 0, 0)
    colours = [hex_rgb(cmap[k]) for k in range(1, 16)]
    assert len(set(colours)) == 15 == len(GLYPH_COLORS)
    for a, b in zip(colours, colours[1:]):  # neighbouring characters far apart
        assert sum(abs(x - y) for x, y in zip(a, b)) > 150
    for c in colours:  # vivid: neither pale, nor dark, nor grey
        assert max(c) >= 200 and max(c) - min(c) >= 150
    assert viewer.point == (0, 3) and viewer.layers.selection.active == "glyphs"


def test_missing_napari_is_named_with_what_to_install(synth_store: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "napari", None)  # import napari -> ImportError
    res = CliRunner().invoke(view_store.main, [str(synth_store)])
    assert res.exit_code == 2 and 'pip install "napari[pyqt5]"' in res.output


def test_refusals_before_napari_starts(synth_store: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(view_store.main, [str(tmp_path)])
    assert res.exit_code == 2 and "not a glyphsr mask store" in res.output
    res = CliRunner().invoke(view_store.main, [str(synth_store), "--sample", "40"])
    assert res.exit_code == 2 and "the store has 40 samples (0..39)" in res.output
