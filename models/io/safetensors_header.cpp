// Strict safetensors header parsing and Python-compatible header layout.
// Every check that can fail on file bytes throws qerl::Error naming the file
// (and the tensor); all arithmetic on sizes and offsets is overflow-checked
// because the input is untrusted (see tests/fuzz/fuzz_safetensors.cpp).
#include "models/io/safetensors_header.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace qerl::models {
namespace {

using nlohmann::json;

struct DtypeSpec {
  Dtype dtype;
  const char* name;
  uint64_t itemsize;
};

constexpr DtypeSpec kDtypes[] = {
    {Dtype::BOOL, "BOOL", 1}, {Dtype::U8, "U8", 1},           {Dtype::I8, "I8", 1},
    {Dtype::F8_E5M2, "F8_E5M2", 1}, {Dtype::F8_E4M3, "F8_E4M3", 1}, {Dtype::I16, "I16", 2},
    {Dtype::U16, "U16", 2},   {Dtype::F16, "F16", 2},         {Dtype::BF16, "BF16", 2},
    {Dtype::I32, "I32", 4},   {Dtype::U32, "U32", 4},         {Dtype::F32, "F32", 4},
    {Dtype::F64, "F64", 8},   {Dtype::I64, "I64", 8},         {Dtype::U64, "U64", 8},
};

const DtypeSpec& spec(Dtype dtype) { return kDtypes[static_cast<size_t>(dtype)]; }

// Keeps error lines readable when a name is long or binary garbage.
std::string quote_name(std::string_view name) {
  constexpr size_t kMax = 120;
  std::string out = "'" + std::string(name.substr(0, kMax));
  return out + (name.size() > kMax ? "...'" : "'");
}

[[noreturn]] void fail(const std::string& file, const std::string& what) {
  throw Error(file + ": " + what);
}

[[noreturn]] void fail_tensor(const std::string& file, std::string_view name, const std::string& what) {
  fail(file, "tensor " + quote_name(name) + ": " + what);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? ", " : "") + std::to_string(shape[i]);
  return out + "]";
}

// numel * itemsize, or nullopt on overflow (or a negative dim).
std::optional<uint64_t> byte_size(const std::vector<int64_t>& shape, Dtype dtype) {
  uint64_t bytes = dtype_itemsize(dtype);
  for (int64_t dim : shape) {
    if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) return std::nullopt;
  }
  // Tensors are indexed with int64 downstream.
  if (bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
  return bytes;
}

// A JSON value that must be a non-negative integer; `what` names it in errors.
uint64_t to_count(const json& value, const std::string& file, std::string_view name, const char* what) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer()) {
    const auto v = value.get<int64_t>();
    if (v < 0) fail_tensor(file, name, std::string("negative ") + what + " " + std::to_string(v));
    return static_cast<uint64_t>(v);
  }
  fail_tensor(file, name, std::string(what) + " is not a non-negative integer: " + value.dump());
}

// Parses the JSON text, rejecting duplicate keys at any depth (nlohmann
// would silently keep the last one).
json parse_json(std::string_view text, const std::string& file) {
  std::vector<std::set<std::string>> open_objects;
  std::optional<std::pair<int, std::string>> duplicate;
  auto track_keys = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (event == json::parse_event_t::key && !open_objects.empty() && parsed.is_string()) {
      if (!open_objects.back().insert(parsed.get<std::string>()).second && !duplicate) {
        duplicate.emplace(depth, parsed.get<std::string>());
      }
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), track_keys);
  } catch (const json::exception& e) {
    fail(file, std::string("header is not valid JSON: ") + e.what());
  }
  if (duplicate) {
    if (duplicate->first == 1) fail_tensor(file, duplicate->second, "name appears twice in the header");
    fail(file, "header repeats the key " + quote_name(duplicate->second));
  }
  return header;
}

