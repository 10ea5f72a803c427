// safetensors <-> LibTorch. The format is little-endian; so is every host we
// build for (static_assert below), so tensor bytes are copied as they are.
// Data whose file offset is not a multiple of its itemsize (legal in the
// format, never written by the Python library) is copied out of the mapping
// instead of aliased, so that every tensor we return is properly aligned.
#include "models/io/safetensors.hpp"

#include <cstring>
#include <vector>

#include "common/error.hpp"
#include "common/atomic_file.hpp"
#include "models/io/mapped_file.hpp"

namespace qerl::models {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

struct DtypePair {
  Dtype dtype;
  torch::Dtype torch_dtype;
};

constexpr DtypePair kDtypePairs[] = {
    {Dtype::BOOL, torch::kBool},       {Dtype::U8, torch::kUInt8},
    {Dtype::I8, torch::kInt8},         {Dtype::F8_E5M2, torch::kFloat8_e5m2},
    {Dtype::F8_E4M3, torch::kFloat8_e4m3fn}, {Dtype::I16, torch::kInt16},
    {Dtype::U16, torch::kUInt16},      {Dtype::F16, torch::kHalf},
    {Dtype::BF16, torch::kBFloat16},   {Dtype::I32, torch::kInt32},
    {Dtype::U32, torch::kUInt32},      {Dtype::F32, torch::kFloat},
    {Dtype::F64, torch::kDouble},      {Dtype::I64, torch::kInt64},
    {Dtype::U64, torch::kUInt64},
};

std::string tensor_context(const std::filesystem::path& file, const std::string& name) {
  return file.string() + ": tensor '" + name + "': ";
}

// One tensor of the mapped file: aliased when aligned, copied otherwise.
torch::Tensor tensor_view(const std::shared_ptr<MappedFile>& mapping, const TensorInfo& info) {
  char* data = mapping->data() + info.data_begin;
  const auto options = torch::TensorOptions().dtype(to_torch_dtype(info.dtype));
  if (reinterpret_cast<uintptr_t>(data) % dtype_itemsize(info.dtype) == 0) {
    return torch::from_blob(data, info.shape, [keep = mapping](void*) {}, options);
  }
  torch::Tensor copy = torch::empty(info.shape, options);
  std::memcpy(copy.data_ptr(), data, info.data_end - info.data_begin);
  return copy;
}

}  // namespace

torch::Dtype to_torch_dtype(Dtype dtype) {
  for (const DtypePair& pair : kDtypePairs) {
    if (pair.dtype == dtype) return pair.torch_dtype;
  }
  throw Error(std::string("safetensors dtype ") + dtype_name(dtype) + " has no torch counterpart");
}

std::optional<Dtype> from_torch_dtype(torch::Dtype dtype) {
  for (const DtypePair& pair : kDtypePairs) {
    if (pair.torch_dtype == dtype) return pair.dtype;
  }
  return std::nullopt;
}

SafetensorsFile read_safetensors(const std::filesystem::path& file) {
  const std::shared_ptr<MappedFile> mapping = MappedFile::open(file);
  const SafetensorsHeader header = parse_safetensors_header(mapping->bytes(), mapping->size(), file.string());
  SafetensorsFile result;
  result.metadata = header.metadata;
  for (const TensorInfo& info : header.tensors) {
    try {
      result.tensors.emplace(info.name, tensor_view(mapping, info));
    } catch (const c10::Error& e) {
      throw Error(tensor_context(file, info.name) + e.what_without_backtrace());
    }
  }
  return result;
}

void write_safetensors(const std::filesystem::path& file, const TensorMap& tensors,
                       const SafetensorsMetadata& metadata) {
  std::vector<TensorInfo> infos;
  infos.reserve(tensors.size());
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) throw Error(tensor_context(file, name) + "undefined tensor");
    if (tensor.layout() != torch::kStrided || tensor.is_meta()) {
      throw Error(tensor_context(file, name) + "only dense tensors with data can be saved");
    }
    const auto dtype = from_torch_dtype(tensor.scalar_type());
    if (!dtype) {
      throw Error(tensor_context(file, name) + "dtype " + std::string(c10::toString(tensor.scalar_type())) +
                  " has no safetensors name");
    }
    infos.push_back(TensorInfo{name, *dtype, tensor.sizes().vec(), 0, 0});
  }
  const SafetensorsLayout layout = layout_safetensors(std::move(infos), metadata, file.string());

  AtomicFileWriter writer(file);
  writer.write(layout.header);
  for (const TensorInfo& info : layout.tensors) {
    torch::Tensor bytes;
    try {
      bytes = tensors.at(info.name).to(torch::kCPU).resolve_conj().resolve_neg().contiguous();
    } catch (const c10::Error& e) {
      throw Error(tensor_context(file, info.name) + e.what_without_backtrace());
    }
    writer.write(bytes.data_ptr(), info.data_end - info.data_begin);
  }
  writer.commit();
}

}  // namespace qerl::models
