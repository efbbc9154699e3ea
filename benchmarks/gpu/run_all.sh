#!/usr/bin/env bash
# The one script a session runs when it is lent a GPU machine (device tool, H200): the GPU
# numbers of benchmarks/matching_speed.py, eval_speed.py and mtt_memory.py, and a time-boxed
# MTT run on CIFAR-10-JPEG, in about 9 minutes. See benchmarks/gpu/README.md for the call.
#
#   bash benchmarks/gpu/run_all.sh                       # on the GPU machine ($OUT set by the tool)
#   SMOKE=1 PYTHON=.venv/bin/python OUT=$(mktemp -d) bash benchmarks/gpu/run_all.sh   # CPU smoke run
#
# Needs .gpu_data/ (bash benchmarks/gpu/pack_data.sh; carried: it is git-ignored). Installs
# nothing: stage 1 lists the missing packages and the stages that need them are skipped or
# degraded. Stages, in priority order, each under `timeout` and within one overall deadline:
#   1   unpack the data to $GPU_DATA_DIR (/tmp/data), nvidia-smi, versions, import check
#   t   pytest tests/test_cuda.py (one DC/DSA/DM step and evaluation epoch on cuda; skipped in smoke)
#   2   matching_speed.py: DC/DSA/DM/MTT, paper budget, ipc 1 and 10, loop/vectorize/bf16
#   3   eval_speed.py: K 1/5/20 x ipc 1/10/50, loop vs batched, $EVAL_EPOCHS epochs (extrapolated)
#   4   mtt_memory.py: N 10/20/40/80, exact vs unrolled (CUDA max allocated)
#   2b  matching_speed.py at ipc 50 (what time is left, $MS50_ITERS timed iterations)
#   5   mtt_cifar.py: MTT ipc 10 on CIFAR-10-JPEG, paper hyper-parameters, 2 experts, time-boxed
#   nas dc-nas on the CIFAR-10-JPEG reduced NAS setting at the paper's proxy budget (100 epochs a
#       proxy; issue 20 item 4), time-boxed, exported as a results file. Not in the default STAGES:
#       it wants the whole budget (STAGES="1 nas"), and needs .gpu_data/nas-site-py312.tar.gz
#       (bash benchmarks/gpu/pack_nas_site.sh: NNI and pydantic, which the image lacks)
# Results go to a work tree laid out as benchmarks/results/ (…/<name>/cuda/…); after every stage
# $OUT/results.tar.gz (that tree), $OUT/summary.json and flat copies of the main JSONs are
# refreshed, and $OUT/log.txt grows as it runs: a run cut short keeps the stages it finished.
# At most 6 files are written to $OUT (the tool returns 8).
#
# Environment: SMOKE (0/1), PYTHON (python3), OUT (required on the GPU), BUDGET_S (overall
# deadline in s from the start: 520, smoke 400), STAGES ("1 t 2 3 4 2b 5"), GPU_DATA_DIR
# (/tmp/data), MS_ITERS (2), MS50_ITERS (1), EVAL_EPOCHS (50), MTT_EXPERTS (2),
# MTT_EXPERT_EPOCHS (21), NAS_PROXIES (whole,dm,dc,random,herding,dsa,mtt,early-stopping: the order
# they run in; whole first, imported when it can be), NAS_EPOCHS (100), T_1 T_t T_2 T_3 T_4 T_2b T_5 T_nas (per-stage caps in s: 90 60 250 150 80 120 600 600;
# a stage gets min(cap, time left), and is skipped below its minimum), KEEP_WORK (1: keep the
# work tree in /tmp). Stage 1 is cheap (~20 s): keep it in STAGES, the others need its unpacking.
set -u -o pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SMOKE=${SMOKE:-0}
PY=${PYTHON:-python3}
START=$(date +%s)
if [[ $SMOKE == 1 ]]; then
  OUT=${OUT:-$(mktemp -d /tmp/gpu_smoke_out.XXXXXX)}
  BUDGET_S=${BUDGET_S:-400}
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  : "${OUT:?OUT must name the folder whose files come back (the device tool sets it)}"
  BUDGET_S=${BUDGET_S:-520}
