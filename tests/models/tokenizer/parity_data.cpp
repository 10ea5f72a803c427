// Runs the oracle script once (on first use) and parses its outputs.
#include "parity_data.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace qerl::models::testing {

namespace {

nlohmann::json read_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  return nlohmann::json::parse(in);
}

}  // namespace

const std::filesystem::path& oracle_dir() {
  static const std::filesystem::path dir = [] {
    const std::filesystem::path out = std::filesystem::path(QERL_TOKENIZER_WORK_DIR) / "parity";
    const std::string command = std::string("\"") + QERL_PYTHON + "\" \"" + QERL_TOKENIZER_TEST_DIR +
                                "/make_parity_data.py\" \"" + out.string() + "\"";
    const int rc = std::system(command.c_str());
    REQUIRE_MESSAGE(rc == 0, "the HF oracle failed: " << command);
    return out;
  }();
  return dir;
}

const nlohmann::json& parity_data() {
  static const nlohmann::json data = read_json(oracle_dir() / "parity.json");
  return data;
}

const nlohmann::json& unicode_data() {
  static const nlohmann::json data = read_json(oracle_dir() / "unicode.json");
  return data;
}

}  // namespace qerl::models::testing
