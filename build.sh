#!/usr/bin/env bash
# build.sh: a checkpoint -> ONNX (template + search, plugin and standard xcorr) -> FP16 and INT8 Q/DQ
# variants -> TensorRT engines (when TensorRT and a GPU are here) -> self-check -> tracking on held-out
# generated sequences with success AUC and FPS. Every stage says what it did, or what it skipped and why.
#
#   bash build.sh                                  # the shipped default model (models/lite0)
#   bash build.sh --config cfg.yaml --checkpoint model.pth --out artifacts/mymodel
#   bash build.sh --precisions fp32,fp16 --flavours standard --max-batch 4 --rtx
#   bash build.sh --random-seed 0 --precisions fp32 --no-eval --out /tmp/pipeline-check
#
# Options:
#   --config C       pysot config.yaml or built-in name: r50, r50_otb, mobilev2, alex, lite0
#                    (default: models/lite0/config.yaml)
#   --checkpoint P   pysot model.pth (default: models/lite0/model.pth)
#   --random-seed N  export seeded random weights instead of a checkpoint (tests the pipeline only)
#   --out DIR        artifact folder (default artifacts/<config name>; artifacts/<name>-seed<N> for
#                    --random-seed)
#   --precisions L   comma list of fp32,fp16,int8 (default all three)
#   --flavours L     comma list of plugin,standard: FP16/INT8 graphs and engines (default both; the
#                    FP32 export always writes both)
#   --max-batch N    largest number of targets per call in the engines, 1..64 (default 4)
#   --calib-sequences DIR  generated calibration sequences (default artifacts/calibration-sequences)
#   --calib-count N  how many to generate (default 6; 40 frames each, --calib-frames)
#   --rtx            also build TensorRT-RTX engines (AOT; works without a GPU)
#   --lost-search    also export the long-term tracker's large search graph (search_lost.*, the 831 crop)
#                    for a short-term config, so `--tracker long-term` can run on it; a long-term config
#                    (TRACK.TYPE SiamRPNLTTracker) always gets it. Its FP16/INT8 variants and engines follow.
#   --no-eval        skip the closing tracking run
#   --verify         end with `python -m engines.verify`: on a GPU machine, the
#                    engines, plugin and trtexec checked end to end, report in DIR/verify; without a
#                    GPU it prints one line and passes
#   --force          regenerate every step's output, even when it is up to date
#
# Every step regenerates only what is stale and says "up to date" otherwise: the FP32 graphs carry an
# export id (a hash of the checkpoint, config and exporter versions), FP16/INT8 graphs the sha256 of
# the FP32 graph they came from and their options, the calibration set the data and model it was
# recorded from, engines a sidecar; step 7 reuses tracking results made by the same files.
# One build at a time per --out folder: a second one is refused (lock file DIR/.build.lock).
# A build killed at any step leaves no half-written file; rerun the same command to finish it.
set -euo pipefail
cd "$(dirname "$0")"

die() { echo "build.sh: $*" >&2; exit 2; }
value() {  # value OPTION "$@": the option's argument, or a clear error when it is missing
  [[ $# -ge 2 && -n "$2" && "$2" != --* ]] || die "$1 needs a value (see bash build.sh --help)"
  printf '%s' "$2"
}

CONFIG=""; CHECKPOINT=""; SEED=""; OUT=""; PRECISIONS="fp32,fp16,int8"; FLAVOURS="plugin,standard"
MAX_BATCH=4; RTX=0; EVAL=1; VERIFY=0; FORCE=0; LOST_SEARCH=0
CALIB_SEQ=artifacts/calibration-sequences; CALIB_COUNT=6; CALIB_FRAMES=40
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) CONFIG=$(value "$@"); shift 2 ;;
    --checkpoint) CHECKPOINT=$(value "$@"); shift 2 ;;
    --random-seed) SEED=$(value "$@"); shift 2 ;;
    --out) OUT=$(value "$@"); shift 2 ;;
    --precisions) PRECISIONS=$(value "$@"); shift 2 ;;
    --flavours) FLAVOURS=$(value "$@"); shift 2 ;;
    --max-batch) MAX_BATCH=$(value "$@"); shift 2 ;;
    --calib-sequences) CALIB_SEQ=$(value "$@"); shift 2 ;;
    --calib-count) CALIB_COUNT=$(value "$@"); shift 2 ;;
    --calib-frames) CALIB_FRAMES=$(value "$@"); shift 2 ;;
    --rtx) RTX=1; shift ;;
    --lost-search) LOST_SEARCH=1; shift ;;
    --no-eval) EVAL=0; shift ;;
    --verify) VERIFY=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see bash build.sh --help)" ;;
  esac