fi
STAGES=${STAGES:-"1 t 2 3 4 2b 5"}
MS_ITERS=${MS_ITERS:-2}
MS50_ITERS=${MS50_ITERS:-1}
EVAL_EPOCHS=${EVAL_EPOCHS:-50}
MTT_EXPERTS=${MTT_EXPERTS:-2}
MTT_EXPERT_EPOCHS=${MTT_EXPERT_EPOCHS:-21}
NAS_PROXIES=${NAS_PROXIES:-whole,dm,dc,random,herding,dsa,mtt,early-stopping}
NAS_EPOCHS=${NAS_EPOCHS:-100}
RESERVE_S=15          # kept at the end for the last bundle
command -v "$PY" >/dev/null || { echo "run_all.sh: no Python '$PY' (set PYTHON)" >&2; exit 2; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gpu_work.XXXXXX)
R=$WORK/results       # laid out as benchmarks/results/
mkdir -p "$R"
DATA=${GPU_DATA_DIR:-$([[ $SMOKE == 1 ]] && echo "$WORK/data" || echo /tmp/data)}
export PYTHONPATH=$ROOT PYTHONUNBUFFERED=1
exec > >(tee -a "$OUT/log.txt") 2>&1
TEE_PID=$!

declare -A CAP=([1]=${T_1:-90} [t]=${T_t:-60} [2]=${T_2:-250} [3]=${T_3:-150} [4]=${T_4:-80} [2b]=${T_2b:-120} [5]=${T_5:-600} [nas]=${T_nas:-600})
declare -A MIN=([1]=10 [t]=20 [2]=30 [3]=30 [4]=20 [2b]=30 [5]=$([[ $SMOKE == 1 ]] && echo 20 || echo 120) [nas]=$([[ $SMOKE == 1 ]] && echo 30 || echo 120))

log() { printf '[%4ds] %s\n' $(( $(date +%s) - START )) "$*"; }
left() { echo $(( START + BUDGET_S - RESERVE_S - $(date +%s) )); }

record() {  # record NAME STATUS RC SECONDS LIMIT NOTE
  "$PY" - "$WORK/stages.jsonl" "$@" <<'PYEOF'
import json, sys
path, name, status, rc, seconds, limit, note = sys.argv[1:8]
with open(path, "a") as f:
    f.write(json.dumps({"stage": name, "status": status, "rc": int(rc), "seconds": int(seconds),
                        "limit_s": int(limit), "note": note}) + "\n")
PYEOF
}

bundle() {  # summary.json, results.tar.gz and the flat JSON copies in $OUT
  "$PY" - "$WORK" "$OUT/summary.json" "$SMOKE" "$BUDGET_S" "$(( $(date +%s) - START ))" <<'PYEOF'
import json, sys
from pathlib import Path
work, out, smoke, budget, elapsed = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", sys.argv[4], sys.argv[5]
stages = [json.loads(l) for l in (work / "stages.jsonl").read_text().splitlines()] if (work / "stages.jsonl").exists() else []
env = json.loads((work / "env.json").read_text()) if (work / "env.json").exists() else {}
s = {"smoke": smoke, "budget_s": int(budget), "elapsed_s": int(elapsed), "stages": stages,
     "missing_packages": env.get("missing"), "torch": env.get("torch"),
     "files": sorted(str(p.relative_to(work / "results")) for p in (work / "results").rglob("*") if p.is_file())}
tmp = out.with_name(out.name + ".tmp")
tmp.write_text(json.dumps(s, indent=2) + "\n")
tmp.replace(out)
PYEOF
  local t=/tmp/gpu_results.$$.tar.gz
  tar -czf "$t" -C "$WORK" results stages.jsonl $( [[ -f $WORK/env.json ]] && echo env.json ) 2>/dev/null \
    && cp "$t" "$OUT/results.tar.gz.part" && mv -f "$OUT/results.tar.gz.part" "$OUT/results.tar.gz"
  rm -f "$t"
  local f
  for f in matching_speed/cuda/matching_speed.json eval_speed/cuda/eval_speed.json mtt_memory/cuda/results.json \
           nas_cifar10_jpeg_reduced/cuda/results.json; do
    [[ -f $R/$f ]] && cp "$R/$f" "$OUT/$(echo "$f" | cut -d/ -f1).json"
  done
}

run_stage() {  # run_stage NAME COMMAND...: under timeout, within the deadline
  local name=$1; shift
  local l; l=$(left)
  local t=$(( CAP[$name] < l ? CAP[$name] : l ))
  if (( t < MIN[$name] )); then
    log "== stage $name: SKIPPED, ${l}s left (needs ${MIN[$name]})"
    record "$name" skipped 0 0 "$t" "not enough time left"
    bundle; return 0
  fi
  log "== stage $name (limit ${t}s): $*"
  local s; s=$(date +%s)
  STAGE_LIMIT=$t timeout -k 10 "$t" "$@"
  local rc=$? d=$(( $(date +%s) - s )) status=ok
  (( rc == 124 || rc == 137 )) && status=timeout
  (( rc != 0 && rc != 124 && rc != 137 )) && status=failed
  [[ $status != ok ]] && NOT_OK="$NOT_OK $name"
  log "== stage $name: $status (rc $rc) in ${d}s"
  record "$name" "$status" "$rc" "$d" "$t" "$*"
  bundle
}

