#!/usr/bin/env bash
# Gathers what bench/gpu/run.sh needs on the GPU machine into one folder (default
# .gpu-run, ignored by git): the Release binaries of BUILD_DIR (default build) and the
# shared libraries they use that a bare Ubuntu image may lack. The GPU machine has no
# compiler for ember's dependencies, so the build happens here and the binaries travel
# (docs/PERFORMANCE.md, "Vulkan on an H200", has the device command).
# Usage: bench/gpu/stage.sh [BUILD_DIR] [STAGE_DIR]
set -euo pipefail
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$source_dir/build}
stage=${2:-$source_dir/.gpu-run}
rm -rf "$stage" && mkdir -p "$stage/bin" "$stage/lib"
binaries=(bench/bench-gpu bench/bench-model bench/make-random-model tools/run-model tools/quantize-model
  tests/ember_gpu_tests)
for binary in "${binaries[@]}"; do cp "$build/$binary" "$stage/bin/"; done
# The C runtime and libstdc++ are newer there and stay; everything else travels.
ldd "${binaries[@]/#/$build/}" | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libstdc\+\+|libgcc_s|ld-linux-x86-64)\.so' | xargs -r cp -L -t "$stage/lib/"
du -sh "$stage"
