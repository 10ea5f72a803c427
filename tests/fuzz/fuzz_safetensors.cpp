// libFuzzer entry point: arbitrary bytes as a .safetensors file for the
// torch-free header parser (models/io/safetensors_header.cpp). Properties
// checked on every input: only qerl::Error escapes; an accepted header
// indexes the data exactly (sizes match shapes, no gaps, in bounds); and it
// survives layout_safetensors -> parse unchanged (names, dtypes, shapes,
// metadata), with the layout a fixed point. A truncated prefix never crashes.
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

#include "common/error.hpp"
#include "models/io/safetensors_header.hpp"

using namespace qerl::models;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

using Summary = std::map<std::string, std::tuple<Dtype, std::vector<int64_t>, uint64_t>>;

Summary summarize(const SafetensorsHeader& header) {
  Summary summary;
  for (const TensorInfo& t : header.tensors) summary[t.name] = {t.dtype, t.shape, t.data_end - t.data_begin};
  return summary;
}

void check_accepted(const SafetensorsHeader& header, uint64_t file_size) {
  uint64_t covered = header.data_start;
  for (const TensorInfo& t : header.tensors) {
    uint64_t bytes = dtype_itemsize(t.dtype);
    for (int64_t dim : t.shape) {
      check(dim >= 0);
      check(!__builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes));
    }
    check(t.data_begin == covered && t.data_end - t.data_begin == bytes);
    covered = t.data_end;
  }
  check(covered == file_size);

  // Re-lay the header out as a writer would and parse it again.
  const SafetensorsLayout layout = layout_safetensors(header.tensors, header.metadata, "relayout");
  std::string file = layout.header;
  file.resize(layout.file_size, '\0');
  const SafetensorsHeader again = parse_safetensors_header(file, file.size(), "relayout");
  check(summarize(again) == summarize(header));
  check(again.metadata == header.metadata);
  check(layout_safetensors(again.tensors, again.metadata, "relayout").header == layout.header);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    check_accepted(parse_safetensors_header(bytes, size, "fuzz.safetensors"), size);
  } catch (const qerl::Error&) {
  }
  // The same bytes as a prefix of a longer file: the header may be cut off.
  if (size > 0) {
    const size_t prefix = data[size - 1] % (size + 1);
    try {
      parse_safetensors_header(bytes.substr(0, prefix), size + 977, "fuzz.safetensors");
    } catch (const qerl::Error&) {
    }
  }
  return 0;
}
