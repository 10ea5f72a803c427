// Bulk tensors beside the message (see bulk_transfer.hpp): the sending
// end's links (one thread each, transfers in order) and the receiving
// end's (transfers taken by sequence number).
#include "actors/bulk_transfer.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "actors/stage_log.hpp"
#include "common/error.hpp"

namespace qerl::actors::bulk {
namespace {

constexpr size_t max_kind_name = 32;
constexpr size_t max_bootstrap = 4096;
// A ticket further ahead of its link than this is refused (not waited for).
constexpr uint64_t max_seq_ahead = 1024;
// Links one process receives on (a ticket naming more is refused).
constexpr size_t max_receive_links = 64;

std::string link_name(uint64_t link, uint64_t seq) {
  return "bulk link " + std::to_string(link) + ", transfer " + std::to_string(seq);
}

// One destination's link: transfers queue here and a thread of its own
// joins the link, then sends them in order.
class SendLink {
 public:
  explicit SendLink(std::shared_ptr<LinkKind> kind) : kind_(std::move(kind)) {
    std::random_device random;
    id_ = (static_cast<uint64_t>(random()) << 32) ^ random();
    bootstrap_ = kind_->bootstrap();
    std::thread([this] { loop(); }).detach();  // lives as long as the process
  }

  Ticket push(std::vector<torch::Tensor> tensors, std::shared_ptr<void> ready) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!error_.empty()) throw Error(link_name(id_, seq_) + ": the link failed earlier: " + error_);
    Ticket ticket{kind_->name(), id_, seq_, seq_ == 0 ? bootstrap_ : std::vector<uint8_t>()};
    ++seq_;
    jobs_.push_back({std::move(tensors), std::move(ready), ticket.seq});
    wake_.notify_one();
    return ticket;
  }

 private:
  struct Job {
    std::vector<torch::Tensor> tensors;
    std::shared_ptr<void> ready;
    uint64_t seq = 0;
  };

  void loop() {
    std::unique_ptr<Link> link;
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return !jobs_.empty(); });
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        if (!link) {
          const torch::Device device = job.tensors.empty() ? torch::Device(torch::kCPU) : job.tensors[0].device();
          link = kind_->join(bootstrap_, /*rank=*/0, device);
        }
        link->send(job.tensors, job.ready);
      } catch (const std::exception& e) {
        const std::lock_guard<std::mutex> lock(mutex_);
        kept_ = std::move(job.tensors);  // the link may still be reading them
        error_ = e.what();
        log_warn(nullptr, link_name(id_, job.seq) + ": sending failed: " + error_);
        jobs_.clear();
        return;  // later push() calls throw with this error
      }
    }
  }

  std::shared_ptr<LinkKind> kind_;
  uint64_t id_ = 0;
  std::vector<uint8_t> bootstrap_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Job> jobs_;
  uint64_t seq_ = 0;
  std::string error_;
  std::vector<torch::Tensor> kept_;
};

// One link this process receives on: whose turn it is, and the link once
// transfer 0 joined it.
struct ReceiveLink {
  std::mutex mutex;
  std::condition_variable turn;
  uint64_t next = 0;
  std::unique_ptr<Link> link;
  std::string error;  // set: broken for good
  std::vector<torch::Tensor> kept;  // of a failed transfer: the link may still be writing them
};

struct State {
  std::mutex mutex;
  std::shared_ptr<LinkKind> kind;
  bool kind_set = false;
  std::optional<torch::Device> device;
  double receive_timeout_s = 120;
  std::map<std::string, std::unique_ptr<SendLink>> sending;  // by destination
  std::map<uint64_t, std::unique_ptr<ReceiveLink>> receiving;  // by link id
};

State& state() {
  static State* s = new State;  // never destroyed: link threads may outlive main()
  return *s;
}

}  // namespace

Link::~Link() = default;
LinkKind::~LinkKind() = default;

void write_ticket(runtime::wire::Writer& w, const Ticket& ticket) {
  w.str(ticket.link_kind);
  w.u64(ticket.link);
  w.u64(ticket.seq);
  w.u8s(ticket.bootstrap);
}

Ticket read_ticket(runtime::wire::Reader& r) {
  Ticket t;
  t.link_kind = r.str("bulk link kind");
  if (t.link_kind.empty() || t.link_kind.size() > max_kind_name) r.fail("bulk link kind", "bad name length");
  t.link = r.u64("bulk link");
  t.seq = r.u64("bulk transfer");
  t.bootstrap = r.u8s("bulk link bootstrap");
  if (t.bootstrap.size() > max_bootstrap) r.fail("bulk link bootstrap", "longer than " + std::to_string(max_bootstrap));
  if ((t.seq == 0) != !t.bootstrap.empty())
    r.fail("bulk link bootstrap", "expected on the first transfer of a link and only there");
  return t;
}

