// The coordinator <-> worker protocol (issue 17). A worker publishes one
// actor on its listening port; the coordinator connects through CAF's
// middleman and must first be accepted:
//
//   coordinator -> worker  (hello_atom, Hello)                  -> std::string verdict
//                          "" = accepted, else one line naming both sides
//   coordinator -> worker  (spawn_atom, int node, int replica, caf::actor driver)
//                          -> caf::actor (the stage actor, in the worker)
//   coordinator -> worker  (bye_atom)                           the run is over
//
// Afterwards the stage actors talk to each other and to the driver with the
// messages of runtime/detail/stage_actor.hpp, wherever they live. A worker
// serves one coordinator; it exits when that coordinator is gone.
#pragma once

#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace qerl::runtime::detail {

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using spawn_atom = caf::atom_constant<caf::atom("spawnstg")>;
using bye_atom = caf::atom_constant<caf::atom("bye")>;

struct Hello {
  std::string build_id;       // runtime::build_id() of the coordinator
  std::string secret_proof;   // runtime::secret_proof(secret)
  std::string pipeline_hash;  // pipeline_hash(pipeline_text)
  std::string pipeline_text;  // the resolved pipeline (resolved.toml)
  std::string pipeline_version;  // pipeline_hash of it without run.out_dir (what a worker given the file computes)
  std::vector<std::string> plugins;  // to load before parsing it
  int worker_index = 0;       // which worker of cluster.workers this is (1-based)
  std::string out_dir;        // the run folder (shared file system)
  int64_t start_step = 0;     // resuming: the first step
  std::string resume_from;    // resuming: the checkpoint folder
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, Hello& x) {
  return f(caf::meta::type_name("qerl.hello"), x.build_id, x.secret_proof, x.pipeline_hash, x.pipeline_text,
           x.pipeline_version, x.plugins, x.worker_index, x.out_dir, x.start_step, x.resume_from);
}

// A stable digest of the resolved pipeline text (FNV-1a 64, hex), so that
// both sides can name the version they hold.
std::string pipeline_hash(const std::string& pipeline_text);

// What a worker checks before accepting a coordinator: the same build, the
// run's secret, and (when the worker was started with a pipeline file) the
// same pipeline. "" = accepted; else one line naming both versions.
struct WorkerIdentity {
  std::string build_id;
  std::string secret_proof;
  std::string pipeline_version;  // "" = accept any pipeline
};
std::string check_hello(const Hello& hello, const WorkerIdentity& self);

}  // namespace qerl::runtime::detail
