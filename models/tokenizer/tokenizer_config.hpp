// HF tokenizer_config.json: the names of the special tokens a model uses
// (eos_token, bos_token, pad_token, unk_token), written either as a string
// or as an AddedToken object {"content": ...}; resolved to ids through the
// Tokenizer. The chat_template is not read (qerl formats prompts itself).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "models/tokenizer/tokenizer.hpp"

namespace qerl::models {

struct TokenizerConfig {
  std::optional<std::string> eos_token;  // e.g. "<|im_end|>" or "<|endoftext|>"
  std::optional<std::string> bos_token;  // null in Qwen2
  std::optional<std::string> pad_token;
  std::optional<std::string> unk_token;
  bool add_bos_token = false;  // the key as written; false when absent
};

// Throws qerl::Error naming the file and key on unreadable or ill-typed input.
TokenizerConfig read_tokenizer_config(const std::filesystem::path& path);
TokenizerConfig parse_tokenizer_config(std::string_view json, const std::string& origin);

struct SpecialTokenIds {
  std::optional<TokenId> eos, bos, pad, unk;
};

// Ids of the configured special tokens; qerl::Error when a named token is
// not in the tokenizer's vocabulary.
SpecialTokenIds resolve_special_tokens(const Tokenizer& tokenizer, const TokenizerConfig& config);

}  // namespace qerl::models
