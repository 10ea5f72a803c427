// weight_sync_bench: bytes and time of one weight sync across a process
// boundary on the CPU path (issue 17): a WeightsUpdate travels as a
// PortMessage through CAF's network layer (loopback TCP) from this process
// to a forked receiver, which decodes it (checking every tensor) and acks.
// Time = request to ack (encode + transfer + decode), best and median of N.
//   weight_sync_bench --model assets/tiny-moe           the shipped model's weights (stored dtype)
//   weight_sync_bench --qwen15-moe-layer                one Qwen1.5-MoE-A2.7B decoder layer, bf16, random
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <torch/torch.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "actors/payload_wire.hpp"
#include "actors/payloads.hpp"
#include "models/io/safetensors.hpp"
#include "runtime/detail/stage_actor.hpp"
#include "runtime/wire.hpp"

namespace fs = std::filesystem;
using namespace qerl;
using runtime::detail::PortMessage;
using runtime::detail::port_atom;

namespace {

// Qwen1.5-MoE-A2.7B (config.json of the HF release): hidden 2048, 16 heads
// (no GQA), 60 experts of intermediate 1408, a shared expert of 5632.
actors::TensorMap qwen15_moe_layer() {
  constexpr int64_t hidden = 2048, experts = 60, expert_ffn = 1408, shared_ffn = 5632;
  torch::manual_seed(17);
  auto bf16 = [](std::vector<int64_t> shape) { return torch::randn(shape).to(torch::kBFloat16); };
  actors::TensorMap t;
  const std::string p = "model.layers.0.";
  for (const char* m : {"q_proj", "k_proj", "v_proj", "o_proj"}) t[p + "self_attn." + m + ".weight"] = bf16({hidden, hidden});
  for (const char* m : {"q_proj", "k_proj", "v_proj"}) t[p + "self_attn." + m + ".bias"] = bf16({hidden});
  for (int64_t e = 0; e < experts; ++e) {
    const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
    t[q + "gate_proj.weight"] = bf16({expert_ffn, hidden});
    t[q + "up_proj.weight"] = bf16({expert_ffn, hidden});
    t[q + "down_proj.weight"] = bf16({hidden, expert_ffn});
  }
  t[p + "mlp.gate.weight"] = bf16({experts, hidden});
  t[p + "mlp.shared_expert.gate_proj.weight"] = bf16({shared_ffn, hidden});
  t[p + "mlp.shared_expert.up_proj.weight"] = bf16({shared_ffn, hidden});
  t[p + "mlp.shared_expert.down_proj.weight"] = bf16({hidden, shared_ffn});
  t[p + "mlp.shared_expert_gate.weight"] = bf16({1, hidden});
  t[p + "input_layernorm.weight"] = bf16({hidden});
  t[p + "post_attention_layernorm.weight"] = bf16({hidden});
  return t;
}

actors::TensorMap model_weights(const fs::path& dir) {
  actors::TensorMap all;
  for (const auto& entry : fs::directory_iterator(dir))
    if (entry.path().extension() == ".safetensors")
      for (auto& [name, tensor] : models::read_safetensors(entry.path()).tensors) all[name] = tensor;
  return all;
}

caf::behavior receiver(caf::event_based_actor*) {
  return {[](port_atom, const PortMessage& msg) -> int64_t {
    auto update = std::dynamic_pointer_cast<const actors::WeightsUpdate>(msg.payload);
    return update && update->tensors ? static_cast<int64_t>(update->tensors->size()) : -1;
  }};
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  actors::TensorMap tensors;
  std::string what;
  if (mode == "--model" && argc > 2) tensors = model_weights(argv[2]), what = std::string("model ") + argv[2];
  else if (mode == "--qwen15-moe-layer") tensors = qwen15_moe_layer(), what = "one Qwen1.5-MoE-A2.7B decoder layer (bf16)";
  else {
    std::fprintf(stderr, "usage: weight_sync_bench --model DIR | --qwen15-moe-layer\n");
    return 2;
  }
  actors::register_payload_codecs();
  auto update = std::make_shared<actors::WeightsUpdate>();
  update->version = 1;
  update->tensors = std::make_shared<const actors::TensorMap>(std::move(tensors));
  int64_t params = 0, tensor_bytes = 0;
  for (const auto& [name, t] : *update->tensors) params += t.numel(), tensor_bytes += t.numel() * t.element_size();
  const auto t0 = std::chrono::steady_clock::now();
  const size_t wire_bytes = runtime::wire::encode_payload(*update).size();
  const double encode_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  int fds[2];
  if (::pipe(fds) != 0) return 1;
  const pid_t child = ::fork();
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  runtime::detail::add_message_types(cfg);
  if (child == 0) {  // the receiving process
    ::close(fds[0]);
    caf::actor_system system{cfg};
    auto r = system.spawn(receiver);
    auto port = system.middleman().publish(r, 0, "127.0.0.1");
    const std::string line = std::to_string(port ? *port : 0) + "\n";
    (void)!::write(fds[1], line.data(), line.size());
    ::close(fds[1]);
    system.await_all_actors_done();
    return 0;
  }
  ::close(fds[1]);
  char buf[16] = {};
  (void)!::read(fds[0], buf, sizeof(buf) - 1);
  const int port = std::atoi(buf);
  caf::actor_system system{cfg};
  auto remote = system.middleman().remote_actor("127.0.0.1", static_cast<uint16_t>(port));
  if (!remote) {
    std::fprintf(stderr, "cannot reach the receiver: %s\n", system.render(remote.error()).c_str());
    return 1;
  }
  std::vector<double> times;
  caf::scoped_actor self{system};
  for (int i = 0; i < 5; ++i) {
    const auto start = std::chrono::steady_clock::now();
    int64_t received = -2;
    self->request(*remote, std::chrono::minutes(10), port_atom::value,
                  PortMessage{"weights", 0, i, 1, update, {}})
        .receive([&](int64_t n) { received = n; }, [&](caf::error& e) { std::fprintf(stderr, "%s\n", system.render(e).c_str()); });
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    if (received != static_cast<int64_t>(update->tensors->size())) return 1;
  }
  std::sort(times.begin(), times.end());
  std::printf("%s: %zu tensors, %.1f M parameters, %.1f MB of tensor bytes, %.1f MB on the wire "
              "(encode alone %.3f s); one sync across processes (encode + loopback TCP + checked decode): "
              "best %.3f s, median %.3f s of %zu (%.0f MB/s)\n",
              what.c_str(), update->tensors->size(), params / 1e6, tensor_bytes / 1e6, wire_bytes / 1e6, encode_s,
              times.front(), times[times.size() / 2], times.size(), wire_bytes / 1e6 / times[times.size() / 2]);
  self->send_exit(*remote, caf::exit_reason::user_shutdown);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return 0;
}
