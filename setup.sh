#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv.
#   bash setup.sh          runtime + export + bench + train: enough for build.sh and tracking
#   bash setup.sh --dev    also the test tools (pytest, TensorRT-RTX's CPU builder, sample data) and serving
#   bash setup.sh --serve  also Triton serving (tritonclient, the tritonserver of nvidia-pytriton)
#
# The venv sees system site-packages so that a Jetson's own OpenCV (with GStreamer), TensorRT and torch
# are used as they are. torch and OpenCV are installed from pip only when none can be imported, and
# torch then as a pinned version: an unpinned request resolves to a multi-gigabyte CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
TORCH_PIN=${TORCH_PIN:-torch==2.13.0}
extras="export,bench,data,train"
serve=0
case "${1:-}" in
  --dev) extras="$extras,dev,engines"; serve=1 ;;
  --serve) extras="$extras,serve"; serve=1 ;;
  "") ;;
  *) echo "setup.sh: unknown option $1 (use --dev or --serve)" >&2; exit 2 ;;
esac

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
# On a machine with an NVIDIA driver, cuda-python (the TensorRT backend's memory and streams) must have
# the driver's CUDA major: 13.x answers every call with cudaErrorInsufficientDriver on a CUDA 12 driver
# (JetPack 6). runtime/cuda_versions.py chooses it from the driver and TensorRT, and says why (stderr).
cuda_req=$("$VPY" -m runtime.cuda_versions) || cuda_req=""
pip_q -e ".[$extras]" ${cuda_req:+"$cuda_req"}
# Serving with Triton (--dev, --serve): the tritonserver bundled in the nvidia-pytriton wheel (Linux x86_64 and
# aarch64). --no-deps: its metadata pins numpy<2 and only its binaries are used. Its python backend stub
# passes empty tensors with numpy 2, so a numpy 1.x goes into a folder of its own, for the stub alone.
if [[ $serve == 1 && "$(uname -s)" == Linux ]]; then
  pip_q --no-deps "nvidia-pytriton==0.7.0"
  [[ -d .venv/triton-stub-python/numpy ]] || pip_q --no-deps --target .venv/triton-stub-python "numpy>=1.23,<2"
fi
echo "setup: ready ($("$VPY" -c 'import sys, torch, cv2, onnxruntime as o; print(f"python {sys.version.split()[0]}, torch {torch.__version__}, opencv {cv2.__version__}, onnxruntime {o.__version__}")'))"