void set_link_kind(std::shared_ptr<LinkKind> kind) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  s.kind = std::move(kind);
  s.kind_set = true;
  // Links of the previous kind stop getting transfers (tests switch kinds
  // between cases); they are leaked, not destroyed, as their threads may
  // still be sending.
  for (auto& [destination, link] : s.sending) link.release();
  s.sending.clear();
}

std::shared_ptr<LinkKind> link_kind() {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.kind_set) s.kind = nccl_link_kind(), s.kind_set = true;
  return s.kind;
}

bool available() { return link_kind() != nullptr; }

void note_device(torch::Device device) {
  if (!device.is_cuda()) return;
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.device) s.device = device;
}

std::optional<torch::Device> noted_device() {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  return s.device;
}

std::shared_ptr<void> mark_ready(const std::vector<torch::Tensor>& tensors) {
  const std::shared_ptr<LinkKind> kind = link_kind();
  return kind ? kind->ready_marker(tensors) : nullptr;
}

void set_receive_timeout_s(double seconds) {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  s.receive_timeout_s = seconds;
}

double receive_timeout_s() {
  State& s = state();
  const std::lock_guard<std::mutex> lock(s.mutex);
  return s.receive_timeout_s;
}

Ticket send(const std::string& destination, std::vector<torch::Tensor> tensors, std::shared_ptr<void> ready) {
  const std::shared_ptr<LinkKind> kind = link_kind();
  if (!kind) throw Error("bulk transfer: this build has no link for tensors beside messages (NCCL needs a QERL_CUDA build)");
  if (destination.empty()) throw Error("bulk transfer: no destination process");
  SendLink* link = nullptr;
  {
    State& s = state();
    const std::lock_guard<std::mutex> lock(s.mutex);
    auto& slot = s.sending[destination];
    if (!slot) slot = std::make_unique<SendLink>(kind);
    link = slot.get();
  }
  return link->push(std::move(tensors), std::move(ready));
}

std::vector<torch::Tensor> receive(const Ticket& ticket, const std::vector<TensorSpec>& specs) {
  const double timeout_s = receive_timeout_s();
  const std::string where = link_name(ticket.link, ticket.seq);
  const std::shared_ptr<LinkKind> kind = link_kind();
  if (!kind || kind->name() != ticket.link_kind)
    throw Error(where + ": sent over '" + ticket.link_kind.substr(0, max_kind_name) +
                "', which this process does not have" + (kind ? " (it has '" + kind->name() + "')" : ""));
  ReceiveLink* link = nullptr;
  {
    State& s = state();
    const std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.receiving.find(ticket.link);
    if (it == s.receiving.end()) {
      if (s.receiving.size() >= max_receive_links)
        throw Error(where + ": refused, this process already receives on " + std::to_string(max_receive_links) + " links");
      it = s.receiving.emplace(ticket.link, std::make_unique<ReceiveLink>()).first;
    }
    link = it->second.get();
  }
  std::unique_lock<std::mutex> lock(link->mutex);
  if (ticket.seq < link->next) throw Error(where + ": already received (a repeated message)");
  if (ticket.seq > link->next + max_seq_ahead)
    throw Error(where + ": " + std::to_string(ticket.seq - link->next) + " transfers ahead of the link, refused");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  if (!link->turn.wait_until(lock, deadline, [&] { return !link->error.empty() || link->next == ticket.seq; })) {
    // The sender is stuck on that transfer for good: nothing after it can pair.
    link->error = "transfer " + std::to_string(link->next) + " never arrived (waited " +
                  std::to_string(static_cast<int>(timeout_s)) + " s)";
    link->turn.notify_all();
    throw Error(where + ": " + link->error);
  }
  if (!link->error.empty()) throw Error(where + ": the link failed earlier: " + link->error);
  // This ticket's turn: the others wait for `next` to move, so the link is ours.
  lock.unlock();
  std::vector<torch::Tensor> tensors;
  try {
    const torch::Device device = kind->receive_device();
    if (ticket.seq == 0) link->link = kind->join(ticket.bootstrap, /*rank=*/1, device);
    for (const TensorSpec& spec : specs) tensors.push_back(torch::empty(spec.sizes, torch::dtype(spec.dtype).device(device)));
    link->link->receive(tensors);
  } catch (const std::exception& e) {
    lock.lock();
    link->kept = std::move(tensors);
    link->error = e.what();
    link->turn.notify_all();
    throw Error(where + ": " + e.what());
  }
  lock.lock();
  ++link->next;
  link->turn.notify_all();
  return tensors;
}

}  // namespace qerl::actors::bulk