done

# ---- every argument is checked here, before any work -------------------------------------------
check_list() {  # check_list OPTION VALUE ALLOWED...
  local opt=$1 list=$2 item; shift 2
  [[ -n "$list" ]] || die "$opt is empty; choose from $(IFS=,; echo "$*")"
  for item in ${list//,/ }; do
    [[ " $* " == *" $item "* ]] || die "$opt: unknown value '$item'; choose from $(IFS=,; echo "$*")"
  done
}
is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }
check_list --precisions "$PRECISIONS" fp32 fp16 int8
check_list --flavours "$FLAVOURS" plugin standard
is_int "$MAX_BATCH" && (( MAX_BATCH >= 1 && MAX_BATCH <= 64 )) \
  || die "--max-batch $MAX_BATCH: expected a whole number from 1 to 64 (targets per engine call)"
[[ -z "$SEED" ]] || is_int "$SEED" || die "--random-seed $SEED: expected a whole number >= 0"
is_int "$CALIB_COUNT" && (( CALIB_COUNT >= 1 )) || die "--calib-count $CALIB_COUNT: expected a whole number >= 1"
is_int "$CALIB_FRAMES" && (( CALIB_FRAMES >= 2 )) || die "--calib-frames $CALIB_FRAMES: expected a whole number >= 2"
[[ -z "$SEED" || -z "$CHECKPOINT" ]] || die "--checkpoint and --random-seed exclude each other; pass one"
if [[ -z "$CONFIG" && -z "$CHECKPOINT" && -z "$SEED" ]]; then
  CONFIG=models/lite0/config.yaml; CHECKPOINT=models/lite0/model.pth
fi
[[ -n "$CONFIG" ]] || { [[ -n "$SEED" ]] && CONFIG=lite0; } \
  || die "--checkpoint $CHECKPOINT needs --config (the pysot config.yaml it was trained with)"
case "$CONFIG" in
  r50|r50_otb|mobilev2|alex|lite0) ;;
  *.yaml|*.yml) [[ -f "$CONFIG" ]] || die "--config $CONFIG: no such file" ;;
  *) die "--config $CONFIG: expected a pysot config.yaml or one of r50, r50_otb, mobilev2, alex, lite0" ;;
esac
[[ -n "$SEED" || -n "$CHECKPOINT" ]] \
  || die "--config $CONFIG needs --checkpoint model.pth (or --random-seed N to test the pipeline)"
[[ -z "$CHECKPOINT" || -f "$CHECKPOINT" ]] || die "--checkpoint $CHECKPOINT: no such file"
if [[ -z "$OUT" ]]; then
  name=$(basename "${CONFIG%.y*ml}"); [[ "$name" == config ]] && name=$(basename "$(dirname "$CONFIG")")
  OUT=artifacts/$name${SEED:+-seed$SEED}
fi
[[ ! -e "$OUT" || -d "$OUT" ]] || die "--out $OUT is a file; pass a folder"

# ---- one build per output folder ------------------------------------------------------------------
mkdir -p "$OUT"
LOCK="$OUT/.build.lock"
if command -v flock >/dev/null; then
  exec 9>>"$LOCK"   # append mode: opening does not truncate, so a refused run can read the holder's PID
  if ! flock -n 9; then
    holder=$(cat "$LOCK" 2>/dev/null || true)
    echo "build.sh: another build (PID ${holder:-unknown}) is writing $OUT; wait for it to finish or stop it" \
         "(kill ${holder:-PID}), then run this again. Two builds in one folder would mix their files." >&2
    exit 1
  fi
  echo $$ > "$LOCK"
else
  echo "build.sh: note: no flock command here, so a second build into $OUT at the same time is not prevented"
fi

