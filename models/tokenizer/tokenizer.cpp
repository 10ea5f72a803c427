// Loading tokenizer.json into its parts and running HF's encode pipeline:
// cut raw-text added tokens out, normalize the rest, cut normalized added
// tokens out, pre-tokenize into words, BPE each word, post-process. Decode
// maps ids to token strings (added tokens first) and runs the decoder.
#include "models/tokenizer/tokenizer.hpp"

#include <fstream>
#include <sstream>

#include "common/error.hpp"
#include "models/tokenizer/detail/added_vocabulary.hpp"
#include "models/tokenizer/detail/bpe_model.hpp"
#include "models/tokenizer/detail/decoder.hpp"
#include "models/tokenizer/detail/json_path.hpp"
#include "models/tokenizer/detail/normalizer.hpp"
#include "models/tokenizer/detail/post_processor.hpp"
#include "models/tokenizer/detail/pre_tokenizer.hpp"
#include "models/tokenizer/detail/utf8.hpp"

namespace qerl::models {

namespace detail {

struct TokenizerParts {
  TokenizerParts(const Json& root, const JsonPath& at)
      : normalizer(member_or_null(root, "normalizer"), at / "normalizer"),
        pre_tokenizer(member_or_null(root, "pre_tokenizer"), at / "pre_tokenizer"),
        model(require_member(root, "model", at), at / "model"),
        added(member_or_null(root, "added_tokens"), at / "added_tokens", model, normalizer),
        post_processor(member_or_null(root, "post_processor"), at / "post_processor"),
        decoder(member_or_null(root, "decoder"), at / "decoder") {
    // HF would emit such an id; qerl refuses it here, before an embedding lookup could.
    for (int32_t id : post_processor.added_ids()) {
      if (added.token(id) == nullptr && model.id_to_token(id) == nullptr) {
        (at / "post_processor").fail("adds id " + std::to_string(id) + ", which is not in the vocabulary");
      }
    }
  }

  static const Json& member_or_null(const Json& object, std::string_view key) {
    static const Json null_value;
    const Json* found = find_member(object, key);
    return found ? *found : null_value;
  }

  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  BpeModel model;
  AddedVocabulary added;
  PostProcessor post_processor;
  Decoder decoder;
};

}  // namespace detail

namespace {

constexpr std::uintmax_t max_file_bytes = 256u << 20;  // Qwen2's tokenizer.json is ~7 MB

}  // namespace

Tokenizer::Tokenizer(std::shared_ptr<const detail::TokenizerParts> parts) : parts_(std::move(parts)) {}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path.string() + ": cannot read tokenizer: " + ec.message());
  if (size > max_file_bytes) throw Error(path.string() + ": tokenizer file larger than 256 MiB");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path.string() + ": cannot open tokenizer file");
  std::ostringstream text;
  text << in.rdbuf();
  return from_json(text.str(), path.string());
}

Tokenizer Tokenizer::from_json(std::string_view json, const std::string& origin) {
  const detail::JsonPath root_at{origin, ""};
  detail::Json root;
  try {
    root = detail::Json::parse(json.begin(), json.end());
  } catch (const detail::Json::exception& e) {
    root_at.fail(std::string("invalid JSON: ") + e.what());
  }
  detail::expect_object(root, root_at);
  if (const auto version = detail::string_member(root, "version", root_at); version && *version != "1.0") {
    (root_at / "version").fail("unsupported tokenizer.json version '" + *version + "' (expected 1.0)");
  }
  if (detail::find_member(root, "model") == nullptr) root_at.fail("missing \"model\"");
  return Tokenizer(std::make_shared<const detail::TokenizerParts>(root, root_at));
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, bool add_special_tokens,
                                       bool parse_special_tokens) const {
  if (const size_t bad = detail::find_invalid_utf8(text); bad != std::string_view::npos) {
    throw Error("tokenizer encode: text is not valid UTF-8 (byte " + std::to_string(bad) + ")");
  }
  const detail::TokenizerParts& p = *parts_;
  std::vector<TokenId> ids;
  for (detail::TextPiece& raw : p.added.split(text, /*normalized_set=*/false, parse_special_tokens)) {
    if (raw.id >= 0) {
      ids.push_back(raw.id);
      continue;
    }
    const std::string normalized = p.normalizer.apply(raw.text);
    for (detail::TextPiece& piece :
         p.added.split(normalized, /*normalized_set=*/true, parse_special_tokens)) {
      if (piece.id >= 0) {
        ids.push_back(piece.id);
        continue;
      }
      for (const std::string& word : p.pre_tokenizer.split(piece.text)) p.model.tokenize(word, ids);
    }
  }
  return add_special_tokens ? p.post_processor.apply(std::move(ids)) : ids;
}

std::string Tokenizer::decode(const std::vector<TokenId>& ids, bool skip_special_tokens) const {
  const detail::TokenizerParts& p = *parts_;
  std::vector<std::string_view> tokens;
  tokens.reserve(ids.size());
  for (TokenId id : ids) {
    std::string_view token;
    if (const detail::AddedToken* added = p.added.token(id)) {
      token = added->content;
    } else if (const std::string* known = p.model.id_to_token(id)) {
      token = *known;
    } else {
      continue;  // unknown id: skipped, as HF
    }
    if (skip_special_tokens && p.added.is_special(token)) continue;
    tokens.push_back(token);
  }
  return p.decoder.decode(tokens);
}

int64_t Tokenizer::vocab_size() const {
  return int64_t{std::max(parts_->model.max_id(), parts_->added.max_id())} + 1;
}

std::optional<TokenId> Tokenizer::token_to_id(std::string_view token) const {
  if (const auto id = parts_->added.token_to_id(token)) return id;
  return parts_->model.token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(TokenId id) const {
  if (const detail::AddedToken* added = parts_->added.token(id)) return added->content;
  if (const std::string* known = parts_->model.id_to_token(id)) return *known;
  return std::nullopt;
}

bool Tokenizer::is_special(TokenId id) const {
  const std::optional<std::string> token = id_to_token(id);
  return token && parts_->added.is_special(*token);
}

}  // namespace qerl::models
