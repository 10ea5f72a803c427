// UTF-8 for the tokenizer: stepping over code points, validation, encoding,
// and HF's lossy decoding of byte strings (each maximal invalid subpart
// becomes one U+FFFD, as Rust's String::from_utf8_lossy does), which is what
// decoding ids that end inside a multi-byte character yields.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qerl::models::detail {

struct Utf8Step {
  size_t length;  // bytes of the sequence; if invalid: of its maximal subpart (>= 1)
  bool valid;
};

// The sequence starting at text[pos] (pos < text.size()).
Utf8Step scan_utf8(std::string_view text, size_t pos);

// Offset of the first invalid byte, or std::string_view::npos for valid text.
size_t find_invalid_utf8(std::string_view text);

// The code point at text[pos] of VALID text; advances pos past it.
uint32_t next_code_point(std::string_view text, size_t& pos);

void append_utf8(std::string& out, uint32_t code_point);

// Valid text unchanged; each invalid maximal subpart replaced by U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace qerl::models::detail
