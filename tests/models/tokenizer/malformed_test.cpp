// Malformed or unsupported tokenizer.json files are rejected when loading
// with one qerl::Error line that names the file, the key path and what is
// wrong; nothing is silently accepted that would encode differently from HF.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/error.hpp"
#include "models/tokenizer/tokenizer.hpp"

using qerl::models::Tokenizer;

namespace {

// A valid byte-free BPE model: a, b, c, ab, abc with two merges.
std::string with_model(const std::string& model_extra, const std::string& top_extra = "",
                       const std::string& added_tokens = "[]") {
  return R"({"version": "1.0", "added_tokens": )" + added_tokens + ", " + top_extra +
         R"("model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3, "abc": 4}, )" + model_extra +
         "}}";
}

const std::string good_merges = R"("merges": [["a", "b"], "ab c"])";

struct Case {
  const char* name;
  std::string json;
  std::vector<std::string> expected;  // substrings of the error line
};

std::string load_error(const std::string& json) {
  try {
    (void)Tokenizer::from_json(json, "bad/tokenizer.json");
  } catch (const qerl::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the well-formed base of the malformed cases loads and merges") {
  const Tokenizer tok = Tokenizer::from_json(with_model(good_merges), "good/tokenizer.json");
  CHECK(tok.encode("abcab") == std::vector<int32_t>{4, 3});
  CHECK(tok.vocab_size() == 5);
}

TEST_CASE("each malformed tokenizer.json fails with a one-line error naming the file and the problem") {
  const std::vector<Case> cases = {
      {"bad JSON", R"({"model": )", {"invalid JSON"}},
      {"not an object", "[1, 2]", {"expected an object, got an array"}},
      {"missing model", R"({"version": "1.0"})", {"missing \"model\""}},
      {"unknown version", R"({"version": "2.0", "model": {}})", {"version", "'2.0'"}},
      {"unknown model type", R"({"model": {"type": "Unigram", "vocab": []}})", {"model.type", "'Unigram'"}},
      {"missing vocab", R"({"model": {"type": "BPE", "merges": []}})", {"model.vocab: missing"}},
      {"missing merges", R"({"model": {"type": "BPE", "vocab": {}}})", {"model.merges: missing"}},
      {"merge of an unknown token",
       with_model(R"("merges": [["a", "x"]])"),
       {"model.merges[0]", "'x'", "not in model.vocab"}},
      {"merge into an unknown token", with_model(R"("merges": [["b", "c"]])"), {"model.merges[0]", "'bc'"}},
      {"merge string with two spaces", with_model(R"("merges": ["a  b"])"), {"model.merges[0]", "one space"}},
      {"merge of the wrong shape", with_model(R"("merges": [["a", "b", "c"]])"), {"model.merges[0]"}},
      {"negative id",
       R"({"model": {"type": "BPE", "vocab": {"a": -1}, "merges": []}})",
       {"model.vocab.a", "token id"}},
      {"string id",
       R"({"model": {"type": "BPE", "vocab": {"a": "0"}, "merges": []}})",
       {"model.vocab.a", "a string"}},
      {"dropout", with_model(good_merges + R"(, "dropout": 0.1)"), {"model.dropout", "not supported"}},
      {"invalid regex",
       with_model(good_merges, R"("pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a|"},
          "behavior": "Isolated", "invert": false}, )"),
       {"pre_tokenizer.pattern", "invalid regex", "(a|"}},
      {"unknown split behaviour",
       with_model(good_merges, R"("pre_tokenizer": {"type": "Split", "pattern": {"String": " "},
          "behavior": "Sideways"}, )"),
       {"pre_tokenizer.behavior", "'Sideways'"}},
      {"unsupported normalizer",
       with_model(good_merges, R"("normalizer": {"type": "NFKC"}, )"),
       {"normalizer.type", "'NFKC'"}},
      {"unsupported pre-tokenizer",
       with_model(good_merges, R"("pre_tokenizer": {"type": "Sequence", "pretokenizers":
          [{"type": "Metaspace"}]}, )"),
       {"pre_tokenizer.pretokenizers[0].type", "'Metaspace'"}},
      {"unsupported decoder",
       with_model(good_merges, R"("decoder": {"type": "WordPiece"}, )"),
       {"decoder.type", "'WordPiece'"}},
      {"template naming a missing special token",
       with_model(good_merges, R"("post_processor": {"type": "TemplateProcessing",
          "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
          "special_tokens": {}}, )"),
       {"post_processor.special_tokens.<s>", "missing"}},
      {"added tokens not a list", with_model(good_merges, "", "{}"), {"added_tokens", "expected an array"}},
      {"added token without content",
       with_model(good_merges, "", R"([{"id": 5}])"),
       {"added_tokens[0].content: missing"}},
      {"nesting too deep",
       with_model(
           good_merges, R"("normalizer": )" + std::string(20, ' ') +
                            [] {
                              std::string n = R"({"type": "NFC"})";
                              for (int i = 0; i < 12; ++i)
                                n = R"({"type": "Sequence", "normalizers": [)" + n + "]}";
                              return n;
                            }() +
                            ", "),
       {"normalizer", "nested deeper"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    const std::string error = load_error(c.json);
    REQUIRE_MESSAGE(!error.empty(), c.name << " was accepted");
    CHECK(error.rfind("bad/tokenizer.json: ", 0) == 0);
    CHECK(error.find('\n') == std::string::npos);
    for (const std::string& part : c.expected) CHECK_MESSAGE(error.find(part) != std::string::npos, error);
  }
}

TEST_CASE("a missing tokenizer file is an error naming it") {
  CHECK_THROWS_WITH_AS(Tokenizer::from_file("/nonexistent/dir/tokenizer.json"),
                       doctest::Contains("/nonexistent/dir/tokenizer.json: cannot read"), qerl::Error);
}

TEST_CASE("encode rejects invalid UTF-8 and reports a missing unk token at use") {
  const Tokenizer tok = Tokenizer::from_json(with_model(good_merges), "good/tokenizer.json");
  CHECK_THROWS_WITH_AS(tok.encode("ab\xC3("), doctest::Contains("not valid UTF-8 (byte 2)"), qerl::Error);
  const Tokenizer unk =
      Tokenizer::from_json(with_model(good_merges + R"(, "unk_token": "<unk>")"), "unk/tokenizer.json");
  CHECK(unk.encode("abc") == std::vector<int32_t>{4});
  CHECK_THROWS_WITH_AS(unk.encode("abz"), doctest::Contains("unk/tokenizer.json: model.unk_token '<unk>'"),
                       qerl::Error);
}