# Temp files and folders of a killed build (each step writes to a hidden temp name, then renames):
# nothing else writes into this folder while we hold the lock, so they are safe to remove.
leftovers=$(find "$OUT" -maxdepth 1 -name '.*.tmp*' 2>/dev/null | wc -l)
if (( leftovers > 0 )); then
  find "$OUT" -maxdepth 1 -name '.*.tmp*' -exec rm -rf {} +
  echo "build.sh: removed $leftovers temp file(s) left in $OUT by an interrupted build"
fi

[[ -x .venv/bin/python ]] || bash setup.sh
PY=.venv/bin/python
step() { printf '\n== %s\n' "$*"; }
has() { [[ ",$1," == *",$2,"* ]]; }
STALE=(--only-stale); [[ $FORCE == 1 ]] && STALE=()
VARIANT_FLAVOURS=(); for f in ${FLAVOURS//,/ }; do VARIANT_FLAVOURS+=(--flavour "$f"); done
EVAL_FLAVOUR=standard; has "$FLAVOURS" standard || EVAL_FLAVOUR=plugin

step "1/7 export: $CONFIG -> $OUT (template + search, flavours: both)"
# The long-term search graph (search_lost.*): exported for a long-term config or with --lost-search;
# steps 2, 3, 5 and 6 then make its FP16/INT8 variants, engines and checks like the pair's.
LOST_ARGS=(); [[ $LOST_SEARCH == 1 ]] && LOST_ARGS=(--lost-search)
# (a config that does not load reads as short-term here; the export below then says what is wrong with it)
long_term=$("$PY" -c 'import sys; from export.config import resolve_config; print(int(resolve_config(sys.argv[1]).tracker.long_term))' "$CONFIG" 2>/dev/null || echo 0)
if [[ "$long_term" == 1 ]]; then
  echo "long-term config: the large search graph (search_lost.*) is exported with the pair"
elif [[ $LOST_SEARCH == 1 ]]; then
  echo "--lost-search: the large search graph (search_lost.*) is exported with the pair"
else
  echo "long-term search graph: skipped ($CONFIG is a short-term config); add it with --lost-search to track with --tracker long-term"
fi
if [[ -n "$SEED" ]]; then
  "$PY" -m export.to_onnx --config "$CONFIG" --random-seed "$SEED" --out "$OUT" --flavour both "${LOST_ARGS[@]}" "${STALE[@]}"
else
  "$PY" -m export.to_onnx --config "$CONFIG" --checkpoint "$CHECKPOINT" --out "$OUT" --flavour both "${LOST_ARGS[@]}" "${STALE[@]}"
fi

step "2/7 FP16 variants"
if has "$PRECISIONS" fp16; then "$PY" -m export.fp16 "$OUT" "${VARIANT_FLAVOURS[@]}" "${STALE[@]}"; else echo "skipped: fp16 not in --precisions"; fi

step "3/7 INT8: calibration on generated TRAIN-split sequences, then Q/DQ (TensorRT's and ONNX Runtime's placement)"
if has "$PRECISIONS" int8; then
  # The sequence set may be shared by builds into other folders: one writer/reader at a time.
  mkdir -p "$(dirname "$CALIB_SEQ")"
  exec 8>>"$CALIB_SEQ.lock"
  if command -v flock >/dev/null && ! flock -n 8; then
    echo "waiting for another build that is using $CALIB_SEQ ..."; flock 8
  fi
  "$PY" -m bench.synth --out "$CALIB_SEQ" --split train --count "$CALIB_COUNT" --frames "$CALIB_FRAMES" "${STALE[@]}"
  "$PY" -m calibration.collect "$OUT" --dataset "folder:$CALIB_SEQ" --out "$OUT/calib" --every 2 --max-per-sequence 20 \
      --overwrite "${STALE[@]}"
  exec 8>&-
  "$PY" -m calibration.quantize "$OUT" --calib "$OUT/calib" "${VARIANT_FLAVOURS[@]}" "${STALE[@]}"
  # *.int8.cpu.onnx: the same calibration set, Q/DQ placed for ONNX Runtime's CPU integer kernels (the
  # graphs above are placed for TensorRT and run slower than FP32 on ORT); a few seconds for lite0.
  "$PY" -m calibration.cpu_int8 "$OUT" --calib "$OUT/calib" "${STALE[@]}"
else
  echo "skipped: int8 not in --precisions"
fi

step "4/7 DepthwiseXCorr TensorRT plugin"
PLUGIN_ARGS=()
if has "$FLAVOURS" plugin; then
  set +e; "$PY" -m engines.plugin_build 2>&1; rc=$?; set -e
  case $rc in
    0) PLUGIN_ARGS=(--plugin-lib artifacts/plugin/libsiamrpn_xcorr_plugin.so) ;;
    3) echo "skipped: a prerequisite of the plugin is missing (listed above); plugin engines are skipped too" ;;
    *) echo "build.sh: the plugin build failed (exit $rc)" >&2; exit $rc ;;
  esac
