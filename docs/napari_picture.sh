#!/usr/bin/env bash
# The picture of a mask store in napari that the README shows (docs/img/napari-store.png), drawn by glyphsr-view
# in a real napari window under Xvfb: what a user sees after `glyphsr-view STORE`.
#
#   bash docs/napari_picture.sh STORE.zarr [SAMPLE] [OUT.png]
#
# Needs Xvfb (apt-get install xvfb) and makes a Python environment with napari in $NAPARI_VENV (default
# /tmp/glyphsr-napari) on its first run: napari with PyQt5, zarr, lmdb, rich and click, not glyphsr's own
# dependencies (torch and the rest), since the viewer needs none of them: glyphsr is taken from this checkout.
# Not part of CI.
set -euo pipefail
store=$(realpath "$1")
sample=${2:-0}
out=$(realpath -m "${3:-docs/img/napari-store.png}")
venv=${NAPARI_VENV:-/tmp/glyphsr-napari}
cd "$(dirname "$0")/.."
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "napari[pyqt5]" "zarr>=3.1" lmdb rich click
fi
PYTHONPATH="$PWD" xvfb-run -a -s "-screen 0 1600x1000x24" "$venv/bin/python" -m glyphsr.pipelines.view_store \
  "$store" --sample "$sample" --screenshot "$out"
