// Checkpoint folders: naming, listing, commit (sync, manifest, rename),
// pruning, and trimming metrics.jsonl for a resumed run. Renames are the
// only step that makes a checkpoint complete or incomplete.
#include "runtime/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <system_error>

#include "common/atomic_file.hpp"
#include "common/error.hpp"

namespace qerl::runtime {
namespace fs = std::filesystem;
namespace {

constexpr const char* manifest_name = "manifest.json";
constexpr const char* partial_suffix = ".tmp";

// "step_000006" -> 6; nullopt for any other name (".tmp" included).
std::optional<int64_t> parse_checkpoint_name(const std::string& name) {
  const std::string prefix = "step_";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.size() > prefix.size() + 18)
    return std::nullopt;
  for (size_t i = prefix.size(); i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return std::nullopt;
  return std::stoll(name.substr(prefix.size()));
}

bool is_partial_name(const std::string& name) {
  const std::string suffix = partial_suffix;
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
         parse_checkpoint_name(name.substr(0, name.size() - suffix.size())).has_value();
}

// fsync of one file or folder; best effort for folders (not every
// filesystem allows it), an error for files.
void sync_path(const fs::path& path, bool is_dir) {
  const int fd = ::open(path.c_str(), (is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
  if (fd < 0) {
    if (is_dir) return;
    throw Error("cannot open '" + path.string() + "' to sync it");
  }
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0 && !is_dir) throw Error("cannot sync '" + path.string() + "' to disk");
}

// Everything the stages wrote reaches the disk before the manifest does.
void sync_tree(const fs::path& root) {
  for (const auto& entry : fs::recursive_directory_iterator(root)) {
    if (entry.is_regular_file()) sync_path(entry.path(), /*is_dir=*/false);
    else if (entry.is_directory()) sync_path(entry.path(), /*is_dir=*/true);
  }
  sync_path(root, /*is_dir=*/true);
}

// Removes a folder so that it never looks complete meanwhile: rename to .tmp, then delete.
void remove_checkpoint(const fs::path& dir) {
  fs::path doomed = dir;
  if (!is_partial_name(dir.filename().string())) {
    doomed += partial_suffix;
    fs::remove_all(doomed);
    fs::rename(dir, doomed);
  }
  fs::remove_all(doomed);
}

}  // namespace

bool checkpoint_due(int64_t step, int64_t every, int64_t total_steps) {
  return every > 0 && ((step + 1) % every == 0 || step + 1 == total_steps);
}

fs::path checkpoints_folder(const fs::path& out_dir) { return out_dir / "checkpoints"; }

fs::path checkpoint_dir(const fs::path& out_dir, int64_t steps_completed) {
  std::string digits = std::to_string(steps_completed);
  if (digits.size() < 6) digits.insert(0, 6 - digits.size(), '0');
  return checkpoints_folder(out_dir) / ("step_" + digits);
}

fs::path partial_checkpoint_dir(const fs::path& out_dir, int64_t steps_completed) {
  fs::path dir = checkpoint_dir(out_dir, steps_completed);
  dir += partial_suffix;
  return dir;
}

std::string stage_state_name(const std::string& stage, int replica) {
  return replica == 0 ? stage : stage + ".r" + std::to_string(replica);
}

std::vector<CheckpointInfo> list_checkpoints(const fs::path& out_dir) {
  std::vector<CheckpointInfo> out;
  std::error_code ec;
  const fs::path root = checkpoints_folder(out_dir);
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto steps = parse_checkpoint_name(entry.path().filename().string());
    if (steps && entry.is_directory() && fs::is_regular_file(entry.path() / manifest_name, ec))
      out.push_back(CheckpointInfo{entry.path(), *steps});
  }
  std::sort(out.begin(), out.end(), [](const CheckpointInfo& a, const CheckpointInfo& b) {
    return a.steps_completed < b.steps_completed;
  });
  return out;
}

CheckpointManifest read_manifest(const fs::path& checkpoint) {
  const fs::path file = checkpoint / manifest_name;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("cannot read checkpoint manifest '" + file.string() + "'");
  try {
    const auto j = nlohmann::json::parse(in);
    CheckpointManifest m;
    m.steps_completed = j.at("steps_completed").get<int64_t>();
    m.run = j.at("run").get<std::string>();
    m.weight_version = j.at("weight_version").get<int64_t>();
    m.created_unix = j.at("created_unix").get<int64_t>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error("checkpoint manifest '" + file.string() + "' is corrupt: " + e.what());
  }
}

std::optional<CheckpointInfo> latest_checkpoint(const fs::path& out_dir) {
  const auto all = list_checkpoints(out_dir);
  if (all.empty()) return std::nullopt;
  const CheckpointInfo& newest = all.back();
  const CheckpointManifest m = read_manifest(newest.dir);
  if (m.steps_completed != newest.steps_completed)
    throw Error("checkpoint manifest '" + (newest.dir / manifest_name).string() + "' says " +
                std::to_string(m.steps_completed) + " steps completed, but the folder is named for " +
                std::to_string(newest.steps_completed));
  return newest;
}

fs::path commit_checkpoint(const fs::path& out_dir, const CheckpointManifest& m) {
  const fs::path partial = partial_checkpoint_dir(out_dir, m.steps_completed);
  const fs::path complete = checkpoint_dir(out_dir, m.steps_completed);
  try {
    fs::create_directories(partial);
    sync_tree(partial);
    nlohmann::ordered_json j;
    j["steps_completed"] = m.steps_completed;
    j["run"] = m.run;
    j["weight_version"] = m.weight_version;
    j["created_unix"] = m.created_unix;
    write_file_atomically(partial / manifest_name, j.dump(2) + "\n");  // fsyncs file and folder
    if (fs::exists(complete))
      throw Error("'" + complete.string() + "' already exists");
    fs::rename(partial, complete);
    sync_path(checkpoints_folder(out_dir), /*is_dir=*/true);
  } catch (const fs::filesystem_error& e) {
    throw Error("cannot write checkpoint '" + complete.string() + "': " + e.code().message());
  } catch (const Error& e) {
    throw Error("cannot write checkpoint '" + complete.string() + "': " + e.what());
  }
  return complete;
}

std::vector<fs::path> prune_checkpoints(const fs::path& out_dir, int64_t keep) {
  std::vector<fs::path> removed;
  if (keep <= 0) return removed;
  const auto all = list_checkpoints(out_dir);
  for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
    remove_checkpoint(all[i].dir);
    removed.push_back(all[i].dir);
  }
  return removed;
}

