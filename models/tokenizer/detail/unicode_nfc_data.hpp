// The Unicode tables behind NFC, generated into unicode_nfc_data.cpp
// by gen_unicode_nfc_data.py from Python's unicodedata. Each table is sorted by
// code point; unicode_nfc.cpp builds its hash maps from them once, on first
// use. Private to models/tokenizer/.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qerl::models::detail {

struct CombiningClassRange {
  uint32_t first, last;  // inclusive code point range
  uint32_t ccc;          // canonical combining class, 1..254
};

struct CanonicalDecomposition {
  uint32_t code_point;
  uint32_t first, second;  // second = 0: a singleton decomposition
};

struct PrimaryComposite {
  uint32_t first, second;  // the pair that composes ...
  uint32_t composite;      // ... into this code point
};

extern const char* const unicode_nfc_version;  // "14.0.0"
extern const CombiningClassRange combining_class_ranges[];
extern const size_t combining_class_ranges_size;
extern const CanonicalDecomposition canonical_decompositions[];
extern const size_t canonical_decompositions_size;
extern const PrimaryComposite primary_composites[];
extern const size_t primary_composites_size;

}  // namespace qerl::models::detail
