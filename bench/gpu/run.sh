#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, over a folder made by
# bench/gpu/stage.sh: unpacks the Vulkan loader (.gl, see docs/PERFORMANCE.md), checks the
# shaders on the real device (the GPU test suite), then times the ceilings (PyTorch), the
# shaders (bench-gpu), the 0.5 B model in q4_0, q8_0 and f16 with --device cpu and vulkan (bench-model),
# the device's time per op for q4_0 (bench-model --device-profile), and run-model --calibrate.
# Logs go to $OUT (default /tmp/gpu-out); the last lines printed are the summary.
# Usage: bench/gpu/run.sh [STAGE_DIR] [REPETITIONS]
set -uo pipefail
stage=${1:-.gpu-run}
repetitions=${2:-3}
out=${OUT:-/tmp/gpu-out}
mkdir -p "$out"
for package in .gl/*.deb; do dpkg -x "$package" /; done
ldconfig
export LD_LIBRARY_PATH=$PWD/$stage/lib
bin=$stage/bin
status=0

"$bin/run-model" --list-devices >"$out/devices.txt" 2>&1
grep -m1 -i "nvidia\|device 0" "$out/devices.txt"
if ! "$bin/ember_gpu_tests" --gtest_brief=1 >"$out/gpu-tests.txt" 2>&1; then
  echo "GPU tests FAILED on the device"
  status=1
fi
tail -3 "$out/gpu-tests.txt"

python3 "$(dirname "$0")/ceilings.py" >"$out/ceilings.txt" 2>&1 || status=1
"$bin/bench-gpu" --benchmark_repetitions="$repetitions" --benchmark_report_aggregates_only=true \
  >"$out/bench-gpu.txt" 2>&1 || status=1

"$bin/make-random-model" /tmp/m-f16.gguf --hidden 2048 --layers 8 --heads 16 --kv-heads 4 --ffn 5632 --vocab 32000 \
  --type f16 >/dev/null || status=1
for type in q4_0 q8_0; do "$bin/quantize-model" /tmp/m-f16.gguf /tmp/m-$type.gguf --type $type >/dev/null || status=1; done
threads=$(nproc)
for device in cpu vulkan; do
  "$bin/bench-model" -m /tmp/m-q4_0.gguf -m /tmp/m-q8_0.gguf -m /tmp/m-f16.gguf -p 512 -n 128 -t "$threads" -r "$repetitions" \
    --device "$device" >"$out/bench-model-$device.txt" 2>&1 || status=1
done
# Where the device's time goes, op by op (a timestamp after every dispatch, so not timed
# with the runs above).
"$bin/bench-model" -m /tmp/m-q4_0.gguf -p 512 -n 32 -t "$threads" -r 1 --device vulkan --device-profile \
  >"$out/device-profile.txt" 2>&1 || status=1
# The crossover routing uses, measured on this device (kept out of the user's cache).
EMBER_CACHE_DIR=/tmp/ember-cache "$bin/run-model" --calibrate -t "$threads" >"$out/calibrate.txt" 2>&1 || status=1

echo "== ceilings"; cat "$out/ceilings.txt"
echo "== bench-gpu (medians)"; grep -E "median|ERROR" "$out/bench-gpu.txt"
for device in cpu vulkan; do echo "== bench-model --device $device"; cat "$out/bench-model-$device.txt"; done
echo "== bench-model --device-profile (q4_0)"; grep "on the device\|busy" "$out/device-profile.txt"
echo "== run-model --calibrate"; cat "$out/calibrate.txt"
exit "$status"
