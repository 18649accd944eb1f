// Bytes, halves and words of GGUF data bound as uint[] (so no 8- or 16-bit storage
// feature is needed). The including shader defines STORED_WORDS as that array's name, or
// STORED_WORD(i) as the expression that reads word i.
// GGUF's blocks of 34 and 18 bytes keep every field 2-byte aligned, not 4.

#ifndef STORED_WORD
#define STORED_WORD(i) STORED_WORDS[i]
#endif

uint byte_at(uint offset) { return (STORED_WORD(offset >> 2) >> (8u * (offset & 3u))) & 0xffu; }

float half_at(uint offset) { return unpackHalf2x16(STORED_WORD(offset >> 2) >> (8u * (offset & 2u))).x; }

// The 4 bytes at an even offset.
uint word_at(uint offset) {
  const uint first = STORED_WORD(offset >> 2);
  if ((offset & 2u) == 0u) return first;
  return (first >> 16) | (STORED_WORD((offset >> 2) + 1u) << 16);
}
