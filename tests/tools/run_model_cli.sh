#!/usr/bin/env bash
# run-model's command line: the default model, the output files, determinism, a random
# GPT-2 model, Ctrl-C, and one clear line with a non-zero exit for each bad input.
set -euo pipefail
run_model=$1
make_random_model=$2
scratch=$3
data_dir=$(cd "$(dirname "$0")/../data" && pwd)
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$scratch"

fail() { echo "FAIL: $*" >&2; exit 1; }

# The main job: no -m runs the committed demo model and prints text.
"$run_model" -n 24 --seed 7 >out.txt 2>err.txt || fail "default model run failed: $(cat err.txt)"
[ -s out.txt ] || fail "the default model printed nothing"
grep -q "run-model: load .* ms | prompt 1 tokens.* | generated .* tok/s | peak RSS" err.txt || fail "no timing line"

# Same seed, same text; greedy decoding ignores the seed.
"$run_model" -p "The" -n 16 --seed 7 >a.txt 2>/dev/null
"$run_model" -p "The" -n 16 --seed 7 >b.txt 2>/dev/null
cmp -s a.txt b.txt || fail "the same seed gave two texts"
"$run_model" -p "The" -n 16 --temp 0 --seed 1 >g1.txt 2>/dev/null
"$run_model" -p "The" -n 16 --temp 0 --seed 2 >g2.txt 2>/dev/null
cmp -s g1.txt g2.txt || fail "greedy decoding depends on the seed"

# -n 0 evaluates the prompt only; the logits and ids files are complete.
"$run_model" -p "Never under" -n 0 --logits-out logits.npy --tokens-out ids.json >/dev/null 2>&1
grep -q '"generated_ids":\[\]' ids.json || fail "ids.json: $(cat ids.json)"
grep -q '"prompt_ids":\[0,' ids.json || fail "ids.json lacks the BOS: $(cat ids.json)"
prompt_tokens=$(sed 's/.*"prompt_ids":\[\([0-9,]*\)\].*/\1/' ids.json | tr ',' '\n' | wc -l)
head -c 128 logits.npy | grep -aq "'shape': ($prompt_tokens, 4096)" || fail "logits.npy header"
[ "$(stat -c %s logits.npy)" -eq $((128 + prompt_tokens * 4096 * 4)) ] || fail "logits.npy size"
ls ./*.tmp 2>/dev/null && fail "a temporary file was left behind"

# Several continuations in one batch, chat from stdin, perplexity.
"$run_model" -p "A" -n 8 --parallel 3 --seed 3 >parallel.txt 2>/dev/null
[ "$(grep -c '^\[[0-2]\] A' parallel.txt)" -eq 3 ] || fail "--parallel 3: $(cat parallel.txt)"
echo "hello" | "$run_model" -i -n 8 --seed 3 >chat.txt 2>chat_err.txt || fail "chat: $(cat chat_err.txt)"
grep -q "using chatml" chat_err.txt || fail "chat without a template does not say which it uses"
printf 'You will be surrounded by luxury. Your lucky number has been disconnected.\n' >text.txt
"$run_model" --perplexity text.txt >ppl.txt 2>/dev/null
grep -q "^PPL = [0-9.]* +/- [0-9.]* over [0-9]* tokens" ppl.txt || fail "perplexity: $(cat ppl.txt)"

# A GPT-2 model (learned positions, LayerNorm, fused q/k/v, byte-level BPE): the requested
# number of tokens, greedy decoding the same twice.
"$make_random_model" gpt2.gguf --arch gpt2 --hidden 128 --layers 2 --heads 4 --ffn 512 --vocab 2048 \
  --context 8192 --type f32 2>make_err.txt || fail "make-random-model --arch gpt2: $(cat make_err.txt)"
for run in 1 2; do
  "$run_model" -m gpt2.gguf -p "Hello world" -n 40 --temp 0 --tokens-out gpt2_$run.json >gpt2_$run.txt \
    2>gpt2_err.txt || fail "gpt2 run $run: $(cat gpt2_err.txt)"
done
grep -q "gpt2.gguf (gpt2," gpt2_err.txt || fail "the gpt2 model was not loaded as gpt2: $(cat gpt2_err.txt)"
grep -q "generated 40 tokens" gpt2_err.txt || fail "gpt2 did not generate 40 tokens: $(cat gpt2_err.txt)"
generated_count() { sed 's/.*"generated_ids":\[\([0-9,]*\)\].*/\1/' "$1" | awk -F, '{print NF}'; }
generated=$(generated_count gpt2_1.json)
[ "$generated" -eq 40 ] || fail "gpt2_1.json holds $generated generated ids: $(cat gpt2_1.json)"
cmp -s gpt2_1.json gpt2_2.json || fail "greedy gpt2 ids differ between runs"
cmp -s gpt2_1.txt gpt2_2.txt || fail "greedy gpt2 text differs between runs"
grep -q "^Hello world" gpt2_1.txt || fail "gpt2 output does not start with the prompt: $(cat gpt2_1.txt)"

