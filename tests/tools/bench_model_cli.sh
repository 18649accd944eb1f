#!/usr/bin/env bash
# bench-model from the outside: a tiny random model gives a JSON array with llama-bench's fields and a markdown
# table; every bad input exits non-zero with one line naming the option or file.
# Usage: bench_model_cli.sh BENCH_MODEL MAKE_RANDOM_MODEL SCRATCH_DIR
set -euo pipefail
tool=$1 make_model=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch"
failures=0 passed=0

fail() {
  echo "FAIL $1"; failures=$((failures + 1))
}

"$make_model" tiny.gguf --hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 --vocab 128 --context 64 --type f32

"$tool" -m tiny.gguf -p 16 -n 4 -t 1 -r 2 -o json > out.json 2> err.txt || { fail "json run"; cat err.txt; }
if command -v python3 > /dev/null; then
  python3 - out.json <<'PY' || fail "json content"
import json, sys
rows = json.load(open(sys.argv[1]))
assert len(rows) == 2, rows
pp, tg = rows
assert (pp["n_prompt"], pp["n_gen"]) == (16, 0) and (tg["n_prompt"], tg["n_gen"]) == (0, 4), rows
for row in rows:
    for key in ("model_filename", "model_type", "model_size", "model_n_params", "n_threads", "avg_ns", "stddev_ns",
                "samples_ns", "samples_ts", "median_ts", "type_k", "cpu_isa"):
        assert key in row, key
    assert row["cpu_isa"] in ("scalar", "avx2", "avx_vnni", "avx512", "avx512_vnni", "avx512_bf16"), row
    assert row["avg_ts"] > 0 and row["median_ts"] > 0 and len(row["samples_ts"]) == 2, row
PY
else
  for key in model_filename model_type model_size model_n_params n_threads n_prompt n_gen avg_ts stddev_ts avg_ns \
             stddev_ns samples_ns samples_ts median_ts type_k cpu_isa; do
    grep -q "\"$key\"" out.json || fail "json lacks $key"
  done
  grep -q '"n_prompt": 16' out.json || fail "json lacks n_prompt 16"
  grep -q '"n_gen": 4' out.json || fail "json lacks n_gen 4"
fi
grep -q 'loaded in .* ms, peak RSS' err.txt || fail "no load time / peak RSS line"
# EMBER_CPU_ISA lowers the kernels' level, and the JSON says which ran.
EMBER_CPU_ISA=scalar "$tool" -m tiny.gguf -p 0 -n 2 -t 1 -r 1 -o json > scalar.json 2> scalar_err.txt ||
  fail "EMBER_CPU_ISA=scalar run"
grep -q '"cpu_isa": "scalar"' scalar.json || fail "EMBER_CPU_ISA=scalar not reported as cpu_isa"
passed=$((passed + 1))

"$tool" -m tiny.gguf -p 16 -n 0 -t 1 -r 1 > out.md 2> err.txt || { fail "md run"; cat err.txt; }
grep -q '^| model .*size .*params .*type .*threads .*test .*t/s .*|$' out.md || fail "md header"
grep -q '^| tiny .* pp16 | .* ± ' out.md || fail "md pp16 row"
! grep -q 'tg' out.md || fail "-n 0 still ran a tg test"
passed=$((passed + 1))

bad() {  # bad NAME PATTERN -- ARGS...: exits non-zero and says PATTERN on stderr
  local name=$1 pattern=$2 code=0
  shift 3
  "$tool" "$@" > /dev/null 2> err.txt || code=$?
  if [ "$code" -eq 0 ]; then
    fail "$name: exit 0"
  elif ! grep -q -- "$pattern" err.txt; then
    fail "$name: stderr lacks '$pattern':"; cat err.txt
  else
    passed=$((passed + 1))
  fi
}

bad "missing file" "missing.gguf" -- -m missing.gguf -p 16 -n 4
bad "zero threads" "-t '0'" -- -m tiny.gguf -t 0
bad "bad prompt list" "-p 'abc'" -- -m tiny.gguf -p abc
bad "empty list item" "-n '4,'" -- -m tiny.gguf -n 4,
bad "zero repetitions" "-r '0'" -- -m tiny.gguf -r 0
bad "bad output" "-o 'xml'" -- -m tiny.gguf -o xml
bad "bad kv type" "--kv-type 'q4_0'" -- -m tiny.gguf --kv-type q4_0
bad "nothing to run" "-p and -n" -- -m tiny.gguf -p 0 -n 0
bad "no model" "model" --
bad "bad device" "--device 'tpu'" -- -m tiny.gguf --device tpu
bad "bad layer count" "-ngl -3" -- -m tiny.gguf -ngl -3
VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json \
  bad "vulkan without a device" "no usable Vulkan device" -- -m tiny.gguf -p 16 -n 0 -r 1 --device vulkan

# With a Vulkan device (lavapipe will do), --device-profile splits the device's time by op.
if "$tool" -m tiny.gguf -p 0 -n 2 -r 1 --device vulkan -ngl 99 --device-profile >profile.txt 2>profile_err.txt; then
  if grep -Eq 'tg2: +linear +[0-9.]+ ms per token on the device, [1-9]' profile_err.txt; then
    passed=$((passed + 1))
  else
    echo "FAIL: --device-profile printed no linear line: $(cat profile_err.txt)" >&2
    failures=$((failures + 1))
  fi
elif ! grep -q "no usable Vulkan device" profile_err.txt; then
  echo "FAIL: --device-profile: $(cat profile_err.txt)" >&2
  failures=$((failures + 1))
fi

# A rotary model runs past its trained context, as llama-bench lets it, with a note.
if "$tool" -m tiny.gguf -p 80 -n 0 -r 1 >past.txt 2>past_err.txt && grep -q "running past it" past_err.txt &&
  grep -q "pp80" past.txt; then
  passed=$((passed + 1))
else
  echo "FAIL: a prompt past the trained context: $(cat past_err.txt)" >&2
  failures=$((failures + 1))
fi

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
