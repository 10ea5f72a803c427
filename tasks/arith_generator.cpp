// builtin:arith generation. A story starts with "{N} has v items"; each event
// (add, sub, groups, mul, div) is drawn uniformly among those that keep the
// running total within the knobs, and adds one sentence and one or two
// solution lines; the question asks for the final total. A draft that gets
// stuck (no event fits) is redrawn from the same counter-based stream.
#include "tasks/arith_generator.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "tasks/counter_rng.hpp"
#include "tasks/detail/arith_vocabulary.hpp"

namespace qerl::tasks {
namespace {

using detail::Sentence;

constexpr int kMaxAttempts = 200;

struct Story {
  const detail::Person* person;
  std::string friend_name;
  const detail::Noun* item;
  const detail::Noun* container;
};

std::string count_noun(int64_t n, const detail::Noun& noun) {
  return std::to_string(n) + " " + (n == 1 ? noun.singular : noun.plural);
}

std::string render_token(const std::string& token, const Story& s, int64_t a, int64_t b) {
  const bool female = s.person->female;
  if (token == "N") return s.person->name;
  if (token == "F") return s.friend_name;
  if (token == "he") return female ? "she" : "he";
  if (token == "him") return female ? "her" : "him";
  if (token == "his") return female ? "her" : "his";
  if (token == "self") return female ? "herself" : "himself";
  if (token == "items") return s.item->plural;
  if (token == "bags") return s.container->plural;
  if (token == "bag") return s.container->singular;
  if (token == "a") return std::to_string(a);
  if (token == "b") return std::to_string(b);
  if (token == "a bags") return count_noun(a, *s.container);
  if (token == "b items") return count_noun(b, *s.item);
  throw Error("tasks/detail/arith_vocabulary.hpp: unknown placeholder {" + token + "}");
}

std::string render(const char* phrasing, const Story& s, int64_t a, int64_t b) {
  std::string out;
  for (const char* p = phrasing; *p != '\0'; ++p) {
    if (*p != '{') {
      out += *p;
      continue;
    }
    const char* close = p;
    while (*close != '}') ++close;
    out += render_token(std::string(p + 1, close), s, a, b);
    p = close;
  }
  out[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(out[0])));
  return out;
}

std::string step_line(int64_t a, char op, int64_t b, int64_t c) {
  return std::to_string(a) + " " + op + " " + std::to_string(b) + " = " + std::to_string(c);
}

class Drafter {
 public:
  Drafter(const ArithOptions& o, CounterRng& rng) : o_(o), rng_(rng) {}

  std::optional<Problem> draft() {
    pick_story();
    const int64_t steps = rng_.in_range(o_.min_steps, o_.max_steps);
    value_ = rng_.in_range(1, o_.max_operand);
    sentences_ = {say(Sentence::start, 0, value_)};
    lines_.clear();
    for (int64_t remaining = steps; remaining > 0; remaining = steps - lines_size()) {
      std::vector<Sentence> options;
      for (Sentence kind : {Sentence::add, Sentence::sub, Sentence::add_groups,
                            Sentence::sub_groups, Sentence::mul, Sentence::div}) {
        if (fits(kind, remaining)) options.push_back(kind);
      }
      if (options.empty()) return std::nullopt;
      apply(options[rng_.below(options.size())]);
    }
    sentences_.push_back(say(Sentence::question, 0, 0));
    Problem p;
    for (const std::string& s : sentences_) p.question += (p.question.empty() ? "" : " ") + s;
    for (const std::string& l : lines_) p.answer_text += l + "\n";
    p.answer_text += "#### " + std::to_string(value_);
    p.answer = value_;
    return p;
  }

 private:
  int64_t lines_size() const { return static_cast<int64_t>(lines_.size()); }
  int64_t room_up() const { return o_.max_value - value_; }
  int64_t room_down() const { return o_.allow_negative ? value_ + o_.max_value : value_ - 1; }
  // Largest group count a (each group of b >= 2) whose product fits in `room`.
  int64_t group_hi(int64_t room) const { return std::min(o_.max_operand, room / 2); }
  // "N times as many" / "into N equal groups": N in [2, factor_hi()].
  int64_t factor_hi() const { return std::min(o_.max_operand, o_.max_factor); }
  int64_t mul_hi() const { return std::min(factor_hi(), o_.max_value / std::abs(value_)); }

  std::vector<int64_t> divisors() const {
    std::vector<int64_t> out;
    const int64_t v = std::abs(value_);
    for (int64_t d = 2; d <= std::min(factor_hi(), v); ++d) {
      if (v % d == 0) out.push_back(d);
    }
    return out;
  }