SafetensorsMetadata parse_metadata(const json& value, const std::string& file) {
  if (!value.is_object()) fail(file, "__metadata__ is not an object of strings");
  SafetensorsMetadata metadata;
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) fail(file, "__metadata__ value for " + quote_name(key) + " is not a string");
    metadata.emplace(key, item.get<std::string>());
  }
  return metadata;
}

TensorInfo parse_tensor(const std::string& name, const json& entry, uint64_t data_start,
                        uint64_t data_size, const std::string& file) {
  if (!entry.is_object()) fail_tensor(file, name, "header entry is not an object");
  for (const auto& [key, unused] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      fail_tensor(file, name, "unknown header field " + quote_name(key));
    }
  }
  if (!entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets")) {
    fail_tensor(file, name, "header entry needs dtype, shape and data_offsets");
  }
  const json& dtype = entry["dtype"];
  if (!dtype.is_string()) fail_tensor(file, name, "dtype is not a string");
  const auto parsed_dtype = dtype_from_name(dtype.get<std::string>());
  if (!parsed_dtype) fail_tensor(file, name, "unknown dtype " + quote_name(dtype.get<std::string>()));

  TensorInfo info;
  info.name = name;
  info.dtype = *parsed_dtype;
  const json& shape = entry["shape"];
  if (!shape.is_array()) fail_tensor(file, name, "shape is not a list");
  for (const json& dim : shape) {
    const uint64_t d = to_count(dim, file, name, "dim");
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      fail_tensor(file, name, "dim " + std::to_string(d) + " is too large");
    }
    info.shape.push_back(static_cast<int64_t>(d));
  }
  const auto bytes = byte_size(info.shape, info.dtype);
  if (!bytes) fail_tensor(file, name, "shape " + shape_string(info.shape) + " is too large");

  const json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2) fail_tensor(file, name, "data_offsets is not [begin, end]");
  const uint64_t begin = to_count(offsets[0], file, name, "data offset");
  const uint64_t end = to_count(offsets[1], file, name, "data offset");
  const std::string range = "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
  if (end < begin) fail_tensor(file, name, range + " end before they begin");
  if (end > data_size) {
    fail_tensor(file, name, range + " run past the end of the data (" + std::to_string(data_size) + " bytes)");
  }
  if (end - begin != *bytes) {
    fail_tensor(file, name, "shape " + shape_string(info.shape) + " of " + dtype_name(info.dtype) + " is " +
                                std::to_string(*bytes) + " bytes but " + range + " span " +
                                std::to_string(end - begin));
  }
  info.data_begin = data_start + begin;
  info.data_end = data_start + end;
  return info;
}

// The data section must be covered exactly: no overlaps, no holes, nothing
// after the last tensor (the spec forbids holes to rule out polyglot files).
void check_coverage(std::vector<TensorInfo>& tensors, uint64_t data_start, uint64_t file_size,
                    const std::string& file) {
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.data_begin, a.data_end, a.name) < std::tie(b.data_begin, b.data_end, b.name);
  });
  uint64_t covered = data_start;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& info : tensors) {
    if (info.data_begin < covered) {
      fail_tensor(file, info.name, "data overlaps tensor " + quote_name(previous->name));
    }
    if (info.data_begin > covered) {
      fail_tensor(file, info.name, std::to_string(info.data_begin - covered) +
                                       " unindexed bytes before its data (holes are not allowed)");
    }
    covered = info.data_end;
    previous = &info;
  }
  if (covered != file_size) {
    fail(file, std::to_string(file_size - covered) + " bytes after the last tensor are not indexed");
  }
}

}  // namespace

const char* dtype_name(Dtype dtype) { return spec(dtype).name; }

uint64_t dtype_itemsize(Dtype dtype) { return spec(dtype).itemsize; }

std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (const DtypeSpec& s : kDtypes) {
    if (name == s.name) return s.dtype;
  }
  return std::nullopt;
}

