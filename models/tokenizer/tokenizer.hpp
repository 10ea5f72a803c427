// qerl::models::Tokenizer: HF tokenizer.json for byte-level BPE (GPT-2,
// Qwen2/Qwen3, Llama-3 families) and the tiny model's character-level vocab
// (BPE without merges), encoding and decoding exactly as HF `tokenizers`
// 0.23 does (tests/models/tokenizer checks ids and text against it).
// Immutable after loading and safe to share between threads; copies share
// one loaded vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qerl::models {

using TokenId = int32_t;

namespace detail {
struct TokenizerParts;
}

class Tokenizer {
 public:
  // Throws qerl::Error naming the file and the JSON key path on anything it
  // cannot read or does not support (never silently encodes differently).
  static Tokenizer from_file(const std::filesystem::path& path);
  // `origin` names the text in errors (a path, "<fuzz input>").
  static Tokenizer from_json(std::string_view json, const std::string& origin);

  // text (UTF-8; qerl::Error if invalid) -> ids. add_special_tokens: apply the
  // post-processor (e.g. Llama-3's BOS), as HF's encode(add_special_tokens=);
  // parse_special_tokens false: "<|im_start|>" in the text is plain text, as
  // HF's encode_special_tokens = True.
  std::vector<TokenId> encode(std::string_view text, bool add_special_tokens = true,
                              bool parse_special_tokens = true) const;

  // ids -> text, as HF's decode. Ids outside the vocabulary are skipped (as
  // HF does); a sequence ending inside a multi-byte character yields U+FFFD.
  std::string decode(const std::vector<TokenId>& ids, bool skip_special_tokens = false) const;

  // Largest id + 1 over the model vocab and added tokens: the rows an
  // embedding needs. (HF's get_vocab_size counts entries; equal unless ids have holes.)
  int64_t vocab_size() const;
  std::optional<TokenId> token_to_id(std::string_view token) const;  // added tokens first
  std::optional<std::string> id_to_token(TokenId id) const;
  bool is_special(TokenId id) const;  // a special added token (skipped by skip_special_tokens)

 private:
  explicit Tokenizer(std::shared_ptr<const detail::TokenizerParts> parts);
  std::shared_ptr<const detail::TokenizerParts> parts_;
};

}  // namespace qerl::models
