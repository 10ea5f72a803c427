// The Unicode helpers against Python: NFC of every character with a
// canonical decomposition (composed and decomposed), of decomposed Hangul and
// of random base + combining-mark sequences must equal unicodedata's; lossy
// decoding of broken UTF-8 must equal bytes.decode(errors="replace"), i.e.
// one U+FFFD per maximal invalid subpart, as Rust's from_utf8_lossy.
#include <doctest/doctest.h>

#include <string>

#include "models/tokenizer/detail/unicode_nfc.hpp"
#include "models/tokenizer/detail/unicode_nfc_data.hpp"
#include "models/tokenizer/detail/utf8.hpp"
#include "parity_data.hpp"

using namespace qerl::models::detail;

namespace {

std::string from_hex(const std::string& hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2)
    bytes += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return bytes;
}

}  // namespace

TEST_CASE(
    "to_nfc equals Python's unicodedata.normalize('NFC') on every tabulated decomposition and random marks") {
  const auto& data = qerl::models::testing::unicode_data();
  // Tables are Unicode 14 (Python 3.11); a newer Python only adds characters,
  // which the cases below would show as mismatches if the corpus hit them.
  if (data.at("unicode_version") != unicode_nfc_version)
    MESSAGE("oracle Unicode " << data.at("unicode_version").get<std::string>() << ", tables "
                              << unicode_nfc_version);
  size_t changed = 0, failures = 0;
  for (const auto& c : data.at("nfc")) {
    const std::string input = c[0], want = c[1];
    if (input != want) ++changed;
    const std::string got = to_nfc(input);
    if (got != want && ++failures <= 10)
      FAIL_CHECK("NFC of " << c[0].dump() << ": got " << nlohmann::json(got).dump());
  }
  CHECK(failures == 0);
  CHECK(changed > 1000);  // the cases do exercise composition
}

TEST_CASE("to_nfc leaves text without decomposable characters untouched") {
  CHECK(to_nfc("") == "");
  CHECK(to_nfc("plain ASCII, tabs\tand newlines\n") == "plain ASCII, tabs\tand newlines\n");
  CHECK(to_nfc("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80") ==
        "caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80");
}

TEST_CASE("utf8_lossy equals Python's decode(errors='replace') on broken UTF-8") {
  size_t replaced = 0, failures = 0;
  for (const auto& c : qerl::models::testing::unicode_data().at("lossy")) {
    const std::string bytes = from_hex(c[0]);
    const std::string want = c[1];
    if (find_invalid_utf8(bytes) != std::string::npos) ++replaced;
    const std::string got = utf8_lossy(bytes);
    if (got != want && ++failures <= 10)
      FAIL_CHECK("lossy of " << c[0] << ": got " << nlohmann::json(got).dump());
    CHECK(find_invalid_utf8(got) == std::string::npos);
  }
  CHECK(failures == 0);
  CHECK(replaced > 1000);
}
