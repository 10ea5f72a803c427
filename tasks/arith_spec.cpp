// Parsing and validation of builtin:arith spec strings. Errors carry the spec
// and the byte offset of the offending option so that a typo in data.source
// is found without reading this file.
#include "tasks/arith_spec.hpp"

#include <algorithm>
#include <string>

#include "common/error.hpp"
#include "tasks/detail/arith_vocabulary.hpp"

namespace qerl::tasks {
namespace {

constexpr std::string_view kPrefix = "builtin:arith";
constexpr std::string_view kKnown =
    "steps, max_operand, max_value, max_factor, ops, negatives, templates, names, items, seed, "
    "size";
constexpr int64_t kMaxSteps = 64;
constexpr int64_t kMaxOperand = 1000000;
constexpr int64_t kMaxValue = 1000000000000;  // products of two operands fit

[[noreturn]] void fail_at(std::string_view spec, size_t byte, const std::string& message) {
  throw Error("builtin:arith spec '" + std::string(spec) + "', byte " + std::to_string(byte) +
              ": " + message);
}

void check_range(std::string_view context, const char* name, int64_t value, int64_t lo,
                 int64_t hi) {
  if (value < lo || value > hi) {
    throw Error(std::string(context) + ": " + name + " = " + std::to_string(value) +
                " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
}

// A non-negative decimal integer of at most 18 digits; false otherwise.
bool parse_count(std::string_view text, int64_t& out) {
  if (text.empty() || text.size() > 18) return false;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  out = value;
  return true;
}

// One "key=value" option starting at byte `at` of `spec`.
void apply_option(std::string_view spec, size_t at, std::string_view option, ArithSpec& out) {
  const size_t eq = option.find('=');
  if (eq == std::string_view::npos)
    fail_at(spec, at, "option '" + std::string(option) + "' has no '='");
  const std::string key(option.substr(0, eq));
  const std::string_view value = option.substr(eq + 1);
  const size_t value_at = at + eq + 1;
  const auto count = [&]() {
    int64_t n = 0;
    if (!parse_count(value, n)) {
      fail_at(spec, value_at,
              key + " expects a non-negative integer, got '" + std::string(value) + "'");
    }
    return n;
  };
  ArithOptions& o = out.options;
  if (key == "steps") {
    const size_t dash = value.find('-');
    int64_t lo = 0;
    int64_t hi = 0;
    const bool ok =
        dash == std::string_view::npos
            ? parse_count(value, lo) && parse_count(value, hi)
            : parse_count(value.substr(0, dash), lo) && parse_count(value.substr(dash + 1), hi);
    if (!ok) fail_at(spec, value_at, "steps expects N or LO-HI, got '" + std::string(value) + "'");
    if (lo > hi) fail_at(spec, value_at, "steps range '" + std::string(value) + "' is empty");
    o.min_steps = lo;
    o.max_steps = hi;
  } else if (key == "max_operand") {
    o.max_operand = count();
  } else if (key == "max_value") {
    o.max_value = count();
  } else if (key == "max_factor") {
    o.max_factor = count();
  } else if (key == "ops") {
    for (size_t i = 0; i < value.size(); ++i) {
      if (std::string_view("+-*/").find(value[i]) == std::string_view::npos) {
        fail_at(spec, value_at + i,
                std::string("ops: unknown operation '") + value[i] + "' (allowed: + - * /)");
      }
    }
    o.ops = std::string(value);
  } else if (key == "negatives") {
    if (value == "true" || value == "1") {
      o.allow_negative = true;
    } else if (value == "false" || value == "0") {
      o.allow_negative = false;
    } else {
      fail_at(spec, value_at, "negatives expects true or false, got '" + std::string(value) + "'");
    }
  } else if (key == "templates") {
    o.templates = count();
  } else if (key == "names") {
    o.names = count();
  } else if (key == "items") {
    o.items = count();
  } else if (key == "seed") {
    out.seed = static_cast<uint64_t>(count());
  } else if (key == "size") {
    out.size = count();
  } else {
    fail_at(spec, at, "unknown option '" + key + "' (known: " + std::string(kKnown) + ")");
  }
}

}  // namespace

bool operator==(const ArithOptions& a, const ArithOptions& b) {
  return a.min_steps == b.min_steps && a.max_steps == b.max_steps &&
         a.max_operand == b.max_operand && a.max_value == b.max_value &&
         a.max_factor == b.max_factor && a.ops == b.ops && a.allow_negative == b.allow_negative &&
         a.templates == b.templates && a.names == b.names && a.items == b.items;
}

bool operator==(const ArithSpec& a, const ArithSpec& b) {
  return a.options == b.options && a.seed == b.seed && a.size == b.size;
}

void validate_arith_options(const ArithOptions& o, std::string_view context) {
  check_range(context, "min_steps", o.min_steps, 1, kMaxSteps);
  check_range(context, "max_steps", o.max_steps, o.min_steps, kMaxSteps);
  check_range(context, "max_operand", o.max_operand, 1, kMaxOperand);
  check_range(context, "max_value", o.max_value, o.max_operand, kMaxValue);
  check_range(context, "max_factor", o.max_factor, 2, kMaxOperand);
  check_range(context, "templates", o.templates, 1, static_cast<int64_t>(detail::kPhrasings));
  check_range(context, "names", o.names, 1, static_cast<int64_t>(detail::kPeople.size()));
  check_range(context, "items", o.items, 1, static_cast<int64_t>(detail::kItems.size()));
  if (o.ops.empty()) throw Error(std::string(context) + ": ops is empty");
  for (char c : o.ops) {
    if (std::string_view("+-*/").find(c) == std::string_view::npos) {
      throw Error(std::string(context) + ": ops has unknown operation '" + c + "'");
    }
  }
}

ArithSpec parse_arith_spec(std::string_view spec) {
  ArithSpec out;
  if (spec.substr(0, kPrefix.size()) != kPrefix)
    fail_at(spec, 0, "expected it to start with 'builtin:arith'");
  if (spec.size() > kPrefix.size()) {
    if (spec[kPrefix.size()] != '?') {
      fail_at(spec, kPrefix.size(), "expected '?' before the options");
    }
    size_t at = kPrefix.size() + 1;
    for (;;) {
      const size_t amp = std::min(spec.find('&', at), spec.size());
      const std::string_view option = spec.substr(at, amp - at);
      if (option.empty()) fail_at(spec, at, "empty option");
      apply_option(spec, at, option, out);
      if (amp == spec.size()) break;
      at = amp + 1;
    }
  }
  const std::string context = "builtin:arith spec '" + std::string(spec) + "'";
  validate_arith_options(out.options, context);
  if (out.size < 1) throw Error(context + ": size must be at least 1");
  return out;
}

std::string format_arith_spec(const ArithSpec& spec) {
  const ArithOptions& o = spec.options;
  return std::string(kPrefix) + "?steps=" + std::to_string(o.min_steps) + "-" +
         std::to_string(o.max_steps) + "&max_operand=" + std::to_string(o.max_operand) +
         "&max_value=" + std::to_string(o.max_value) +
         "&max_factor=" + std::to_string(o.max_factor) + "&ops=" + o.ops +
         "&negatives=" + (o.allow_negative ? "true" : "false") +
         "&templates=" + std::to_string(o.templates) + "&names=" + std::to_string(o.names) +
         "&items=" + std::to_string(o.items) + "&seed=" + std::to_string(spec.seed) +
         "&size=" + std::to_string(spec.size);
}

}  // namespace qerl::tasks
