// libFuzzer entry point: arbitrary bytes as a tokenizer.json (and as a
// tokenizer_config.json). Whatever loads then encodes a fixed multilingual
// text with special tokens (and the input itself when it is UTF-8) in every
// mode and decodes the ids back. Properties checked on every input: only
// qerl::Error escapes, no sanitizer finding, ids lie in [0, vocab_size), and
// decoded text is valid UTF-8.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "models/tokenizer/detail/utf8.hpp"
#include "models/tokenizer/tokenizer.hpp"
#include "models/tokenizer/tokenizer_config.hpp"

using qerl::models::TokenId;
using qerl::models::Tokenizer;

namespace {

constexpr std::string_view fixed_text =
    "Hello, world! I'm <|endoftext|> you're\t\t12345678 \r\n  caf\xC3\xA9 cafe\xCC\x81 "
    "\xE4\xBD\xA0\xE5\xA5\xBD "
    "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 <|im_start|>user\n<|im_end|> \xC2\xA0\xE3\x80\x80 x  LS y";

void check(bool property) {
  if (!property) std::abort();
}

void exercise(const Tokenizer& tok, std::string_view text) {
  const int64_t vocab_size = tok.vocab_size();
  for (int mode = 0; mode < 4; ++mode) {
    const std::vector<TokenId> ids = tok.encode(text, /*add_special_tokens=*/mode & 1,
                                                /*parse_special_tokens=*/mode & 2);
    for (TokenId id : ids) check(id >= 0 && id < vocab_size);
    for (bool skip : {false, true}) {
      const std::string decoded = tok.decode(ids, skip);
      check(qerl::models::detail::find_invalid_utf8(decoded) == std::string_view::npos);
    }
    for (TokenId id : ids) check(tok.id_to_token(id).has_value());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  try {
    (void)qerl::models::parse_tokenizer_config(input, "<fuzz input>");
  } catch (const qerl::Error&) {
  }
  try {
    const Tokenizer tok = Tokenizer::from_json(input, "<fuzz input>");
    exercise(tok, fixed_text);
    if (qerl::models::detail::find_invalid_utf8(input) == std::string_view::npos) exercise(tok, input);
    std::vector<TokenId> raw;  // ids straight from the input bytes, in and out of range
    for (size_t i = 0; i + 1 < size && raw.size() < 64; i += 2)
      raw.push_back(TokenId{data[i]} << 8 | data[i + 1]);
    check(qerl::models::detail::find_invalid_utf8(tok.decode(raw)) == std::string_view::npos);
  } catch (const qerl::Error&) {
  }
  return 0;
}
