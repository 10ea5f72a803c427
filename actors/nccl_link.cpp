// The NCCL link of bulk_transfer.hpp: a two-rank communicator per link
// (rank 0 the sender's GPU, rank 1 the receiver's), its ncclUniqueId the
// rendezvous bytes, point-to-point sends on a stream of its own that
// first waits for the producer's work (an event recorded where the
// transfer started). Transfers are grouped NCCL calls of up to
// `ops_per_group` tensors. NVLink multicast stays off: qerl-run sets
// NCCL_NVLS_ENABLE=0 before any NCCL call. Built when QERL_NCCL is set (a
// QERL_CUDA build that found NCCL); elsewhere nccl_link_kind() is null.
#include "actors/bulk_transfer.hpp"

#if QERL_NCCL
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <cstring>

#include "common/error.hpp"
#endif

namespace qerl::actors::bulk {

#if QERL_NCCL
namespace {

constexpr size_t ops_per_group = 64;

void nccl_check(ncclResult_t result, const char* what) {
  if (result != ncclSuccess) throw Error(std::string("NCCL ") + what + ": " + ncclGetErrorString(result));
}

void cuda_check(cudaError_t result, const char* what) {
  if (result != cudaSuccess) throw Error(std::string("CUDA ") + what + ": " + cudaGetErrorString(result));
}

struct Event {
  cudaEvent_t event = nullptr;
  ~Event() {
    if (event) cudaEventDestroy(event);
  }
};

// Records an event on `stream` (returned; null on failure to create).
std::shared_ptr<Event> record_on(const c10::cuda::CUDAStream& stream) {
  auto e = std::make_shared<Event>();
  cuda_check(cudaEventCreateWithFlags(&e->event, cudaEventDisableTiming), "cudaEventCreate");
  cuda_check(cudaEventRecord(e->event, stream.stream()), "cudaEventRecord");
  return e;
}

class NcclLink final : public Link {
 public:
  NcclLink(const std::vector<uint8_t>& bootstrap, int rank, torch::Device device) : device_(device), rank_(rank) {
    if (!device.is_cuda()) throw Error("NCCL link: moves GPU tensors; this end's device is " + device.str());
    if (bootstrap.size() != sizeof(ncclUniqueId))
      throw Error("NCCL link: rendezvous of " + std::to_string(bootstrap.size()) + " bytes, expected " +
                  std::to_string(sizeof(ncclUniqueId)));
    ncclUniqueId id;
    std::memcpy(&id, bootstrap.data(), sizeof id);
    const c10::cuda::CUDAGuard guard(device_);
    nccl_check(ncclCommInitRank(&comm_, /*nranks=*/2, id, rank_), "ncclCommInitRank");
    stream_ = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
  }
  // The communicator lives as long as the process (a peer may still be in a call).

  void send(const std::vector<torch::Tensor>& tensors, const std::shared_ptr<void>& ready) override {
    for (const torch::Tensor& t : tensors)
      if (t.device() != device_ || !t.is_contiguous())
        throw Error("NCCL link: a tensor to send is on " + t.device().str() + (t.is_contiguous() ? "" : ", not contiguous") +
                    "; the link sends contiguous tensors from " + device_.str());
    const c10::cuda::CUDAGuard guard(device_);
    if (ready) cuda_check(cudaStreamWaitEvent(stream_.stream(), static_cast<Event*>(ready.get())->event, 0), "wait");
    transfer(tensors, /*sending=*/true);
  }

  void receive(const std::vector<torch::Tensor>& into) override {
    const c10::cuda::CUDAGuard guard(device_);
    // The allocator may hand out memory the device's current stream still uses.
    const auto allocated = record_on(c10::cuda::getCurrentCUDAStream(device_.index()));
    cuda_check(cudaStreamWaitEvent(stream_.stream(), allocated->event, 0), "wait");
    transfer(into, /*sending=*/false);
  }

 private:
  void transfer(const std::vector<torch::Tensor>& tensors, bool sending) {
    const int peer = 1 - rank_;
    for (size_t begin = 0; begin < tensors.size(); begin += ops_per_group) {
      nccl_check(ncclGroupStart(), "ncclGroupStart");
      for (size_t i = begin; i < std::min(tensors.size(), begin + ops_per_group); ++i) {
        const torch::Tensor& t = tensors[i];
        if (t.nbytes() == 0) continue;
        if (sending)
          nccl_check(ncclSend(t.data_ptr(), t.nbytes(), ncclUint8, peer, comm_, stream_.stream()), "ncclSend");
        else
          nccl_check(ncclRecv(t.data_ptr(), t.nbytes(), ncclUint8, peer, comm_, stream_.stream()), "ncclRecv");
      }
      nccl_check(ncclGroupEnd(), "ncclGroupEnd");
    }
    cuda_check(cudaStreamSynchronize(stream_.stream()), "cudaStreamSynchronize");
  }

  torch::Device device_;
  int rank_ = 0;
  ncclComm_t comm_ = nullptr;
  c10::cuda::CUDAStream stream_ = c10::cuda::getDefaultCUDAStream();
};

class NcclKind final : public LinkKind {
 public:
  std::string name() const override { return "nccl"; }

  std::vector<uint8_t> bootstrap() override {
    ncclUniqueId id;
    nccl_check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    const auto* bytes = reinterpret_cast<const uint8_t*>(&id);
    return std::vector<uint8_t>(bytes, bytes + sizeof id);
  }

  std::unique_ptr<Link> join(const std::vector<uint8_t>& bootstrap, int rank, torch::Device device) override {
    return std::make_unique<NcclLink>(bootstrap, rank, device);
  }

  std::shared_ptr<void> ready_marker(const std::vector<torch::Tensor>& tensors) override {
    if (tensors.empty() || !tensors[0].is_cuda()) return nullptr;  // send() refuses them
    const c10::cuda::CUDAGuard guard(tensors[0].device());
    return record_on(c10::cuda::getCurrentCUDAStream(tensors[0].device().index()));
  }

  torch::Device receive_device() const override {
    const auto device = noted_device();
    if (!device)
      throw Error("NCCL link: GPU tensors arrived in a process whose stages use no GPU (place the consumer on a GPU, "
                  "or set weight_sync's transport = \"auto\")");
    return *device;
  }
};

}  // namespace

std::shared_ptr<LinkKind> nccl_link_kind() { return std::make_shared<NcclKind>(); }
#else
std::shared_ptr<LinkKind> nccl_link_kind() { return nullptr; }
#endif

}  // namespace qerl::actors::bulk