# Ctrl-C (or SIGTERM) stops a generation that would run to the full context: exit 128 +
# the signal, the timing line, the ids file complete, no temporary file or process left.
for signal in INT TERM; do
  "$run_model" -m gpt2.gguf -p "Hello" -n -1 --temp 0 --tokens-out interrupted.json >interrupted.txt 2>interrupted_err.txt &
  pid=$!
  for _ in $(seq 600); do
    [ "$(stat -c %s interrupted.txt)" -gt 64 ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ "$(stat -c %s interrupted.txt)" -gt 64 ] || fail "no text to interrupt: $(cat interrupted_err.txt)"
  kill -"$signal" "$pid"
  status=0
  wait "$pid" || status=$?
  expected=$((128 + $(kill -l "$signal")))
  [ "$status" -eq "$expected" ] || fail "SIG$signal exit status $status, not $expected: $(cat interrupted_err.txt)"
  grep -q "run-model: load .* ms | prompt .* tokens.* | generated [0-9]* tokens.* | peak RSS" interrupted_err.txt ||
    fail "no timing line after SIG$signal: $(cat interrupted_err.txt)"
  interrupted_ids=$(generated_count interrupted.json)
  [ "$interrupted_ids" -gt 0 ] && [ "$interrupted_ids" -lt 8000 ] ||
    fail "interrupted.json holds $interrupted_ids generated ids (SIG$signal should have stopped well short of the context)"
  ls ./*.tmp 2>/dev/null && fail "a temporary file was left behind after SIG$signal"
  kill -0 "$pid" 2>/dev/null && fail "run-model still runs after SIG$signal"
done

# --list-devices: a block per Vulkan device, or one line saying why there is none; both
# exit 0, since the CPU then runs everything. No driver to be found must not crash.
"$run_model" --list-devices >devices.txt 2>&1 || fail "--list-devices exited non-zero: $(cat devices.txt)"
grep -q -e '^device 0: .*, Vulkan 1\.' -e '^no Vulkan device: ' devices.txt || fail "--list-devices: $(cat devices.txt)"
VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json "$run_model" --list-devices >no_devices.txt 2>&1 ||
  fail "--list-devices without a driver exited non-zero: $(cat no_devices.txt)"
[ "$(wc -l <no_devices.txt)" -eq 1 ] && grep -q '^no Vulkan device: ' no_devices.txt ||
  fail "--list-devices without a driver: $(cat no_devices.txt)"

# --device auto without a usable Vulkan device runs on the CPU and says so at info level;
# --device vulkan without one is an error (below).
EMBER_LOG=info VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json \
  "$run_model" --device auto -p "The" -n 4 --temp 0 >auto.txt 2>auto_err.txt || fail "--device auto without a driver: $(cat auto_err.txt)"
[ "$(grep -c 'device auto: no usable Vulkan device' auto_err.txt)" -eq 1 ] || fail "--device auto without a driver: $(cat auto_err.txt)"
cmp -s auto.txt <("$run_model" --device cpu -p "The" -n 4 --temp 0 2>/dev/null) || fail "--device auto on the CPU changed the text"

# With a Vulkan device (lavapipe will do), every linear layer on it (-ngl 99, thresholds
# 0) gives the CPU's greedy tokens, and --profile shows the linear nodes run there.
if grep -q '^device 0: ' devices.txt; then
  "$run_model" --device cpu -p "The" -n 16 --temp 0 --tokens-out cpu_ids.json >cpu_text.txt 2>/dev/null ||
    fail "--device cpu failed"
  EMBER_GPU_MIN_FLOPS=0 EMBER_GPU_MIN_WEIGHT_BYTES=0 "$run_model" --device vulkan -ngl 99 -p "The" -n 16 --temp 0 \
    --tokens-out vulkan_ids.json --profile >vulkan_text.txt 2>vulkan_err.txt || fail "--device vulkan: $(cat vulkan_err.txt)"
  cmp -s cpu_ids.json vulkan_ids.json || fail "--device vulkan gave other tokens: $(cat vulkan_ids.json) vs $(cat cpu_ids.json)"
  cmp -s cpu_text.txt vulkan_text.txt || fail "--device vulkan gave other text"
  grep -Eq '^linear +vulkan +[1-9]' vulkan_err.txt || fail "--device vulkan ran no linear node there: $(cat vulkan_err.txt)"
  # Its device time is its own (each node timed apart under --profile): not zero.
  grep -Eq '^linear +vulkan +[0-9]+ +[0-9.]+ +([1-9][0-9]*\.[0-9]+|0\.[0-9]*[1-9][0-9]*) ' vulkan_err.txt ||
    fail "--profile gave the linear nodes no device time: $(cat vulkan_err.txt)"
  grep -Eq '^linear +cpu ' vulkan_err.txt && fail "--device vulkan -ngl 99 left linear nodes on the CPU: $(cat vulkan_err.txt)"
fi

# Bad input: one line naming the cause, non-zero exit.
expect_error() {
  local pattern=$1
  shift
  if "$run_model" "$@" >/dev/null 2>bad.txt; then fail "accepted: $*"; fi
  grep -q -- "$pattern" bad.txt || fail "$* said: $(cat bad.txt)"
}
expect_error "no such file" -m missing.gguf
VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json expect_error "no usable Vulkan device" --device vulkan
[ "$(wc -l <bad.txt)" -eq 1 ] || fail "--device vulkan without a driver said more than one line: $(cat bad.txt)"
VK_ICD_FILENAMES=/nonexistent.json VK_DRIVER_FILES=/nonexistent.json EMBER_CACHE_DIR=$scratch/cache \
  expect_error "calibration: no usable Vulkan device" --calibrate
[ -e "$scratch/cache/gpu-calibration.json" ] && fail "--calibrate without a device wrote a calibration"
expect_error "cpu, vulkan or auto" --device tpu
expect_error "ngl -2: a layer count" -ngl -2
expect_error "kv-type" --kv-type q4_0
expect_error "top-p" --top-p 1.5
expect_error "needs .* positions" -p "hi" -n 100000
expect_error "longer than the context" -c 4 -p "one two three four five six seven"
printf 'abc\377' >bad_utf8.txt
expect_error "UTF-8" -f bad_utf8.txt
expect_error "cannot read" -f missing.txt
expect_error "cannot read" --perplexity missing.txt
printf 'not a model' >corrupt.gguf
expect_error "corrupt.gguf" -m corrupt.gguf
mkdir -p no_tokenizer && cp "$data_dir/demo-fortunes-7m/config.json" no_tokenizer/
expect_error "no_tokenizer" -m no_tokenizer
echo "run-model CLI: all checks passed"
