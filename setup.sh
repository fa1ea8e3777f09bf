#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#   bash setup.sh          runtime + export + bench + train: enough for build.sh and tracking
#   bash setup.sh --dev    also the test tools (pytest, TensorRT-RTX's CPU builder, sample data)
#
# The venv sees system site-packages so that a Jetson's own OpenCV (with GStreamer), TensorRT and torch
# are used as they are. torch and OpenCV are installed from pip only when none can be imported, and
# torch then as a pinned version: an unpinned request resolves to a multi-gigabyte CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
extras="export,bench,data,train"
[[ "${1:-}" == "--dev" ]] && extras="$extras,dev,engines"

if [[ ! -x .venv/bin/python ]]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 10), "Python >= 3.10 is required, found " + sys.version.split()[0]'
  "$PY" -m venv --system-site-packages .venv
fi
VPY=.venv/bin/python
pip_q() { "$VPY" -m pip install --disable-pip-version-check -q "$@"; }

if ! "$VPY" -c 'import torch' 2>/dev/null; then
  echo "setup: no torch found; installing $TORCH_PIN (set TORCH_PIN to choose another build)"
  pip_q "$TORCH_PIN"
fi
if ! "$VPY" -c 'import cv2' 2>/dev/null; then
  echo "setup: no OpenCV found; installing opencv-python-headless (on Jetson use the system OpenCV instead)"
  pip_q opencv-python-headless
fi
pip_q -e ".[$extras]"
echo "setup: ready ($("$VPY" -c 'import sys, torch, cv2, onnxruntime as o; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, opencv {cv2.__version__}, onnxruntime {o.__version__}")'))"
