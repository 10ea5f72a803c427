// Configuration of the builtin:arith task: difficulty knobs (ArithOptions) and
// which problem set (seed, size), parsed from a data.source string such as
// "builtin:arith?steps=2-4&max_operand=50&ops=+-*". Unknown or malformed
// options are a qerl::Error naming the spec and the byte offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace qerl::tasks {

struct ArithOptions {
  int64_t min_steps = 2;  // lines of the worked solution, inclusive range
  int64_t max_steps = 4;
  int64_t max_operand = 20;     // every number in a question lies in [1, max_operand]
  int64_t max_value = 500;      // every running total lies in [-max_value, max_value]
  int64_t max_factor = 5;       // "N times as many" and "into N equal groups": N <= this
  std::string ops = "+-*/";     // allowed operations; '/' is always exact
  bool allow_negative = false;  // running totals (and the answer) may go below zero
  int64_t templates = 3;        // phrasings used per kind of sentence, 1..3
  int64_t names = 8;            // people who may appear, 1..8
  int64_t items = 8;            // kinds of things counted, 1..8

  bool allows(char op) const { return ops.find(op) != std::string::npos; }
};

struct ArithSpec {
  ArithOptions options;
  uint64_t seed = 0;      // which problem set; problem i of a seed never changes
  int64_t size = 100000;  // the (conceptually infinite) set, cut to this many
};

bool operator==(const ArithOptions& a, const ArithOptions& b);
bool operator==(const ArithSpec& a, const ArithSpec& b);

// Throws qerl::Error("<context>: <option> ...") for an out-of-range knob.
void validate_arith_options(const ArithOptions& options, std::string_view context);

// "builtin:arith" alone gives the defaults. Options after '?', joined by '&':
//   steps=N or steps=LO-HI, max_operand=N, max_value=N, max_factor=N,
//   ops=<chars of +-*/>,
//   negatives=true|false, templates=N, names=N, items=N, seed=N, size=N.
// Numbers have at most 18 digits, so a larger seed does not round-trip.
ArithSpec parse_arith_spec(std::string_view spec);

// The spec string that parse_arith_spec turns back into `spec` (all options).
std::string format_arith_spec(const ArithSpec& spec);

}  // namespace qerl::tasks