skip_stage() { log "== stage $1: SKIPPED: $2"; record "$1" skipped 0 0 0 "$2"; bundle; }

# -- the stages ---------------------------------------------------------------------------------

stage_1() {  # a step that fails is reported; only envcheck's verdict (torch missing) stops the run
  mkdir -p "$DATA/MNIST/raw"
  if [[ -f .gpu_data/SHA256SUMS ]]; then
    (cd .gpu_data && sha256sum -c --quiet SHA256SUMS) && echo "checksums of .gpu_data ok" || echo "WARNING: .gpu_data checksums differ"
  fi
  if [[ -f .gpu_data/cifar10-jpeg.tar.gz ]]; then
    if [[ $SMOKE == 1 ]]; then  # 10 images per class and split: enough for --quick and the glue
      tar -xzf .gpu_data/cifar10-jpeg.tar.gz -C "$DATA" --wildcards 'cifar10-jpeg/*/*/000[0-9].jpg'
    else
      tar -xzf .gpu_data/cifar10-jpeg.tar.gz -C "$DATA"
    fi || { echo "WARNING: unpacking CIFAR-10-JPEG failed"; rm -rf "$DATA/cifar10-jpeg"; }
  else
    echo "no .gpu_data/cifar10-jpeg.tar.gz (run benchmarks/gpu/pack_data.sh and carry .gpu_data)"
  fi
  if [[ -d $DATA/cifar10-jpeg/train ]]; then
    chmod -R u+w "$DATA/cifar10-jpeg"
    echo "CIFAR-10-JPEG: $(find "$DATA/cifar10-jpeg/train" -name '*.jpg' | wc -l) train, $(find "$DATA/cifar10-jpeg/test" -name '*.jpg' | wc -l) test files in $DATA/cifar10-jpeg"
  else
    echo "no CIFAR-10-JPEG: stage 2 uses generated data, stage 5 is skipped"
  fi
  if compgen -G ".gpu_data/MNIST/raw/*-ubyte" >/dev/null; then
    cp .gpu_data/MNIST/raw/*-ubyte "$DATA/MNIST/raw/" && echo "MNIST-10k: $(ls "$DATA/MNIST/raw" | wc -l) files in $DATA/MNIST/raw"
  else
    echo "no .gpu_data/MNIST/raw: stages 3 and 4 are skipped"
  fi
  if command -v nvidia-smi >/dev/null; then
    timeout 20 nvidia-smi
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.sm,power.limit --format=csv
  else
    echo "no nvidia-smi"
  fi
  echo "cpus: $(nproc --all)"; free -g 2>/dev/null | head -2; df -h /tmp | tail -1
  "$PY" benchmarks/gpu/envcheck.py --json "$WORK/env.json" --missing "$WORK/missing.txt"
}

stage_t() {
  "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
}

has() { [[ ! -f $WORK/missing.txt ]] || ! grep -qx "$1" "$WORK/missing.txt"; }  # no list: stage 1 not run
cifar_ok() { [[ -d $DATA/cifar10-jpeg/train ]] && has torchvision; }
mnist_ok() { [[ -f $DATA/MNIST/raw/train-images-idx3-ubyte ]] && has torchvision; }

matching_args() {  # the options stage 2 and 2b share
  local data=generated; cifar_ok && data=cifar10-jpeg
  if [[ $SMOKE == 1 ]]; then
    echo --quick --device cpu --threads 1 --data "$data" --root "$DATA"
  else
    echo --device cuda --budget paper --data "$data" --root "$DATA"
  fi
}

stage_2() {
  if [[ $SMOKE == 1 ]]; then
    "$PY" benchmarks/matching_speed.py $(matching_args) --methods dc mtt --ipc 1 --iterations 1 \
      --variants loop vectorize bf16 --out "$R/matching_speed/cuda"
  else
    "$PY" benchmarks/matching_speed.py $(matching_args) --methods dc dsa dm mtt --ipc 1 10 \
      --iterations "$MS_ITERS" --variants loop vectorize bf16 --out "$R/matching_speed/cuda"
  fi
}

stage_2b() {
  if [[ $SMOKE == 1 ]]; then
    "$PY" benchmarks/matching_speed.py $(matching_args) --methods dm dsa --ipc 2 --iterations 1 \
      --variants loop --out "$R/matching_speed/cuda-ipc50"
  else
    "$PY" benchmarks/matching_speed.py $(matching_args) --methods dc dsa dm mtt --ipc 50 \
      --iterations "$MS50_ITERS" --variants loop vectorize bf16 --out "$R/matching_speed/cuda-ipc50"
  fi
}

stage_3() {
  if [[ $SMOKE == 1 ]]; then
    "$PY" benchmarks/eval_speed.py --device cpu --root "$DATA" --net convnet-w8-d2 --ipc 1 --k 1 2 --epochs 2 \
      --out "$R/eval_speed/cuda"
  else
    "$PY" benchmarks/eval_speed.py --device cuda --root "$DATA" --ipc 1 10 50 --k 1 5 20 --epochs "$EVAL_EPOCHS" \
      --out "$R/eval_speed/cuda"
  fi
}

stage_4() {
  if [[ $SMOKE == 1 ]]; then
    "$PY" benchmarks/mtt_memory.py --device cpu --threads 1 --root "$DATA" --n 2 4 --ipc 1 --net convnet-w8-d2 \
      --timeout 60 --out "$R/mtt_memory/cuda"
  else
    "$PY" benchmarks/mtt_memory.py --device cuda --root "$DATA" --n 10 20 40 80 --timeout 120 \
      --out "$R/mtt_memory/cuda"
  fi
}

stage_5() {  # its own budget: the stage's limit less a margin, so that it evaluates and writes before timeout
  local secs=$(( STAGE_LIMIT - 15 ))
  if [[ $SMOKE == 1 ]]; then  # 2 iterations: on 10 images per class the experts barely move and a 3rd diverges
    "$PY" benchmarks/gpu/mtt_cifar.py --root "$DATA/cifar10-jpeg" --device cpu --threads 1 --ipc 1 --preset cpu-quick \
      --net convnet-w8-d2 --experts 1 --expert-epochs 5 --zca on --iterations 2 --chunk 1 --eval-networks 2 \
      --eval-epochs 2 --seconds "$secs" --eval-reserve 5 --out "$R/mtt_cifar10_jpeg_ipc10/cuda"
  else
    "$PY" benchmarks/gpu/mtt_cifar.py --root "$DATA/cifar10-jpeg" --device cuda --ipc 10 --preset paper \
      --experts "$MTT_EXPERTS" --expert-epochs "$MTT_EXPERT_EPOCHS" --zca on --eval-networks 3 \
      --seconds "$secs" --eval-reserve 60 --out "$R/mtt_cifar10_jpeg_ipc10/cuda"
  fi
}
stage_nas() {
  # NNI and pydantic from the carried site folder (the image has torch, scipy, scikit-learn, pandas,
  # pytorch-lightning; not these). The run folder lives in $WORK; only its results file comes back.
  local tag site=$WORK/nas-site run=$WORK/nas-run res=$R/nas_cifar10_jpeg_reduced/cuda
  tag=py$("$PY" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
  if [[ -f .gpu_data/nas-site-$tag.tar.gz ]]; then
    (cd .gpu_data && sha256sum -c --quiet "nas-site-$tag.tar.gz.sha256") || echo "WARNING: nas-site-$tag checksum differs"
    mkdir -p "$site" && tar -xzf ".gpu_data/nas-site-$tag.tar.gz" -C "$site" && cat "$site/NAS_SITE_PACKAGES.txt"
    export PYTHONPATH=$site:$PYTHONPATH GPU_CHECK_ALLOW=$site
  else
    echo "no .gpu_data/nas-site-$tag.tar.gz (bash benchmarks/gpu/pack_nas_site.sh ${tag#py3}: the Python here is $tag)"
  fi
  "$PY" -c 'import nni, pydantic; print("nni", nni.__version__, "pydantic", pydantic.VERSION)' || {
    echo "stage nas: nni or pydantic cannot be imported; nothing to run"; return 3; }
  mkdir -p "$res"
  local common=(--config nas_cifar10_jpeg_reduced --root "$DATA/cifar10-jpeg" --no-progress)
  local sets=(--set "train.epochs=$NAS_EPOCHS" --set "proxies=[$NAS_PROXIES]")
  if [[ $SMOKE == 1 ]]; then  # 10 images per class (stage 1's smoke unpack): tiny sizes, only the glue
    sets=(--set train.epochs=2 --set train.whole_epochs=1 --set "proxies=[random,dm,whole]" --set data.val_fraction=0.3
          --set data.train_per_class=5 --set space.max_archs=3 --set space.cover_choices=false --set proxy.ipc=1
          --set proxy.iterations.dm=2 --set "score.top_k=[2,3]")
    common+=(--device cpu --threads 1)
  else
    common+=(--device cuda)
  fi
  # The reference (whole: 10 epochs on 5,000 images) from the committed CPU results: its trials
  # do not depend on train.epochs or the device, and with every trial there it is neither built nor
  # trained, so it goes first and is in the exported file whatever the deadline cuts. It imports
  # only if this machine decodes the JPEGs to the same tensors (the proxy key hashes them); else
  # it is trained here (first, by the default order), and the file is scored against that one.
  "$PY" -m nas.cli import benchmarks/results/nas_cifar10_jpeg_reduced/results.json "$run" "${common[@]}" "${sets[@]}" \
    --set "proxies=[whole]" || echo "stage nas: the CPU reference did not import (above: why); whole is trained here"
  local secs=$(( STAGE_LIMIT - 25 ))   # kept for the export
  echo "stage nas: dc-nas for ${secs}s at most: ${sets[*]}"
  timeout -k 5 "$secs" "$PY" -m nas.cli run --out "$run" "${common[@]}" "${sets[@]}"
  local rc=$?
  (( rc == 124 || rc == 137 )) && echo "stage nas: time is up (rc $rc); exporting the trials that finished"
  "$PY" -m nas.cli export "$run" "$res/results.json" || return 4
  "$PY" - "$res/results.json" <<'PYEOF'
import json, sys
p = json.load(open(sys.argv[1]))
for label, d in p["proxies"].items():
    print(f"  {label}: {len(d['trials'])} trial records, build {d['build_seconds']:.0f} s on {d['build_device'] or '?'}")
PYEOF
  (( rc == 124 || rc == 137 )) && return 0   # a time-boxed run: what finished is the result
  return $rc
}
export -f stage_1 stage_t stage_2 stage_2b stage_3 stage_4 stage_5 stage_nas matching_args has cifar_ok mnist_ok
export SMOKE PY DATA WORK R MS_ITERS MS50_ITERS EVAL_EPOCHS MTT_EXPERTS MTT_EXPERT_EPOCHS NAS_PROXIES NAS_EPOCHS

NOT_OK=""
log "run_all.sh: mode $([[ $SMOKE == 1 ]] && echo "SMOKE (cpu, tiny sizes: not a measurement)" || echo GPU), stages '$STAGES', budget ${BUDGET_S}s, python $PY, data $DATA, work $WORK, out $OUT"
log "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?') $(git status --porcelain 2>/dev/null | grep -vc '^??' || true) modified tracked file(s)"
for st in $STAGES; do
  case $st in
    1) run_stage 1 bash -c stage_1 ;;
    t) if [[ $SMOKE == 1 ]]; then skip_stage t "smoke: no GPU (tests/test_cuda.py skips itself without one)"
       elif has pytest; then run_stage t bash -c stage_t; else skip_stage t "no pytest"; fi ;;
    2|2b) run_stage "$st" bash -c "stage_$st" ;;
    3|4) if mnist_ok; then run_stage "$st" bash -c "stage_$st"; else skip_stage "$st" "no MNIST-10k under $DATA or no torchvision"; fi ;;
    5) if cifar_ok; then run_stage 5 bash -c stage_5; else skip_stage 5 "no CIFAR-10-JPEG under $DATA or no torchvision"; fi ;;
    nas) if cifar_ok; then run_stage nas bash -c stage_nas; else skip_stage nas "no CIFAR-10-JPEG under $DATA or no torchvision"; fi ;;
    *) log "unknown stage '$st' (known: 1 t 2 3 4 2b 5 nas)" ;;
  esac
  if [[ $st == 1 ]] && ! has torch; then log "torch missing: nothing else can run"; break; fi
done
log "done in $(( $(date +%s) - START ))s; stages not ok:${NOT_OK:- none}; \$OUT holds: $(cd "$OUT" && ls | tr '\n' ' ')"
[[ ${KEEP_WORK:-0} == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null   # let tee write the last lines before the tool collects $OUT
[[ -z $NOT_OK ]]   # exit status 1 when a stage failed or timed out (skipped ones do not count)
