#!/usr/bin/env bash
# Runs one fuzz target for SECONDS, starting from seeds made from the test files and the
# checked-in crash inputs, and prints libFuzzer's closing lines (runs, cov, crashes).
# Usage: tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]
# FUZZ_WORKERS=N (default 1) runs N fuzzing processes sharing the corpus (libFuzzer's
# -fork=N); the corpus in BUILD_DIR/fuzz-corpus/TARGET carries over from run to run.
# BUILD_DIR (default build-asan) is the `asan` preset's build, which has the fuzz targets:
#   cmake --preset asan && cmake --build --preset asan --target TARGET make-random-model
# A crash leaves its input as BUILD_DIR/fuzz-artifacts/TARGET/crash-* and exits non-zero.
set -euo pipefail
target=$1 seconds=$2
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${3:-$source_dir/build-asan}" && pwd)
data=$source_dir/tests/data/demo-fortunes-7m
seeds=$build/fuzz-seeds/$target corpus=$build/fuzz-corpus/$target artifacts=$build/fuzz-artifacts/$target
rm -rf "$seeds" && mkdir -p "$seeds" "$corpus" "$artifacts"

little_endian() {  # the $2 little-endian bytes of $1
  local value=$1
  for _ in $(seq "$2"); do
    printf "\\$(printf '%03o' $((value & 255)))"
    value=$((value >> 8))
  done
}
safetensors_seed() {  # a header and its data bytes: header length, header, data
  little_endian "${#1}" 8
  printf '%s' "$1"
  head -c "$2" /dev/zero
}

case $target in
  fuzz_gguf)
    "$build/bench/make-random-model" "$seeds/llama.gguf" --hidden 32 --layers 1 --heads 2 --kv-heads 1 --ffn 64 \
      --vocab 64 --type f16 >/dev/null
    "$build/bench/make-random-model" "$seeds/gpt2.gguf" --arch gpt2 --hidden 32 --layers 1 --heads 2 --ffn 64 \
      --vocab 300 --type f32 >/dev/null
    # The demo model's metadata and tensor table (a real tokenizer), its data cut off.
    head -c 131072 "$source_dir/models/demo-fortunes-7m-q8_0.gguf" >"$seeds/demo-head.gguf"
    ;;
  fuzz_safetensors)
    safetensors_seed '{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[3],"data_offsets":[16,22]}}' 22 >"$seeds/small.safetensors"
    header_bytes=$(od -An -t u8 -N 8 "$data/model.safetensors" | tr -d ' ')
    head -c $((8 + header_bytes)) "$data/model.safetensors" >"$seeds/demo-header.safetensors"
    ;;
  fuzz_model_config)
    cp "$data/config.json" "$seeds/llama.json"
    printf '{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":4,"n_positions":128,"vocab_size":256,"layer_norm_epsilon":1e-5}' >"$seeds/gpt2.json"
    ;;
  fuzz_tokenizer_json)
    cp "$data/tokenizer.json" "$seeds/demo.json"
    # Small ones too, so that most mutations land on structure rather than on the demo's
    # 120 KB of vocabulary: a SentencePiece-style BPE with byte fallback, a byte-level BPE.
    printf '%s' '{"added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"\u2581"},{"type":"Replace","pattern":{"String":" "},"content":"\u2581"}]},"pre_tokenizer":null,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}]},"model":{"type":"BPE","unk_token":"<unk>","byte_fallback":true,"vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0x00>":3,"<0x0A>":4,"\u2581":5,"a":6,"b":7,"ab":8,"\u2581a":9,"\u2581ab":10},"merges":["a b","\u2581 a","\u2581a b"]}}' >"$seeds/spm.json"
    printf '%s' '{"added_tokens":[{"id":0,"content":"<|begin_of_text|>","special":true}],"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},"post_processor":{"type":"ByteLevel"},"decoder":{"type":"ByteLevel"},"model":{"type":"BPE","byte_fallback":false,"vocab":{"<|begin_of_text|>":0,"a":1,"b":2,"\u0120":3,"ab":4,"\u0120a":5},"merges":["a b","\u0120 a"]}}' >"$seeds/byte-level.json"
    ;;
  fuzz_tokenizer_encode)
    printf 'You will be surrounded by luxury.' >"$seeds/ascii.txt"
    printf 'caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe4\xb8\xad\xe6\x96\x87\n\t  <s></s>' >"$seeds/utf8.txt"
    printf 'bad \xff\xfe \xc0\x80 \xed\xa0\x80 cut \xe2\x9c' >"$seeds/invalid.txt"
    ;;
  fuzz_tokenizer_decode)
    for id in 0 1 2 3 100 259 1000 4095 4096 -1 2147483647; do little_endian "$id" 4; done >"$seeds/ids.bin"
    ;;
  *)
    echo "unknown target '$target'" >&2
    exit 2
    ;;
esac
for input in "$source_dir/tests/fuzz/regressions/$target"-*; do
  [ -e "$input" ] && cp "$input" "$seeds/"
done

workers=${FUZZ_WORKERS:-1}
parallel=()
((workers > 1)) && parallel=(-fork="$workers")
log=$build/fuzz-$target.log
status=0
"$build/tests/fuzz/$target" "${parallel[@]}" -max_total_time="$seconds" -print_final_stats=1 \
  -artifact_prefix="$artifacts/" "$corpus" "$seeds" >"$log" 2>&1 || status=$?
grep -E "^#[0-9]+ +(INITED|DONE)|^Done|stat::|ERROR|SUMMARY|INFO: exiting" "$log" || true
# With -fork the parent prints its progress as "#RUNS: cov: ..." lines; the last is the total.
if ((workers > 1)); then grep -E "^#[0-9]+: cov:" "$log" | tail -1; fi
exit "$status"
