#!/usr/bin/env bash
# Copy the real data that benchmarks/gpu/run_all.sh needs into .gpu_data/ (git-ignored), the
# folder the device tool's `carry` takes to the GPU machine (../shared does not travel there).
#
#   bash benchmarks/gpu/pack_data.sh [SHARED_DATA]     # default: ../shared/data, else /work/shared/data
#
# Makes
#   .gpu_data/cifar10-jpeg.tar.gz   CIFAR-10-JPEG's train/ and test/ (60,000 JPEG files, 55 MB of
#                                   files; about 20 MB gzipped: the files share their JPEG headers.
#                                   A plain tar would be about 93 MB, over the 64 MiB that travels,
#                                   because of its 512-byte header and padding per file)
#   .gpu_data/MNIST/raw/*           MNIST-10k's four idx files (7.9 MB), as torchvision reads them
#   .gpu_data/SHA256SUMS            checksums of the above (run_all.sh checks them)
# Reruns replace them. Files and folders are packed user-writable (--mode u+w), so that the
# image-folder cache can be written beside the unpacked images.
set -euo pipefail
cd "$(dirname "$0")/../.."
src=${1:-}
if [[ -z $src ]]; then
  for c in ../shared/data /work/shared/data; do [[ -d $c/cifar10-jpeg/train ]] && { src=$c; break; }; done
fi
[[ -n $src && -d $src/cifar10-jpeg/train && -d $src/cifar10-jpeg/test && -f $src/MNIST/raw/train-images-idx3-ubyte ]] || {
  echo "pack_data.sh: no data folder with cifar10-jpeg/{train,test} and MNIST/raw (got '${src}')" >&2; exit 2; }
mkdir -p .gpu_data/MNIST/raw
tmp=.gpu_data/.cifar10-jpeg.tar.gz.tmp
# sorted names and fixed owner: the same bytes for the same files
tar -C "$src" --sort=name --owner=0 --group=0 --numeric-owner --mode=u+w -cf - cifar10-jpeg/train cifar10-jpeg/test \
  | gzip -6 -n > "$tmp"
mv "$tmp" .gpu_data/cifar10-jpeg.tar.gz
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  install -m 644 "$src/MNIST/raw/$f" .gpu_data/MNIST/raw/$f
done
(cd .gpu_data && sha256sum cifar10-jpeg.tar.gz MNIST/raw/* > SHA256SUMS)
n=$(tar -tzf .gpu_data/cifar10-jpeg.tar.gz | grep -c '\.jpg$')
echo "packed from $src: $n JPEG files"
du -b .gpu_data/cifar10-jpeg.tar.gz .gpu_data/MNIST/raw/* | sed 's/^/  /'
echo "  total .gpu_data: $(du -sb .gpu_data | cut -f1) bytes (the working tree and carried paths travel up to 64 MiB = 67108864)"
