// The byte <-> character tables of GPT-2's bytes_to_unicode(), built once:
// bytes '!'..'~', U+00A1..U+00AC and U+00AE..U+00FF keep their own code
// point; the remaining 68 bytes, in increasing order, take U+0100..U+0143.
#include "models/tokenizer/detail/byte_level.hpp"

#include <array>
#include <cstdint>

#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

constexpr uint32_t alphabet_end = 0x144;  // all alphabet characters are below this

struct Alphabet {
  std::array<std::string, 256> char_of_byte;   // UTF-8 of the character
  std::array<int, alphabet_end> byte_of_char;  // -1: not in the alphabet

  Alphabet() {
    byte_of_char.fill(-1);
    uint32_t next = 0x100;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? b : next++;
      append_utf8(char_of_byte[b], cp);
      byte_of_char[cp] = static_cast<int>(b);
    }
  }
};

const Alphabet& alphabet() {
  static const Alphabet instance;  // immutable after first use
  return instance;
}

}  // namespace

std::string to_byte_level(std::string_view bytes) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.char_of_byte[static_cast<unsigned char>(c)];
  return out;
}

void append_token_bytes(std::string& out, std::string_view token) {
  const Alphabet& a = alphabet();
  const size_t start = out.size();
  for (size_t pos = 0; pos < token.size();) {
    const Utf8Step step = scan_utf8(token, pos);
    int byte = -1;
    if (step.valid) {
      size_t at = pos;
      const uint32_t cp = next_code_point(token, at);
      if (cp < alphabet_end) byte = a.byte_of_char[cp];
    }
    if (byte < 0) {  // not an alphabet character: the token stands for itself
      out.resize(start);
      out.append(token);
      return;
    }
    out += static_cast<char>(byte);
    pos += step.length;
  }
}

}  // namespace qerl::models::detail