uint64_t safetensors_header_length(std::string_view bytes, uint64_t file_size, const std::string& file) {
  if (file_size < 8 || bytes.size() < 8) {
    fail(file, "file is " + std::to_string(std::min<uint64_t>(file_size, bytes.size())) +
                   " bytes, too short for a safetensors header");
  }
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);  // little-endian
  if (n > kMaxSafetensorsHeaderBytes) {
    fail(file, "header length " + std::to_string(n) + " exceeds " + std::to_string(kMaxSafetensorsHeaderBytes) +
                   " bytes (corrupt file?)");
  }
  if (n > file_size - 8) {
    fail(file, "header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
  }
  return n;
}

SafetensorsHeader parse_safetensors_header(std::string_view bytes, uint64_t file_size, const std::string& file) {
  const uint64_t n = safetensors_header_length(bytes, file_size, file);
  if (bytes.size() - 8 < n) {
    fail(file, "header truncated: " + std::to_string(bytes.size()) + " of " + std::to_string(8 + n) + " bytes given");
  }
  const std::string_view text = bytes.substr(8, n);
  if (text.empty() || text.front() != '{') fail(file, "header does not start with '{'");
  const json header = parse_json(text, file);
  if (!header.is_object()) fail(file, "header is not a JSON object");

  SafetensorsHeader result;
  result.data_start = 8 + n;
  const uint64_t data_size = file_size - result.data_start;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      result.metadata = parse_metadata(entry, file);
    } else {
      result.tensors.push_back(parse_tensor(name, entry, result.data_start, data_size, file));
    }
  }
  check_coverage(result.tensors, result.data_start, file_size, file);
  return result;
}

SafetensorsLayout layout_safetensors(std::vector<TensorInfo> tensors, const SafetensorsMetadata& metadata,
                                     const std::string& file) {
  // Data order of the Rust writer: descending dtype, then name (bytewise).
  std::sort(tensors.begin(), tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    if (a.dtype != b.dtype) return a.dtype > b.dtype;
    return a.name < b.name;
  });
  std::set<std::string_view> names;
  std::string text = "{";
  try {
    if (!metadata.empty()) text += "\"__metadata__\":" + json(metadata).dump();
    uint64_t offset = 0;
    for (TensorInfo& info : tensors) {
      if (info.name == "__metadata__") fail_tensor(file, info.name, "name is reserved for the metadata");
      if (!names.insert(info.name).second) fail_tensor(file, info.name, "name appears twice");
      const auto bytes = byte_size(info.shape, info.dtype);
      if (!bytes) fail_tensor(file, info.name, "shape " + shape_string(info.shape) + " is negative or too large");
      uint64_t end = 0;
      if (__builtin_add_overflow(offset, *bytes, &end) || end > uint64_t{1} << 62) {
        fail_tensor(file, info.name, "data would end past 2^62 bytes");
      }
      if (text.size() > 1) text += ',';
      text += json(info.name).dump() + ":{\"dtype\":\"" + dtype_name(info.dtype) + "\",\"shape\":" +
              json(info.shape).dump() + ",\"data_offsets\":[" + std::to_string(offset) + "," +
              std::to_string(end) + "]}";
      info.data_begin = offset;
      info.data_end = offset = end;
    }
  } catch (const json::exception& e) {  // type_error 316: a name or metadata string is not UTF-8
    fail(file, std::string("header text is not valid UTF-8: ") + e.what());
  }
  text += '}';
  text.append((8 - text.size() % 8) % 8, ' ');

  SafetensorsLayout layout;
  layout.header.resize(8);
  const uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) layout.header[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  layout.header += text;
  for (TensorInfo& info : tensors) {
    info.data_begin += layout.header.size();
    info.data_end += layout.header.size();
  }
  layout.file_size = tensors.empty() ? layout.header.size() : tensors.back().data_end;
  layout.tensors = std::move(tensors);
  return layout;
}

}  // namespace qerl::models
