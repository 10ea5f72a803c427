// Checkpoints of a run folder. <out_dir>/checkpoints/step_<NNNNNN>/ holds
// "NNNNNN steps completed": one folder per stage replica (what
// Stage::save_state wrote there) and manifest.json. Stages save into
// step_<NNNNNN>.tmp/; the driver writes the manifest and renames the folder
// once every replica saved, so a complete checkpoint is exactly a step_<N>
// folder (no suffix) holding manifest.json, and a crash leaves only a .tmp.
// Plain C++ (no CAF): the driver, qerl-run and the tests share it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace qerl::runtime {

// manifest.json of a complete checkpoint.
struct CheckpointManifest {
  int64_t steps_completed = 0;  // steps 0 .. steps_completed-1 are in it
  std::string run;              // run.name
  int64_t weight_version = 0;   // newest weight version of the last step
  int64_t created_unix = 0;     // seconds since the epoch
};

struct CheckpointInfo {
  std::filesystem::path dir;  // <out_dir>/checkpoints/step_<N>
  int64_t steps_completed = 0;
};

// Whether step `step` (0-based) of a run of `total_steps` is followed by a
// checkpoint: after every `every` steps ((step + 1) % every == 0) and after
// the last step; never when every == 0.
bool checkpoint_due(int64_t step, int64_t every, int64_t total_steps);

std::filesystem::path checkpoints_folder(const std::filesystem::path& out_dir);  // <out_dir>/checkpoints
// <out_dir>/checkpoints/step_000006 for steps_completed = 6.
std::filesystem::path checkpoint_dir(const std::filesystem::path& out_dir, int64_t steps_completed);
// The same with ".tmp": where stages save before the checkpoint is complete.
std::filesystem::path partial_checkpoint_dir(const std::filesystem::path& out_dir, int64_t steps_completed);
// A stage replica's folder inside a checkpoint: "<stage>" for replica 0,
// "<stage>.r<replica>" for the others.
std::string stage_state_name(const std::string& stage, int replica);

// The complete checkpoints of a run folder, oldest first (none when the
// folder or its checkpoints/ do not exist).
std::vector<CheckpointInfo> list_checkpoints(const std::filesystem::path& out_dir);
// The newest complete checkpoint, its manifest checked; throws qerl::Error
// naming manifest.json when it does not parse or disagrees with the name.
std::optional<CheckpointInfo> latest_checkpoint(const std::filesystem::path& out_dir);
// Reads <checkpoint>/manifest.json; throws qerl::Error naming the file.
CheckpointManifest read_manifest(const std::filesystem::path& checkpoint);

// Makes partial_checkpoint_dir(out_dir, m.steps_completed) complete: syncs
// what the stages wrote, writes manifest.json (fsynced), renames the folder
// to checkpoint_dir() and fsyncs checkpoints/. Returns the final folder;
// throws qerl::Error (the .tmp stays, a complete checkpoint never half-exists).
std::filesystem::path commit_checkpoint(const std::filesystem::path& out_dir, const CheckpointManifest& m);
// Deletes the oldest complete checkpoints until at most `keep` remain
// (0 = keep all). Each is renamed to .tmp first, so an interrupted delete
// never leaves a complete-looking checkpoint. Returns the deleted folders.
std::vector<std::filesystem::path> prune_checkpoints(const std::filesystem::path& out_dir, int64_t keep);
// A folder clear_checkpoints_after deleted: `incomplete` for a .tmp or a
// step_<N> without manifest.json (an interrupted commit, a hand-made copy),
// else a complete checkpoint ahead of the start step.
struct RemovedCheckpoint {
  std::filesystem::path dir;
  bool incomplete = false;
};
// Before a run that starts at `start_step`: deletes every incomplete folder
// (.tmp, or step_<N> without a manifest: the run would fail when it reached
// step N) and every complete checkpoint with more than `start_step` steps (it
// belongs to a run that is being replaced). Returns the deleted folders.
std::vector<RemovedCheckpoint> clear_checkpoints_after(const std::filesystem::path& out_dir,
                                                       int64_t start_step);

// Rewrites metrics.jsonl (atomically) keeping the lines whose "step" is
// below `steps`, so a run resumed at `steps` appends the rest. A torn last
// line (no newline, not JSON) is dropped; any other bad line is an error
// naming file and line. A missing file is left missing. Returns lines kept.
size_t keep_metrics_before(const std::filesystem::path& metrics_file, int64_t steps);

}  // namespace qerl::runtime
