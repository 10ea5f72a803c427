// Decoders: ByteLevel (alone or as the only step of a Sequence) or none.
#include "models/tokenizer/detail/decoder.hpp"

#include "models/tokenizer/detail/byte_level.hpp"
#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models::detail {

namespace {

constexpr int max_depth = 8;  // nested Sequences

}  // namespace

Decoder::Decoder(const Json& decoder, const JsonPath& at) {
  if (decoder.is_null()) return;
  read(decoder, at, 0);
  if (byte_level_steps_ > 1) at.fail("more than one ByteLevel decoder is not supported");
}

void Decoder::read(const Json& node, const JsonPath& at, int depth) {
  if (depth > max_depth) at.fail("Sequences nested deeper than " + std::to_string(max_depth));
  const std::string& type = expect_string(require_member(node, "type", at), at / "type");
  if (type == "ByteLevel") {
    ++byte_level_steps_;
  } else if (type == "Sequence") {
    const Json& steps = require_member(node, "decoders", at);
    expect_array(steps, at / "decoders");
    for (size_t i = 0; i < steps.size(); ++i) read(steps[i], (at / "decoders")[i], depth + 1);
  } else {
    (at / "type").fail("unsupported decoder '" + type + "' (supported: ByteLevel, Sequence)");
  }
}

std::string Decoder::decode(const std::vector<std::string_view>& tokens) const {
  if (byte_level_steps_ == 0) {
    std::string joined;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i > 0) joined += ' ';
      joined.append(tokens[i]);
    }
    return joined;
  }
  std::string bytes;
  for (std::string_view token : tokens) append_token_bytes(bytes, token);
  return utf8_lossy(bytes);
}

}  // namespace qerl::models::detail
