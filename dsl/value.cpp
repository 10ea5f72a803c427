// Spelling of values: kind names for messages and docs, and TOML literals
// that read back to the identical value (floats use the shortest decimal
// form that round-trips, strings are escaped as TOML basic strings).
#include "dsl/value.hpp"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace qerl::dsl {

const char* kind_name(ValueKind kind) {
  switch (kind) {
    case ValueKind::boolean: return "boolean";
    case ValueKind::integer: return "integer";
    case ValueKind::floating: return "float";
    case ValueKind::string: return "string";
    case ValueKind::string_list: return "list of strings";
    case ValueKind::integer_list: return "list of integers";
  }
  return "value";
}

namespace {

std::string float_literal(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  std::string s(buf, result.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";  // keep it a TOML float
  return s;
}

std::string string_literal(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c) & 0xffu);
          out += esc;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

template <class T, class F>
std::string list_literal(const std::vector<T>& items, F&& one) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) out += (i ? ", " : "") + one(items[i]);
  return out + "]";
}

}  // namespace

std::string to_toml_literal(const Value& value) {
  if (const bool* b = std::get_if<bool>(&value)) return *b ? "true" : "false";
  if (const int64_t* i = std::get_if<int64_t>(&value)) return std::to_string(*i);
  if (const double* d = std::get_if<double>(&value)) return float_literal(*d);
  if (const std::string* s = std::get_if<std::string>(&value)) return string_literal(*s);
  if (const auto* l = std::get_if<std::vector<std::string>>(&value))
    return list_literal(*l, string_literal);
  const auto& ints = std::get<std::vector<int64_t>>(value);
  return list_literal(ints, [](int64_t i) { return std::to_string(i); });
}

}  // namespace qerl::dsl
