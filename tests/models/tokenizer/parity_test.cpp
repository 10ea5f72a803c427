// Peer parity with HF `tokenizers`: for every test tokenizer (GPT-2, Qwen2
// and Llama-3 style byte-level BPE, split behaviours, char-level, unk and
// byte-fallback models) and every corpus line, qerl's ids (with and without
// special-token parsing and post-processing) and decoded text (with and
// without skipping specials, and of truncated or random id sequences) must
// equal HF's exactly. Reports how many lines agree in all respects.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "models/tokenizer/tokenizer.hpp"
#include "parity_data.hpp"

using qerl::models::TokenId;
using qerl::models::Tokenizer;

namespace {

std::string show(const std::string& text) { return nlohmann::json(text).dump(); }

std::string show(const std::vector<TokenId>& ids) { return nlohmann::json(ids).dump(); }

}  // namespace

TEST_CASE("qerl encodes and decodes every corpus line exactly as HF tokenizers does") {
  const nlohmann::json& data = qerl::models::testing::parity_data();
  // scripts/setup.sh pins 0.23.3; another version is still an oracle (GPU hosts bring their own).
  if (data.at("tokenizers_version") != "0.23.3")
    MESSAGE("oracle is tokenizers " << data.at("tokenizers_version").get<std::string>() << ", pinned 0.23.3");
  size_t lines = 0, agreeing = 0;
  for (const auto& flavour : data.at("flavours")) {
    const std::string name = flavour.at("name");
    CAPTURE(name);
    const Tokenizer tok = Tokenizer::from_file(flavour.at("file").get<std::string>());
    CHECK(tok.vocab_size() == flavour.at("max_id").get<int64_t>() + 1);
    for (const auto& [content, id] : flavour.at("special").items()) {
      CHECK(tok.token_to_id(content) == id.get<TokenId>());
      CHECK(tok.is_special(id.get<TokenId>()));
    }
    for (const auto& c : flavour.at("cases")) {
      ++lines;
      bool ok = true;
      const auto expect = [&](bool same, const std::string& what, const std::string& got,
                              const std::string& want) {
        if (same) return;
        ok = false;
        const std::string text =
            c.at("text").is_null() ? "(random ids)" : show(c.at("text").get<std::string>());
        FAIL_CHECK(name << " " << what << " of " << text << ": got " << got << ", HF " << want);
      };
      if (!c.at("text").is_null()) {
        const std::string text = c.at("text");
        const auto ids = tok.encode(text, /*add_special_tokens=*/false);
        const auto want = c.at("ids").get<std::vector<TokenId>>();
        expect(ids == want, "ids", show(ids), show(want));
        const auto ids_special = tok.encode(text, /*add_special_tokens=*/true);
        const auto want_special = c.at("ids_special").get<std::vector<TokenId>>();
        expect(ids_special == want_special, "ids with special tokens", show(ids_special), show(want_special));
        const auto ids_plain = tok.encode(text, /*add_special_tokens=*/false, /*parse_special_tokens=*/false);
        const auto want_plain = c.at("ids_no_parse").get<std::vector<TokenId>>();
        expect(ids_plain == want_plain, "ids without parsing specials", show(ids_plain), show(want_plain));
        const std::string decoded = tok.decode(want);
        expect(decoded == c.at("decoded"), "decode", show(decoded), c.at("decoded").dump());
        const std::string skipped = tok.decode(want, /*skip_special_tokens=*/true);
        expect(skipped == c.at("decoded_skip"), "decode skipping specials", show(skipped),
               c.at("decoded_skip").dump());
      } else {
        const auto ids = c.at("half_ids").get<std::vector<TokenId>>();
        const std::string skipped = tok.decode(ids, /*skip_special_tokens=*/true);
        expect(skipped == c.at("decoded_half_skip"), "decode skipping specials of " + show(ids),
               show(skipped), c.at("decoded_half_skip").dump());
      }
      const auto half = c.at("half_ids").get<std::vector<TokenId>>();
      const std::string decoded_half = tok.decode(half);
      expect(decoded_half == c.at("decoded_half"), "decode of " + show(half), show(decoded_half),
             c.at("decoded_half").dump());
      if (ok) ++agreeing;
    }
  }
  MESSAGE("tokenizer parity: " << agreeing << " / " << lines << " lines agree with HF tokenizers "
                               << data.at("tokenizers_version").get<std::string>());
  CHECK(agreeing == lines);
  CHECK(lines > 5000);
}
