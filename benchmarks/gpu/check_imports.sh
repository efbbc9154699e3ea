#!/usr/bin/env bash
# CPU check that run_all.sh needs no avalanche, nni or pydantic (absent from the GPU machine's
# image): runs the SMOKE=1 run_all.sh under a throw-away virtual environment whose
# sitecustomize (benchmarks/gpu/importcheck/) blocks those packages in every Python process,
# the benchmarks' subprocesses included, and logs what each process imported; then lists the
# third-party top-level modules per process and fails if a stage failed. Stage nas (STAGES="1 nas")
# may import them from the site folder it unpacks (bash benchmarks/gpu/pack_nas_site.sh 3.11 first):
# those show as name@carried and are not counted as blocked imports.
#
#   OMP_NUM_THREADS=1 nice -n 19 bash benchmarks/gpu/check_imports.sh [BASE_PYTHON]
#
# BASE_PYTHON: a Python whose site-packages hold torch etc. (default /work/main/.venv/bin/python).
# GPU_CHECK_BLOCK overrides the blocked list (comma-separated top-level names).
set -euo pipefail
cd "$(dirname "$0")/../.."
base=${1:-/work/main/.venv/bin/python}
site=$("$base" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
env=$(mktemp -d /tmp/gpu_importcheck.XXXXXX)
"$($base -c 'import sys; print(sys._base_executable)')" -m venv --without-pip "$env/venv"
vsite=$("$env/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" > "$vsite/base_site.pth"       # the base's packages (its .pth files are not run: no editable dc_plugins)
cp benchmarks/gpu/importcheck/sitecustomize.py "$vsite/"
# avalanche, nni, pydantic and what pack_nas_site.sh carries for stage nas (absent from the image too)
carried=pydantic_core,annotated_types,typing_inspection,astor,json_tricks,prettytable,wcwidth,responses,schema,typeguard,websockets
export GPU_CHECK_BLOCK=${GPU_CHECK_BLOCK:-avalanche,nni,pydantic,$carried} GPU_CHECK_IMPORT_LOG=$env/imports.tsv
"$env/venv/bin/python" -c 'import avalanche' 2>/dev/null && { echo "the block does not work" >&2; exit 1; }
echo "blocked: $GPU_CHECK_BLOCK (import avalanche fails in $env/venv as it should)"
set +e
SMOKE=1 PYTHON=$env/venv/bin/python OUT=$env/out bash benchmarks/gpu/run_all.sh
rc=$?
set -e
echo
echo "== third-party top-level modules imported, per process ($(wc -l < "$env/imports.tsv") processes):"
"$env/venv/bin/python" - "$env/imports.tsv" <<'PYEOF' || rc=1
import sys
blocked = set(__import__("os").environ["GPU_CHECK_BLOCK"].split(","))
std = set(sys.stdlib_module_names) | {"sitecustomize", "site", "base_site"}
ours = {"dc_plugins", "benchmarks", "strategies", "nas", "envcheck", "mtt_cifar", "matching_speed", "eval_speed",
        "mtt_memory"}
union, bad = set(), set()
for line in open(sys.argv[1]):
    pid, argv, mods = line.rstrip("\n").split("\t")
    third = sorted(m for m in mods.split() if m not in std and m not in ours)
    if "envcheck.py" not in argv:  # envcheck imports every package it reports on
        union |= set(third)
    bad |= blocked & set(mods.split())   # name@carried (from stage nas's site folder) is not a blocked import
    print(f"{argv[:90]:90s} {' '.join(m for m in third if m not in ('torch', 'numpy', 'typing_extensions'))}")
print("\nunion over the stages' processes (envcheck left out):", " ".join(sorted(union)))
print("blocked modules imported:", " ".join(sorted(bad)) or "none")
sys.exit(1 if bad else 0)
PYEOF
echo "== \$OUT:"; ls -l "$env/out"; echo "== results.tar.gz:"; tar -tzvf "$env/out/results.tar.gz" | awk '{print $3, $6}'
echo "run_all.sh exit status: $rc (0: every stage ok)"
rm -rf "$env"
exit $rc
