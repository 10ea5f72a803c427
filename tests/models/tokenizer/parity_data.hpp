// The oracle's output, produced once per test run: make_parity_data.py (run
// with the QERL_PYTHON interpreter) trains the test tokenizers with HF
// `tokenizers` and writes their tokenizer.json files, parity.json (HF's
// encodings and decodings of the test corpus) and unicode.json (Python's NFC
// and lossy UTF-8 decoding) into the build folder.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

namespace qerl::models::testing {

// The folder the oracle wrote; fails the calling test if the script fails.
const std::filesystem::path& oracle_dir();
const nlohmann::json& parity_data();   // parity.json
const nlohmann::json& unicode_data();  // unicode.json

}  // namespace qerl::models::testing
