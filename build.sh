#!/usr/bin/env bash
# build.sh: a checkpoint -> ONNX (template + search, plugin and standard xcorr) -> FP16 and INT8 Q/DQ
# variants -> TensorRT engines (when TensorRT and a GPU are here) -> self-check -> tracking on held-out
# generated sequences with success AUC and FPS. Every stage says what it did, or what it skipped and why.
#
#   bash build.sh                                  # the shipped default model (models/lite0)
#   bash build.sh --config cfg.yaml --checkpoint model.pth --out artifacts/mymodel
#   bash build.sh --precisions fp32,fp16 --flavours standard --max-batch 4 --rtx
#
# Options:
#   --config C       pysot config.yaml or built-in name (default: models/lite0/config.yaml)
#   --checkpoint P   pysot model.pth (default: models/lite0/model.pth)
#   --random-seed N  export seeded random weights instead of a checkpoint (tests the pipeline only)
#   --out DIR        artifact folder (default artifacts/<config name>)
#   --precisions L   comma list of fp32,fp16,int8 (default all three)
#   --flavours L     comma list of plugin,standard (default both)
#   --max-batch N    largest number of targets per call in the engines (default 4)
#   --rtx            also build TensorRT-RTX engines (AOT; works without a GPU)
#   --no-eval        skip the closing tracking run
set -euo pipefail
cd "$(dirname "$0")"

CONFIG=""; CHECKPOINT=""; SEED=""; OUT=""; PRECISIONS="fp32,fp16,int8"; FLAVOURS="plugin,standard"
MAX_BATCH=4; RTX=0; EVAL=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG=$2; shift 2 ;;
    --checkpoint) CHECKPOINT=$2; shift 2 ;;
    --random-seed) SEED=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --precisions) PRECISIONS=$2; shift 2 ;;
    --flavours) FLAVOURS=$2; shift 2 ;;
    --max-batch) MAX_BATCH=$2; shift 2 ;;
    --rtx) RTX=1; shift ;;
    --no-eval) EVAL=0; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown option $1 (see bash build.sh --help)" >&2; exit 2 ;;
  esac
done

if [[ -z "$CONFIG" && -z "$CHECKPOINT" && -z "$SEED" ]]; then
  CONFIG=models/lite0/config.yaml; CHECKPOINT=models/lite0/model.pth
fi
if [[ -z "$OUT" ]]; then
  name=$(basename "${CONFIG%.yaml}"); [[ "$name" == config ]] && name=$(basename "$(dirname "$CONFIG")")
  OUT=artifacts/$name
fi

[[ -x .venv/bin/python ]] || bash setup.sh
PY=.venv/bin/python
step() { printf '\n== %s\n' "$*"; }
has() { [[ ",$1," == *",$2,"* ]]; }

step "1/7 export: $CONFIG -> $OUT (template + search, flavours: both)"
if [[ -n "$SEED" ]]; then
  "$PY" -m export.to_onnx --config "${CONFIG:-lite0}" --random-seed "$SEED" --out "$OUT" --flavour both
else
  "$PY" -m export.to_onnx --config "$CONFIG" --checkpoint "$CHECKPOINT" --out "$OUT" --flavour both
fi

step "2/7 FP16 variants"
if has "$PRECISIONS" fp16; then "$PY" -m export.fp16 "$OUT"; else echo "skipped: fp16 not in --precisions"; fi

step "3/7 INT8: calibration on generated TRAIN-split sequences, then Q/DQ"
if has "$PRECISIONS" int8; then
  CALIB_SEQ=artifacts/calibration-sequences
  [[ -d "$CALIB_SEQ" ]] || "$PY" -m bench.synth --out "$CALIB_SEQ" --split train --count 6 --frames 40
  "$PY" -m calibration.collect "$OUT" --dataset "folder:$CALIB_SEQ" --out "$OUT/calib" --every 2 --max-per-sequence 20 \
      --overwrite --quiet
  "$PY" -m calibration.quantize "$OUT" --calib "$OUT/calib" --quiet
else
  echo "skipped: int8 not in --precisions"
fi

step "4/7 DepthwiseXCorr TensorRT plugin"
PLUGIN_ARGS=()
if has "$FLAVOURS" plugin; then
  set +e; "$PY" -m engines.plugin_build; rc=$?; set -e
  case $rc in
    0) PLUGIN_ARGS=(--plugin-lib artifacts/plugin/libsiamrpn_xcorr_plugin.so) ;;
    3) echo "skipped: the plugin needs nvcc and TensorRT headers (reasons above); plugin engines are skipped too" ;;
    *) echo "build.sh: the plugin build failed (exit $rc)" >&2; exit $rc ;;
  esac
else
  echo "skipped: plugin not in --flavours"
fi

step "5/7 TensorRT engines (only missing or stale ones)"
"$PY" -m engines.build "$OUT" --precision "$PRECISIONS" --flavour "$FLAVOURS" --max-batch "$MAX_BATCH" "${PLUGIN_ARGS[@]}"
if [[ $RTX == 1 ]]; then
  "$PY" -m engines.build "$OUT" --product tensorrt_rtx --precision "$PRECISIONS" --flavour standard --max-batch "$MAX_BATCH"
fi

step "6/7 self-check: each engine against ONNX Runtime on recorded inputs"
"$PY" -m engines.selfcheck "$OUT"

step "7/7 tracking 5 held-out generated sequences: success AUC and FPS per precision (ONNX Runtime, CPU)"
if [[ $EVAL == 1 ]]; then
  RUNS=()
  for p in ${PRECISIONS//,/ }; do RUNS+=(--run "onnxruntime:$OUT,precision=$p,flavour=standard,label=ort-$p"); done
  "$PY" -m bench.accuracy "${RUNS[@]}" --synth 5 --out "$OUT/eval" --threads 2
else
  echo "skipped: --no-eval"
fi
echo; echo "build.sh: done; artifacts in $OUT"