std::vector<RemovedCheckpoint> clear_checkpoints_after(const fs::path& out_dir, int64_t start_step) {
  std::vector<RemovedCheckpoint> doomed;
  std::error_code ec;
  const fs::path root = checkpoints_folder(out_dir);
  if (!fs::is_directory(root, ec)) return doomed;
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    const bool unfinished = parse_checkpoint_name(name) && entry.is_directory() &&
                            !fs::is_regular_file(entry.path() / manifest_name, ec);
    if (is_partial_name(name) || unfinished) doomed.push_back({entry.path(), /*incomplete=*/true});
  }
  for (const CheckpointInfo& c : list_checkpoints(out_dir))
    if (c.steps_completed > start_step) doomed.push_back({c.dir, /*incomplete=*/false});
  std::sort(doomed.begin(), doomed.end(),
            [](const RemovedCheckpoint& a, const RemovedCheckpoint& b) { return a.dir < b.dir; });
  for (const RemovedCheckpoint& r : doomed) remove_checkpoint(r.dir);
  return doomed;
}

size_t keep_metrics_before(const fs::path& metrics_file, int64_t steps) {
  std::error_code ec;
  if (!fs::exists(metrics_file, ec)) return 0;
  std::ifstream in(metrics_file, std::ios::binary);
  if (!in) throw Error("cannot read '" + metrics_file.string() + "'");
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string kept;
  size_t kept_lines = 0, line_no = 0;
  for (size_t start = 0; start < all.size();) {
    size_t end = all.find('\n', start);
    const bool terminated = end != std::string::npos;
    if (!terminated) end = all.size();
    const std::string line = all.substr(start, end - start);
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() && !terminated) break;  // torn last line of a crashed run
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number_integer())
      throw Error(metrics_file.string() + ":" + std::to_string(line_no) +
                  ": not a metrics line (a JSON object with an integer \"step\")");
    if (j["step"].get<int64_t>() >= steps) continue;
    kept += line + "\n";
    ++kept_lines;
  }
  write_file_atomically(metrics_file, kept);
  return kept_lines;
}

}  // namespace qerl::runtime
