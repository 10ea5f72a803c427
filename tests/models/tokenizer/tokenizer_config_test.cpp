// tokenizer_config.json: special-token names in both spellings (a string, an
// AddedToken object) resolve to the ids HF's tokenizer gives them; a name
// that is not in the vocabulary or an ill-typed key is an error naming it.
#include "models/tokenizer/tokenizer_config.hpp"

#include <doctest/doctest.h>

#include "common/error.hpp"
#include "parity_data.hpp"

using namespace qerl::models;

TEST_CASE("special token names resolve to HF's ids in both spellings") {
  const Tokenizer tok = Tokenizer::from_file(testing::oracle_dir() / "qwen2.json");
  const TokenizerConfig config = parse_tokenizer_config(R"({
      "eos_token": "<|im_end|>",
      "pad_token": {"content": "<|endoftext|>", "lstrip": false, "special": true},
      "bos_token": null, "add_bos_token": false, "chat_template": "{% for m in messages %}..."})",
                                                        "qwen/tokenizer_config.json");
  CHECK(config.eos_token == "<|im_end|>");
  CHECK(config.pad_token == "<|endoftext|>");
  CHECK_FALSE(config.bos_token.has_value());
  CHECK_FALSE(config.unk_token.has_value());
  const SpecialTokenIds ids = resolve_special_tokens(tok, config);
  int32_t want_eos = -1, want_pad = -1;
  for (const auto& flavour : testing::parity_data().at("flavours")) {
    if (flavour.at("name") != "qwen2") continue;
    want_eos = flavour.at("special").at("<|im_end|>");
    want_pad = flavour.at("special").at("<|endoftext|>");
  }
  CHECK(ids.eos == want_eos);
  CHECK(ids.pad == want_pad);
  CHECK_FALSE(ids.bos.has_value());
  CHECK(tok.decode({*ids.eos}) == "<|im_end|>");
  CHECK(tok.decode({*ids.eos}, /*skip_special_tokens=*/true).empty());
}

TEST_CASE("unknown or ill-typed special tokens are errors naming the key") {
  const Tokenizer tok = Tokenizer::from_file(testing::oracle_dir() / "qwen2.json");
  const TokenizerConfig unknown = parse_tokenizer_config(R"({"eos_token": "</s>"})", "cfg.json");
  CHECK_THROWS_WITH_AS(resolve_special_tokens(tok, unknown),
                       doctest::Contains("eos_token '</s>' is not in the vocabulary"), qerl::Error);
  CHECK_THROWS_WITH_AS(parse_tokenizer_config(R"({"eos_token": 7})", "cfg.json"),
                       doctest::Contains("cfg.json: eos_token: expected a string, got an integer"),
                       qerl::Error);
  CHECK_THROWS_WITH_AS(parse_tokenizer_config(R"({"pad_token": {"special": true}})", "cfg.json"),
                       doctest::Contains("cfg.json: pad_token.content: missing"), qerl::Error);
  CHECK_THROWS_WITH_AS(parse_tokenizer_config("{", "cfg.json"), doctest::Contains("cfg.json: invalid JSON"),
                       qerl::Error);
  CHECK_THROWS_WITH_AS(read_tokenizer_config("/nonexistent/tokenizer_config.json"),
                       doctest::Contains("/nonexistent/tokenizer_config.json: cannot read"), qerl::Error);
}
