// Typed access to tokenizer.json values that knows where it is ("file:
// model.merges[3]"), so every malformed value fails with one qerl::Error line
// naming the file, the key path and what is wrong. Never throws a JSON
// library exception past it.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace qerl::models::detail {

using Json = nlohmann::json;

struct JsonPath {
  std::string file;  // where the JSON came from, e.g. ".../tokenizer.json"
  std::string path;  // key path inside it, e.g. "model.merges[3]"; empty: the root

  JsonPath operator/(std::string_view key) const;
  JsonPath operator[](size_t index) const;
  [[noreturn]] void fail(const std::string& what) const;
};

// "string", "array", ... for messages.
const char* json_type_name(const Json& value);

// The member `key` of `object` (an object at `at`); fails when it is missing.
const Json& require_member(const Json& object, std::string_view key, const JsonPath& at);
// The member or nullptr when missing or null.
const Json* find_member(const Json& object, std::string_view key);

void expect_object(const Json& value, const JsonPath& at);
void expect_array(const Json& value, const JsonPath& at);
const std::string& expect_string(const Json& value, const JsonPath& at);

// Optional members: missing or null gives the fallback / nullopt.
bool bool_member(const Json& object, std::string_view key, bool fallback, const JsonPath& at);
std::optional<std::string> string_member(const Json& object, std::string_view key, const JsonPath& at);
// A token id: an integer in [0, 2^31).
int32_t id_value(const Json& value, const JsonPath& at);

}  // namespace qerl::models::detail
