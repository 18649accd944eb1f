#!/usr/bin/env bash
# quantize-model from the outside: every bad input gets one line naming the problem, a
# non-zero exit and no output file; an interrupted or failed write leaves nothing behind.
# Usage: quantize_model_cli.sh QUANTIZE_MODEL MAKE_RANDOM_MODEL SCRATCH_DIR
set -u
tool=$1 make_model=$2 scratch=$3
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch" || exit 1
failures=0 passed=0

check() {  # check NAME EXPECTED_EXIT PATTERN -- COMMAND...
  local name=$1 expected=$2 pattern=$3
  shift 4
  "$@" > out.txt 2> err.txt
  local code=$?
  if [ "$code" -ne "$expected" ] && { [ "$expected" -ne 1 ] || [ "$code" -eq 0 ]; }; then
    echo "FAIL $name: exit $code, expected $expected"; cat err.txt; failures=$((failures + 1)); return
  fi
  if [ -n "$pattern" ] && ! grep -q -- "$pattern" err.txt; then
    echo "FAIL $name: stderr lacks '$pattern':"; cat err.txt; failures=$((failures + 1)); return
  fi
  passed=$((passed + 1))
}

no_leftovers() {  # no output and no temporary file in the folder
  local name=$1 output=$2
  if [ -e "$output" ] || ls -a "$(dirname "$output")" | grep -q '\.tmp-'; then
    echo "FAIL $name: left $(ls -a "$(dirname "$output")" | tr '\n' ' ')"; failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
}

"$make_model" small.gguf --hidden 64 --layers 2 --heads 4 --kv-heads 2 --ffn 96 --vocab 128 --type f32 || exit 1
cp small.gguf small.before

check "missing input" 1 "missing.gguf" -- "$tool" missing.gguf out.gguf --type q8_0
no_leftovers "missing input" out.gguf
check "unknown type" 2 "unknown --type 'q3_x'" -- "$tool" small.gguf out.gguf --type q3_x
no_leftovers "unknown type" out.gguf
check "output is input" 1 "overwrite the input" -- "$tool" small.gguf small.gguf --type q8_0
cmp -s small.gguf small.before || { echo "FAIL output is input: input changed"; failures=$((failures + 1)); }
printf 'GGUF\003\000\000\000garbage' > corrupt.gguf
check "corrupt input" 1 "corrupt.gguf" -- "$tool" corrupt.gguf out.gguf --type q4_0
no_leftovers "corrupt input" out.gguf
head -c 3000 small.gguf > truncated.gguf
check "truncated input" 1 "truncated.gguf" -- "$tool" truncated.gguf out.gguf --type q4_0
no_leftovers "truncated input" out.gguf
check "missing folder" 1 "no-such-dir" -- "$tool" small.gguf no-such-dir/out.gguf --type q8_0
check "missing argument" 106 "" -- "$tool" small.gguf

# The q4_k_m mix on 8 layers: attn_v and ffn_down of layers 0, 3, 6, 7 and the output
# matrix get q6_k (i < n/8, i >= 7n/8, (i - n/8) % 3 == 2); every other matrix q4_k.
"$make_model" wide.gguf --hidden 256 --layers 8 --heads 4 --kv-heads 4 --ffn 512 --vocab 64 --type f16 || exit 1
check "dry run" 0 "" -- "$tool" wide.gguf out.gguf --type q4_k_m --dry-run
expected_q6k="blk.0.attn_v blk.0.ffn_down blk.3.attn_v blk.3.ffn_down blk.6.attn_v blk.6.ffn_down blk.7.attn_v blk.7.ffn_down output"
actual_q6k=$(awk '$NF == "q6_k" || $(NF) ~ /q6_k/ {print $1}' out.txt | sed 's/\.weight$//' | tr '\n' ' ' | sed 's/ $//')
[ "$actual_q6k" = "$expected_q6k" ] || { echo "FAIL dry run: q6_k tensors '$actual_q6k', expected '$expected_q6k'"; failures=$((failures + 1)); }
[ "$(grep -c ' -> q4_k' out.txt)" -eq 49 ] || { echo "FAIL dry run: expected 49 q4_k matrices"; cat out.txt; failures=$((failures + 1)); }
no_leftovers "dry run" out.gguf

for type in f32 f16 bf16 q8_0 q4_0 q4_1 q4_k_m q6_k; do
  check "convert $type" 0 "" -- "$tool" small.gguf "out-$type.gguf" --type "$type" --threads 2
  [ -s "out-$type.gguf" ] || { echo "FAIL convert $type: no output"; failures=$((failures + 1)); }
  check "reconvert $type" 0 "" -- "$tool" "out-$type.gguf" "again-$type.gguf" --type f32
done
cmp -s small.gguf small.before || { echo "FAIL: the input was modified"; failures=$((failures + 1)); }

# A full disk: the file-size limit makes the write fail part way; nothing may remain.
check "file size limit" 1 "" -- bash -c "ulimit -f 64; exec '$tool' small.gguf limited.gguf --type f32"
no_leftovers "file size limit" limited.gguf

# Ctrl-C or SIGTERM part way through: the scalar q4_K search on one thread keeps the
# conversion running for seconds, and the signal goes once the temporary output exists.
"$make_model" big.gguf --hidden 1024 --layers 4 --heads 8 --kv-heads 2 --ffn 2816 --vocab 8000 --type f16 || exit 1
for signal in INT TERM; do
  EMBER_CPU_ISA=scalar "$tool" big.gguf interrupted.gguf --type q4_k_m --threads 1 > /dev/null 2> err.txt &
  pid=$!
  for _ in $(seq 100); do
    ls -a | grep -q '^\.interrupted\.gguf\.tmp-' && break
    sleep 0.05
  done
  kill -"$signal" "$pid"
  wait "$pid"
  code=$?
  expected=$((128 + $(kill -l "$signal")))
  if [ "$code" -ne "$expected" ]; then
    echo "FAIL SIG$signal: exit $code, expected $expected"
    cat err.txt
    failures=$((failures + 1))
  else
    passed=$((passed + 1))
  fi
  no_leftovers "SIG$signal" interrupted.gguf
done

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
