#!/usr/bin/env bash
# Pack the Python packages that `dc-nas` needs and the GPU machine's image lacks (NNI 3.0 and its
# small pure-Python requirements, pydantic for the config) into .gpu_data/, the folder that is
# carried there, for run_all.sh's stage `nas` (issue 20, item 4). Nothing can be installed on
# that machine (no registry), and nni's wheel is 61 MB because it bundles Node.js for NNI's
# training-service manager; the sequential engine that dc-nas uses by default never starts it,
# so the wheels are unpacked and nni_node is left out: about 5 MB gzipped.
#
#   bash benchmarks/gpu/pack_nas_site.sh [PYTHON_VERSION]    # default 3.12: the GPU image's python3
#   bash benchmarks/gpu/pack_nas_site.sh 3.11                 # this machine's, for the CPU smoke run
#
# Makes .gpu_data/nas-site-py312.tar.gz (a site folder: put it on PYTHONPATH) and its checksum
# in .gpu_data/nas-site-py312.tar.gz.sha256. The versions are the ones installed in .venv (the ones
# the test suite runs with); binary wheels (pydantic-core, websockets, wcwidth) are downloaded for
# the given Python version and manylinux x86_64. Needs a package registry (pip download).
# What the image already has (KINDS.md, "Python packages already there": scipy, scikit-learn,
# pandas, pytorch-lightning, psutil, requests, ...) is not packed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ver=${1:-3.12}
[[ $ver =~ ^3\.[0-9]+$ ]] || { echo "pack_nas_site.sh: PYTHON_VERSION must look like 3.12, got '$ver'" >&2; exit 2; }
tag=py${ver/./}
py=${PYTHON:-.venv/bin/python}
[[ -x $py ]] || { echo "pack_nas_site.sh: no $py (make install first, or set PYTHON)" >&2; exit 2; }
# nni's requirements that the image lacks (astor ... websockets; PythonWebHDFS is imported only by
# NNI's HDFS helpers) and pydantic with its own.
names=(nni pydantic pydantic_core annotated-types typing-inspection astor json-tricks prettytable wcwidth responses
       schema typeguard websockets)
pins=()
for n in "${names[@]}"; do
  v=$("$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$n") || {
    echo "pack_nas_site.sh: $n is not installed in $py" >&2; exit 2; }
  pins+=("$n==$v")
done
tmp=$(mktemp -d /tmp/nas_site.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$py" -m pip download -q -d "$tmp/wheels" --no-deps --only-binary=:all: --python-version "$ver" \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --platform manylinux1_x86_64 "${pins[@]}" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
mkdir -p "$tmp/site"
for w in "$tmp"/wheels/*.whl; do
  "$py" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$w" "$tmp/site"
done
rm -rf "$tmp/site/nni_node"
# the names and versions inside, for the stage's log
printf '%s\n' "${pins[@]}" > "$tmp/site/NAS_SITE_PACKAGES.txt"
echo "python $ver" >> "$tmp/site/NAS_SITE_PACKAGES.txt"
mkdir -p .gpu_data
out=.gpu_data/nas-site-$tag.tar.gz
tar -C "$tmp/site" --sort=name --owner=0 --group=0 --numeric-owner -cf - . | gzip -6 -n > "$out.part"
mv "$out.part" "$out"
(cd .gpu_data && sha256sum "$(basename "$out")" > "$(basename "$out").sha256")
echo "packed ${#pins[@]} packages for Python $ver: ${pins[*]}"
du -b "$out" | sed 's/^/  /'
