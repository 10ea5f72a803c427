// tokenizer.json's "decoder": how token strings become text. ByteLevel maps
// the byte-level alphabet back to bytes and decodes them as UTF-8, replacing
// invalid sequences (a token sequence cut inside a character) with U+FFFD,
// as HF does; with no decoder the tokens are joined with spaces, as HF does.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "models/tokenizer/detail/json_path.hpp"

namespace qerl::models::detail {

class Decoder {
 public:
  Decoder() = default;  // no decoder
  Decoder(const Json& decoder, const JsonPath& at);

  std::string decode(const std::vector<std::string_view>& tokens) const;

 private:
  void read(const Json& node, const JsonPath& at, int depth);
  int byte_level_steps_ = 0;
};

}  // namespace qerl::models::detail
