// The safetensors header, without LibTorch: a little-endian u64 length N,
// N bytes of JSON ({"name": {"dtype", "shape", "data_offsets"}, ...,
// "__metadata__": {string: string}}), then the tensor data. Parsing is
// strict (the spec's rules: fully indexed data, no overlaps, no duplicates)
// and never crashes on hostile bytes (fuzz_safetensors); layout writes the
// header byte-for-byte as the Python `safetensors` library does.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qerl::models {

// Element types we read and write. Declared in the order of the Rust
// library's Dtype enum: writers put the data of later (wider) types first.
enum class Dtype : uint8_t { BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64 };

// "F32", "BF16", ...: the header's spelling.
const char* dtype_name(Dtype dtype);
std::optional<Dtype> dtype_from_name(std::string_view name);
uint64_t dtype_itemsize(Dtype dtype);

struct TensorInfo {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<int64_t> shape;  // [] is a scalar; 0-sized dims are allowed
  uint64_t data_begin = 0;     // absolute byte range [data_begin, data_end) in the file
  uint64_t data_end = 0;
};

using SafetensorsMetadata = std::map<std::string, std::string>;

struct SafetensorsHeader {
  uint64_t data_start = 0;          // 8 + N: first byte of the data section
  std::vector<TensorInfo> tensors;  // in data order (by data_begin)
  SafetensorsMetadata metadata;     // "__metadata__", empty when absent
};

// Largest header we accept, as the Python library (100 MB): a bigger N is
// corruption, not a model.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// `bytes` starts at the file's first byte and holds at least 8 + N bytes
// (the whole file is fine); `file_size` is the size of the whole file and
// `file` names it in errors. Throws qerl::Error ("<file>: tensor 'w': ...").
SafetensorsHeader parse_safetensors_header(std::string_view bytes, uint64_t file_size,
                                           const std::string& file);

// The first 8 bytes of a file give N; the caller then reads 8 + N bytes.
// Throws when the file is too short or N is absurd.
uint64_t safetensors_header_length(std::string_view bytes, uint64_t file_size,
                                   const std::string& file);

struct SafetensorsLayout {
  std::string header;               // 8-byte N + JSON padded with spaces to a multiple of 8
  std::vector<TensorInfo> tensors;  // data order, data_begin/data_end filled in (absolute)
  uint64_t file_size = 0;           // header.size() + all tensor bytes
};

// Lays `tensors` (name, dtype, shape; offsets ignored) out as
// safetensors.torch.save_file does: data sorted by dtype (widest first) then
// name, "__metadata__" first in the header. Throws on duplicate or reserved
// names, negative dims, byte sizes that overflow, or names that are not UTF-8.
SafetensorsLayout layout_safetensors(std::vector<TensorInfo> tensors,
                                     const SafetensorsMetadata& metadata, const std::string& file);

}  // namespace qerl::models
