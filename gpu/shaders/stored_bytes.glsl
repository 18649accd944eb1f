// Bytes, halves and words of GGUF data bound as uint[] (so no 8- or 16-bit storage
// feature is needed). The including shader defines STORED_WORDS as that array's name.
// GGUF's blocks of 34 and 18 bytes keep every field 2-byte aligned, not 4.

uint byte_at(uint offset) { return (STORED_WORDS[offset >> 2] >> (8u * (offset & 3u))) & 0xffu; }

float half_at(uint offset) { return unpackHalf2x16(STORED_WORDS[offset >> 2] >> (8u * (offset & 2u))).x; }

// The 4 bytes at an even offset.
uint word_at(uint offset) {
  const uint first = STORED_WORDS[offset >> 2];
  if ((offset & 2u) == 0u) return first;
  return (first >> 16) | (STORED_WORDS[(offset >> 2) + 1u] << 16);
}
