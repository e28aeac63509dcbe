"""``glyphsr-view STORE.zarr``: a mask store in napari, the glyph masks shown over the HR images.

    glyphsr-view masks.zarr                                  # a napari window; the slider walks the samples
    glyphsr-view masks.zarr --sample 12                      # open at sample 12
    glyphsr-view masks.zarr --screenshot view.png --sample 3 # draw the window into a PNG and quit (e.g. xvfb-run)

In Python (a notebook, napari's console): ``from glyphsr.pipelines.view_store import open_store;
viewer = open_store("masks.zarr")``.

napari is optional, not a dependency of glyphsr: ``pip install "napari[pyqt5]"`` (napari 0.9 runs on Python 3.11
and later). The layers are added with napari's own API (``add_image`` with ``rgb=True``, ``add_labels``), from the
store's arrays read lazily with dask, so no napari plugin is needed: napari-ome-zarr's reader opens the same store
but hides every label layer, and needs Python 3.12. Layers, bottom to top:

- ``HR``: the HR images (store array ``0``, TextZoom's 128x32), RGB, at opacity 0.6 so the masks stand out (the
  layer controls put it back to 1);
- ``line``: the line mask (``labels/line/0``) in magenta, half transparent;
- ``glyphs``: the characters (``labels/glyphs/0``, 0 background, k = character k), in the colours of the demo's
  pictures (:data:`glyphsr.pipelines.demo_figures.GLYPH_COLORS`): vivid hues, neighbouring characters far apart,
  none pale or dark, so a mask stands apart from the text and from light and dark backgrounds.

Both label layers are visible from the start. Exit status: 0, 2 when the store cannot be opened or napari is not
installed (with what to install).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from glyphsr.pipelines._cli import console, fail
from glyphsr.pipelines.demo_figures import GLYPH_COLORS, LINE_COLOR

NAPARI_MISSING = ('napari is not installed: pip install "napari[pyqt5]" (napari 0.9 runs on Python 3.11 and later), '
                  "then run glyphsr-view again")
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def glyph_colormap(n: int = 15) -> dict:
    """napari's direct label colormap as a dict: label k -> its character colour; background transparent."""
    cmap: dict = {None: TRANSPARENT, 0: TRANSPARENT}
    for k in range(1, n + 1):
        cmap[k] = GLYPH_COLORS[(k - 1) % len(GLYPH_COLORS)]
    return cmap


def store_layers(path: str | Path) -> list[tuple[str, Any, dict]]:
    """What :func:`open_store` adds: (napari layer kind, data, keyword arguments), bottom to top. The data are dask
    arrays over the store: hr (N, 32, 128, 3), line and glyphs (N, 32, 128). Raises StoreError for a path that is
    not a mask store or a damaged one."""
    import dask.array as da

    from glyphsr.data.mask_store import MaskStore

    store = MaskStore.open(path)
    root = store.root
    n_chars = int(root["char"].shape[1])
    hr = da.from_zarr(root["0"]).transpose(0, 2, 3, 1)  # (N, 3, H, W) -> (N, H, W, 3)
    line = da.from_zarr(root["labels/line/0"])[:, 0]  # (N, 1, H, W) -> (N, H, W)
    glyphs = da.from_zarr(root["labels/glyphs/0"])[:, 0]
    axes = ("sample", "y", "x")
    return [
        # dimmed over napari's black canvas, as the demo's pictures darken the image under the masks
        ("image", hr, {"name": "HR", "rgb": True, "opacity": 0.6, "axis_labels": axes}),
        ("labels", line, {"name": "line", "visible": True, "opacity": 0.45, "axis_labels": axes,
                          "colormap": {None: TRANSPARENT, 0: TRANSPARENT, 1: LINE_COLOR}}),
        ("labels", glyphs, {"name": "glyphs", "visible": True, "opacity": 0.9, "axis_labels": axes,
                            "colormap": glyph_colormap(n_chars)}),
    ]


def add_store(viewer, path: str | Path, sample: int = 0) -> list:
    """Add a mask store's layers to a napari ``viewer`` and show ``sample``; returns the layers."""
    layers = [getattr(viewer, f"add_{kind}")(data, **kwargs) for kind, data, kwargs in store_layers(path)]
    viewer.dims.set_point(0, sample)
    viewer.layers.selection.active = layers[-1]
    return layers


def open_store(path: str | Path, sample: int = 0, show: bool = True):
    """A napari viewer showing the store (``napari.run()`` starts its event loop outside IPython)."""
    import napari

    viewer = napari.Viewer(title=f"glyphsr mask store: {path}", show=show)
    add_store(viewer, path, sample)
    viewer.reset_view()
    return viewer


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("store", type=click.Path())
@click.option("--sample", default=0, show_default=True, type=click.IntRange(min=0), help="Sample to show first.")
@click.option("--screenshot", default=None, type=click.Path(dir_okay=False),
              help="Write the window (canvas and layer list) to this PNG and quit.")
@click.option("--zoom", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Camera zoom (default: the whole image fits the window).")
def main(store: str, sample: int, screenshot: str | None, zoom: float | None) -> None:
    """Open a mask store made by gem-extract in napari, with the character and line masks shown over the HR
    images in colours that stand apart. Needs napari (pip install "napari[pyqt5]")."""
    from glyphsr.data.mask_store import MaskStore, StoreError

    try:
        n = len(MaskStore.open(store))
    except StoreError as exc:  # missing, not a mask store, or damaged (an array missing or unreadable)
        fail(str(exc))
    if sample >= n:
        fail(f"--sample {sample}: the store has {n} samples (0..{n - 1})")
    try:
        import napari
    except ImportError:
        fail(NAPARI_MISSING)
    viewer = open_store(store, sample)
    if zoom is not None:
        viewer.camera.zoom = zoom
    if screenshot is not None:
        viewer.window.resize(1300, 760)
        viewer.screenshot(screenshot, canvas_only=False)
        viewer.close()
        console.print(f"wrote {screenshot}", soft_wrap=True)
        return
    console.print(f"napari: {store}, {n} samples; the slider at the bottom walks them", soft_wrap=True)
    napari.run()


if __name__ == "__main__":
    main()
