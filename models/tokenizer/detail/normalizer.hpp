// tokenizer.json's "normalizer": null or NFC (Qwen2/Qwen3), possibly inside
// a Sequence. Any other normalizer is rejected when loading, rather than
// silently encoding differently from HF.
#pragma once

#include <string>
#include <string_view>

#include "models/tokenizer/detail/json_path.hpp"

namespace qerl::models::detail {

class Normalizer {
 public:
  Normalizer() = default;  // the identity
  Normalizer(const Json& normalizer, const JsonPath& at);

  bool is_identity() const { return !nfc_; }
  std::string apply(std::string_view text) const;  // text: valid UTF-8

 private:
  void read(const Json& normalizer, const JsonPath& at, int depth);
  bool nfc_ = false;
};

}  // namespace qerl::models::detail
