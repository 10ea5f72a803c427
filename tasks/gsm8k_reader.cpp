// GSM8K JSONL parsing with nlohmann::json, one line at a time so that every
// error can say which line it is on. The final answer is read with the same
// parser that scores model responses (answer.hpp), so the two never disagree.
#include "tasks/gsm8k_reader.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.hpp"
#include "tasks/answer.hpp"

namespace qerl::tasks {
namespace {

bool is_blank(const std::string& line) {
  return line.find_first_not_of(" \t\r") == std::string::npos;
}

std::string string_field(const nlohmann::json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw Error(where + ": missing field \"" + key + "\"");
  if (!it->is_string()) throw Error(where + ": field \"" + key + "\" is not a string");
  std::string value = it->get<std::string>();
  if (is_blank(value)) throw Error(where + ": field \"" + key + "\" is empty");
  return value;
}

Problem parse_line(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() is "[json.exception.parse_error.101] parse error at line 1,
    // column C: <detail>"; keep only the detail, the position is ours.
    const std::string what = e.what();
    const size_t cut = what.find(": ", what.find("column"));
    throw Error(where + ": bad JSON at byte " + std::to_string(e.byte) + ": " +
                (cut == std::string::npos ? what : what.substr(cut + 2)));
  }
  if (!j.is_object())
    throw Error(where + ": expected a JSON object with \"question\" and \"answer\"");
  Problem p;
  p.question = string_field(j, "question", where);
  p.answer_text = string_field(j, "answer", where);
  const size_t marker = p.answer_text.rfind("####");
  if (marker == std::string::npos) throw Error(where + ": answer has no final line \"#### N\"");
  const std::optional<int64_t> answer = extract_final_answer(p.answer_text);
  if (!answer) {
    throw Error(where + ": answer after \"####\" is not an integer: \"" +
                p.answer_text.substr(marker, 40) + "\"");
  }
  p.answer = *answer;
  return p;
}

}  // namespace

std::vector<Problem> parse_gsm8k_jsonl(std::istream& in, const std::string& origin) {
  std::vector<Problem> problems;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (number == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (is_blank(line)) continue;
    problems.push_back(parse_line(line, origin + ":" + std::to_string(number)));
  }
  if (in.bad()) throw Error(origin + ": read error");
  return problems;
}

std::vector<Problem> read_gsm8k_jsonl(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw Error(path + ": GSM8K file not found (expected a .jsonl file)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open GSM8K file");
  return parse_gsm8k_jsonl(in, path);
}

}  // namespace qerl::tasks
