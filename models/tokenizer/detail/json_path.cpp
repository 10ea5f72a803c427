// Checked JSON access for the tokenizer loader: every accessor checks the
// type before it reads, and failures carry the file and key path.
#include "models/tokenizer/detail/json_path.hpp"

#include "common/error.hpp"

namespace qerl::models::detail {

JsonPath JsonPath::operator/(std::string_view key) const {
  return {file, path.empty() ? std::string(key) : path + "." + std::string(key)};
}

JsonPath JsonPath::operator[](size_t index) const { return {file, path + "[" + std::to_string(index) + "]"}; }

void JsonPath::fail(const std::string& what) const {
  throw Error(file + ": " + (path.empty() ? what : path + ": " + what));
}

const char* json_type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::null: return "null";
    case Json::value_t::object: return "an object";
    case Json::value_t::array: return "an array";
    case Json::value_t::string: return "a string";
    case Json::value_t::boolean: return "a boolean";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned: return "an integer";
    case Json::value_t::number_float: return "a number";
    default: return "an unsupported JSON value";
  }
}

const Json* find_member(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return nullptr;
  return &*it;
}

const Json& require_member(const Json& object, std::string_view key, const JsonPath& at) {
  expect_object(object, at);
  const auto it = object.find(key);
  if (it == object.end()) (at / key).fail("missing");
  return *it;
}

void expect_object(const Json& value, const JsonPath& at) {
  if (!value.is_object()) at.fail(std::string("expected an object, got ") + json_type_name(value));
}

void expect_array(const Json& value, const JsonPath& at) {
  if (!value.is_array()) at.fail(std::string("expected an array, got ") + json_type_name(value));
}

const std::string& expect_string(const Json& value, const JsonPath& at) {
  if (!value.is_string()) at.fail(std::string("expected a string, got ") + json_type_name(value));
  return value.get_ref<const std::string&>();
}

bool bool_member(const Json& object, std::string_view key, bool fallback, const JsonPath& at) {
  const Json* value = find_member(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) (at / key).fail(std::string("expected a boolean, got ") + json_type_name(*value));
  return value->get<bool>();
}

std::optional<std::string> string_member(const Json& object, std::string_view key, const JsonPath& at) {
  const Json* value = find_member(object, key);
  if (value == nullptr) return std::nullopt;
  return expect_string(*value, at / key);
}

int32_t id_value(const Json& value, const JsonPath& at) {
  if (value.is_number_unsigned() && value.get<uint64_t>() < (uint64_t{1} << 31)) {
    return static_cast<int32_t>(value.get<uint64_t>());
  }
  if (value.is_number_integer() && value.get<int64_t>() >= 0 && value.get<int64_t>() < (int64_t{1} << 31)) {
    return static_cast<int32_t>(value.get<int64_t>());
  }
  at.fail(std::string("expected a token id (an integer in [0, 2^31)), got ") + json_type_name(value));
}

}  // namespace qerl::models::detail