  bool fits(Sentence kind, int64_t remaining) const {
    switch (kind) {
      case Sentence::add:
        return o_.allows('+') && std::min(o_.max_operand, room_up()) >= 1;
      case Sentence::sub:
        return o_.allows('-') && std::min(o_.max_operand, room_down()) >= 1;
      case Sentence::add_groups:
        return o_.allows('+') && o_.allows('*') && remaining >= 2 && group_hi(room_up()) >= 2;
      case Sentence::sub_groups:
        return o_.allows('-') && o_.allows('*') && remaining >= 2 && group_hi(room_down()) >= 2;
      case Sentence::mul:
        return o_.allows('*') && value_ != 0 && mul_hi() >= 2;
      case Sentence::div:
        return o_.allows('/') && value_ != 0 && !divisors().empty();
      default:
        return false;
    }
  }

  void apply(Sentence kind) {
    switch (kind) {
      case Sentence::add:
        return change(kind, '+', 0, rng_.in_range(1, std::min(o_.max_operand, room_up())));
      case Sentence::sub:
        return change(kind, '-', 0, rng_.in_range(1, std::min(o_.max_operand, room_down())));
      case Sentence::add_groups:
        return groups(kind, '+', room_up());
      case Sentence::sub_groups:
        return groups(kind, '-', room_down());
      case Sentence::mul:
        return change(kind, '*', rng_.in_range(2, mul_hi()), 0);
      case Sentence::div: {
        const std::vector<int64_t> d = divisors();
        return change(kind, '/', d[rng_.below(d.size())], 0);
      }
      default:
        return;
    }
  }

  // One line "value op n = result"; n is `a` for * and /, `b` for + and -.
  void change(Sentence kind, char op, int64_t a, int64_t b) {
    const int64_t n = (op == '*' || op == '/') ? a : b;
    const int64_t next = op == '+'   ? value_ + n
                         : op == '-' ? value_ - n
                         : op == '*' ? value_ * n
                                     : value_ / n;
    sentences_.push_back(say(kind, a, b));
    lines_.push_back(step_line(value_, op, n, next));
    value_ = next;
  }

  // Two lines: "a * b = p", then "value op p = result".
  void groups(Sentence kind, char op, int64_t room) {
    const int64_t a = rng_.in_range(2, group_hi(room));
    const int64_t b = rng_.in_range(2, std::min(o_.max_operand, room / a));
    const int64_t p = a * b;
    const int64_t next = op == '+' ? value_ + p : value_ - p;
    sentences_.push_back(say(kind, a, b));
    lines_.push_back(step_line(a, '*', b, p));
    lines_.push_back(step_line(value_, op, p, next));
    value_ = next;
  }

  std::string say(Sentence kind, int64_t a, int64_t b) {
    const uint64_t phrasing = rng_.below(static_cast<uint64_t>(o_.templates));
    return render(detail::kPhrasingTable[static_cast<size_t>(kind)][phrasing], story_, a, b);
  }

  void pick_story() {
    const auto names = static_cast<uint64_t>(o_.names);
    const uint64_t who = rng_.below(names);
    story_.person = &detail::kPeople[who];
    story_.friend_name =
        names < 2 ? "a friend" : detail::kPeople[(who + 1 + rng_.below(names - 1)) % names].name;
    story_.item = &detail::kItems[rng_.below(static_cast<uint64_t>(o_.items))];
    story_.container = &detail::kContainers[rng_.below(detail::kContainers.size())];
  }

  const ArithOptions& o_;
  CounterRng& rng_;
  Story story_{};
  int64_t value_ = 0;
  std::vector<std::string> sentences_;
  std::vector<std::string> lines_;
};

}  // namespace

Problem generate_arith_problem(const ArithOptions& options, uint64_t seed, int64_t index) {
  validate_arith_options(options, "builtin:arith options");
  if (index < 0)
    throw Error("builtin:arith: problem index " + std::to_string(index) + " is negative");
  CounterRng rng(seed, static_cast<uint64_t>(index));
  Drafter drafter(options, rng);
  for (int attempt = 0; attempt < kMaxAttempts; ++attempt) {
    if (std::optional<Problem> p = drafter.draft()) return *std::move(p);
  }
  throw Error("builtin:arith: no problem " + std::to_string(index) + " of seed " +
              std::to_string(seed) + " fits the options after " + std::to_string(kMaxAttempts) +
              " tries (too many steps for the allowed ops and ranges?)");
}

}  // namespace qerl::tasks
