// The tiny model's char-level tokenizer.json, as written by
// char_level_tokenizer_json: HF tokenizers loads the written file and
// encodes with it exactly as qerl does, and it encodes the whole corpus as
// the oracle's HF-built char-level tokenizer (id = byte value, specials after).
#include "models/tokenizer/char_level.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "models/tokenizer/tokenizer.hpp"
#include "parity_data.hpp"

using namespace qerl::models;

namespace {

const std::vector<std::string> specials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};  // as the oracle

}  // namespace

TEST_CASE("char_level_tokenizer_json encodes every corpus line as the HF-built char-level tokenizer") {
  const Tokenizer tok = Tokenizer::from_json(char_level_tokenizer_json(specials), "char_level");
  CHECK(tok.vocab_size() == 259);
  CHECK(tok.token_to_id("<|im_end|>") == 258);
  CHECK(tok.encode("A\n") == std::vector<TokenId>{'A', '\n'});
  size_t lines = 0;
  for (const auto& flavour : testing::parity_data().at("flavours")) {
    if (flavour.at("name") != "charlevel") continue;
    for (const auto& c : flavour.at("cases")) {
      if (c.at("text").is_null()) continue;
      ++lines;
      CHECK(tok.encode(c.at("text").get<std::string>()) == c.at("ids").get<std::vector<TokenId>>());
      CHECK(tok.decode(c.at("half_ids").get<std::vector<TokenId>>()) ==
            c.at("decoded_half").get<std::string>());
    }
  }
  CHECK(lines > 300);
}

TEST_CASE("HF tokenizers loads the written char-level tokenizer.json and agrees with qerl") {
  const auto dir = testing::oracle_dir();
  const auto json_path = dir / "char_level_written.json", out_path = dir / "char_level_written_ids.json";
  std::ofstream(json_path) << char_level_tokenizer_json(specials);
  const std::string text = "caf\xC3\xA9 <|im_start|>user\n\xE4\xBD\xA0\xE5\xA5\xBD\xF0\x9F\x98\x80<|im_end|>";
  const std::string script =
      "import json,sys; from tokenizers import Tokenizer; t=Tokenizer.from_file(sys.argv[1]); "
      "json.dump(t.encode(sys.argv[3]).ids, open(sys.argv[2], 'w'))";
  const std::string command = std::string("\"") + QERL_PYTHON + "\" -c \"" + script + "\" \"" +
                              json_path.string() + "\" \"" + out_path.string() + "\" \"$QERL_TEXT\"";
  setenv("QERL_TEXT", text.c_str(), 1);
  REQUIRE(std::system(command.c_str()) == 0);
  std::ifstream in(out_path);
  const auto hf_ids = nlohmann::json::parse(in).get<std::vector<TokenId>>();
  const Tokenizer tok = Tokenizer::from_file(json_path);
  CHECK(tok.encode(text) == hf_ids);
  CHECK(hf_ids.size() == 23);  // 21 bytes, one id each, and the 2 special tokens
  CHECK(tok.decode(hf_ids) == text);
}
