// Reading tokenizer_config.json's special-token names and looking them up.
#include "models/tokenizer/tokenizer_config.hpp"

#include <fstream>
#include <sstream>

#include "common/error.hpp"
#include "models/tokenizer/detail/json_path.hpp"

namespace qerl::models {

namespace {

constexpr std::uintmax_t max_file_bytes = 64u << 20;  // chat templates make it a few 100 KB at most

// A token name: a string, an AddedToken object {"content": ...}, or null.
std::optional<std::string> token_name(const detail::Json& root, const char* key, const detail::JsonPath& at) {
  const detail::Json* value = detail::find_member(root, key);
  if (value == nullptr) return std::nullopt;
  if (value->is_object()) {
    return detail::expect_string(detail::require_member(*value, "content", at / key), at / key / "content");
  }
  return detail::expect_string(*value, at / key);
}

}  // namespace

TokenizerConfig parse_tokenizer_config(std::string_view json, const std::string& origin) {
  const detail::JsonPath at{origin, ""};
  detail::Json root;
  try {
    root = detail::Json::parse(json.begin(), json.end());
  } catch (const detail::Json::exception& e) {
    at.fail(std::string("invalid JSON: ") + e.what());
  }
  detail::expect_object(root, at);
  TokenizerConfig config;
  config.eos_token = token_name(root, "eos_token", at);
  config.bos_token = token_name(root, "bos_token", at);
  config.pad_token = token_name(root, "pad_token", at);
  config.unk_token = token_name(root, "unk_token", at);
  config.add_bos_token = detail::bool_member(root, "add_bos_token", false, at);
  return config;
}

TokenizerConfig read_tokenizer_config(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path.string() + ": cannot read tokenizer config: " + ec.message());
  if (size > max_file_bytes) throw Error(path.string() + ": tokenizer config larger than 64 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open tokenizer config");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_tokenizer_config(text.str(), path.string());
}

SpecialTokenIds resolve_special_tokens(const Tokenizer& tokenizer, const TokenizerConfig& config) {
  const auto lookup = [&](const std::optional<std::string>& name, const char* key) -> std::optional<TokenId> {
    if (!name) return std::nullopt;
    const std::optional<TokenId> id = tokenizer.token_to_id(*name);
    if (!id)
      throw Error(std::string("tokenizer_config.json: ") + key + " '" + *name + "' is not in the vocabulary");
    return id;
  };
  SpecialTokenIds ids;
  ids.eos = lookup(config.eos_token, "eos_token");
  ids.bos = lookup(config.bos_token, "bos_token");
  ids.pad = lookup(config.pad_token, "pad_token");
  ids.unk = lookup(config.unk_token, "unk_token");
  return ids;
}

}  // namespace qerl::models