else
  echo "skipped: plugin not in --flavours"
fi

step "5/7 TensorRT engines (only missing or stale ones)"
# One line when nothing can be built here, rather than the same reason for every engine.
trt_state=$("$PY" - <<'EOF'
import importlib.util
from runtime.gpu import gpu_status
if importlib.util.find_spec("tensorrt") is None:
    rtx = importlib.util.find_spec("tensorrt_rtx") is not None
    print("skipped: TensorRT is not installed (JetPack ships it; on an x86 desktop with an NVIDIA GPU: "
          "pip install tensorrt)" + ("; TensorRT-RTX is installed: --rtx builds RTX engines without a GPU" if rtx else ""))
else:
    ok, reason = gpu_status()
    print("ok" if ok else f"skipped: TensorRT engines are built on the GPU they run on, and there is none ({reason})")
EOF
)
if [[ "$trt_state" == ok ]]; then
  "$PY" -m engines.build "$OUT" --precision "$PRECISIONS" --flavour "$FLAVOURS" --max-batch "$MAX_BATCH" "${PLUGIN_ARGS[@]}"
else
  echo "$trt_state"
fi
if [[ $RTX == 1 ]]; then
  "$PY" -m engines.build "$OUT" --product tensorrt_rtx --precision "$PRECISIONS" --flavour standard --max-batch "$MAX_BATCH"
fi

step "6/7 self-check: each engine against ONNX Runtime on recorded inputs"
if compgen -G "$OUT/*.engine" >/dev/null; then
  "$PY" -m engines.selfcheck "$OUT"
else
  echo "skipped: no engines in $OUT (step 5 built none)"
fi

step "7/7 tracking 5 held-out generated sequences: success AUC and FPS per precision (ONNX Runtime, CPU)"
if [[ $EVAL == 1 ]]; then
  RUNS=()
  for p in ${PRECISIONS//,/ }; do RUNS+=(--run "onnxruntime:$OUT,precision=$p,flavour=$EVAL_FLAVOUR,label=ort-$p"); done
  has "$PRECISIONS" int8 && RUNS+=(--run "onnxruntime:$OUT,precision=int8,flavour=cpu,label=ort-int8-cpu")
  [[ $FORCE == 1 ]] && rm -rf "$OUT/eval/results"
  "$PY" -m bench.accuracy "${RUNS[@]}" --synth 5 --out "$OUT/eval" --threads 2
  "$PY" - "$OUT/eval/summary.json" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
reused, total = summary.get("skipped_already_done", 0), sum(
    len(r.get("sequences", {})) for r in summary["runs"].values())
if reused:
    print(f"reused {reused} of {total} earlier tracking results made by the same model files "
          "(delete the eval folder, or pass --force, to track them again)")
EOF
else
  echo "skipped: --no-eval"
fi

if [[ $VERIFY == 1 ]]; then
  step "verify: engines, plugin and trtexec end to end (python -m engines.verify)"
  set +e
  "$PY" -m engines.verify --artifacts "$OUT" --precisions "$PRECISIONS" --flavours "$FLAVOURS" \
      --max-batch "$MAX_BATCH" ${CONFIG:+--config "$CONFIG"} ${CHECKPOINT:+--checkpoint "$CHECKPOINT"}
  rc=$?; set -e
  case $rc in
    0) ;;
    3) echo "verify: nothing failed, but some checks could not run on this machine (reasons above)" ;;
    *) echo "build.sh: verify failed (exit $rc); report in $OUT/verify" >&2; exit $rc ;;
  esac
fi
echo; echo "build.sh: done; artifacts in $OUT"
