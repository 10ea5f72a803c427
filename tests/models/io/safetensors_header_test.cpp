// The torch-free header parser on hand-written files: a valid header parses
// to absolute offsets, and each kind of corruption gives one error line
// naming the file and, where there is one, the tensor. layout_safetensors
// writes the exact bytes of the Python library (checked again end to end
// against the real package in peer_parity_test.cpp).
#include "test_tensors.hpp"  // first: see there

#include <cstdint>
#include <string>

#include "models/io/safetensors_header.hpp"

using namespace qerl::models;
using qerl::models::test::error_of;

namespace {

const std::string kFile = "bad.safetensors";

std::string le64(uint64_t n) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return bytes;
}

// 8-byte length + `json` + `data_bytes` bytes of data.
std::string file_with(const std::string& json, size_t data_bytes) {
  return le64(json.size()) + json + std::string(data_bytes, 'x');
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { parse_safetensors_header(bytes, bytes.size(), kFile); });
}

}  // namespace

TEST_CASE("a valid header parses to dtypes, shapes, absolute offsets and metadata") {
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("s":{"dtype":"I64","shape":[],"data_offsets":[30,38]},"e":{"dtype":"U8","shape":[0,5],"data_offsets":[38,38]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]}})";
  const std::string bytes = file_with(json, 38);
  const SafetensorsHeader header = parse_safetensors_header(bytes, bytes.size(), kFile);
  const uint64_t start = 8 + json.size();
  CHECK(header.data_start == start);
  CHECK(header.metadata == SafetensorsMetadata{{"format", "pt"}});
  REQUIRE(header.tensors.size() == 4);
  CHECK(header.tensors[0].name == "w");  // data order
  CHECK(header.tensors[0].dtype == Dtype::F32);
  CHECK(header.tensors[0].shape == std::vector<int64_t>{2, 3});
  CHECK(header.tensors[0].data_begin == start);
  CHECK(header.tensors[1].name == "b");
  CHECK(header.tensors[1].data_end == start + 30);
  CHECK(header.tensors[2].name == "s");
  CHECK(header.tensors[2].shape.empty());
  CHECK(header.tensors[3].name == "e");
  CHECK(header.tensors[3].data_begin == header.tensors[3].data_end);
}

TEST_CASE("file-level corruption names the file") {
  CHECK(parse_error("abc").find("bad.safetensors: file is 3 bytes, too short") == 0);
  CHECK(parse_error(le64(1000) + "{}").find("bad.safetensors: header length 1000 runs past the end") == 0);
  CHECK(parse_error(le64(uint64_t{1} << 63) + "{}").find("bad.safetensors: header length 9223372036854775808 exceeds") == 0);
  CHECK(parse_error(file_with("[]", 0)).find("bad.safetensors: header does not start with '{'") == 0);
  CHECK(parse_error(file_with(R"({"w": )", 0)).find("bad.safetensors: header is not valid JSON") == 0);
  CHECK(parse_error(file_with(R"({"__metadata__":{"a":1}})", 0)).find("__metadata__ value for 'a' is not a string") != std::string::npos);
  const std::string one = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse_error(file_with(one, 12)) == "bad.safetensors: 4 bytes after the last tensor are not indexed");
  // Only a prefix of a longer file was given: the header is cut off.
  const std::string bytes = file_with(one, 8);
  CHECK(error_of([&] { parse_safetensors_header(bytes.substr(0, 20), bytes.size(), kFile); })
            .find("bad.safetensors: header truncated") == 0);
}

TEST_CASE("tensor-level corruption names the file and the tensor") {
  struct Case {
    std::string what;
    std::string json;
    size_t data_bytes;
    std::string expected;
  };
  const std::string f32 = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const Case cases[] = {
      {"unknown dtype", R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1,
       "tensor 'w': unknown dtype 'F4'"},
      {"shape/size mismatch", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20,
       "tensor 'w': shape [2, 3] of F32 is 24 bytes but data_offsets [0, 20] span 20"},
      {"offsets past the data", R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})", 16,
       "tensor 'w': data_offsets [0, 24] run past the end of the data (16 bytes)"},
      {"reversed offsets", R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,0]}})", 8,
       "tensor 'w': data_offsets [8, 0] end before they begin"},
      {"overlap", R"({"w":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]}})",
       24, "tensor 'b': data overlaps tensor 'w'"},
      {"hole", R"({"w":)" + f32 + R"(,"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}})", 16,
       "tensor 'b': 4 unindexed bytes before its data (holes are not allowed)"},
      {"negative dim", R"({"w":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", 24,
       "tensor 'w': negative dim -2"},
      {"fractional dim", R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8,
       "tensor 'w': dim is not a non-negative integer: 2.5"},
      {"overflowing shape", R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", 8,
       "tensor 'w': shape [4294967296, 4294967296, 16] is too large"},
      {"duplicate name", R"({"w":)" + f32 + R"(,"w":)" + f32 + "}", 8, "tensor 'w': name appears twice in the header"},
      {"unknown field", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", 8,
       "tensor 'w': unknown header field 'extra'"},
      {"missing field", R"({"w":{"dtype":"F32","shape":[2]}})", 8,
       "tensor 'w': header entry needs dtype, shape and data_offsets"},
      {"bad offsets", R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8,
       "tensor 'w': data_offsets is not [begin, end]"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    CHECK(parse_error(file_with(c.json, c.data_bytes)) == kFile + ": " + c.expected);
  }
}

TEST_CASE("layout writes the Python library's header: dtype-descending data order, metadata first, space padding") {
  const std::vector<TensorInfo> tensors = {
      {"b", Dtype::F32, {3}, 0, 0}, {"a", Dtype::BF16, {2}, 0, 0}, {"c", Dtype::I64, {1}, 0, 0}, {"d", Dtype::F32, {}, 0, 0}};
  const SafetensorsLayout layout = layout_safetensors(tensors, {{"format", "pt"}}, "out.safetensors");
  const std::string json =
      R"({"__metadata__":{"format":"pt"},"c":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[3],"data_offsets":[8,20]},"d":{"dtype":"F32","shape":[],"data_offsets":[20,24]},)"
      R"("a":{"dtype":"BF16","shape":[2],"data_offsets":[24,28]}})";
  const std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  CHECK(layout.header == le64(padded.size()) + padded);
  CHECK(layout.header.size() % 8 == 0);
  CHECK(layout.file_size == layout.header.size() + 28);
  REQUIRE(layout.tensors.size() == 4);
  CHECK(layout.tensors[0].name == "c");
  CHECK(layout.tensors[0].data_begin == layout.header.size());
  // And the parser reads it back.
  std::string file = layout.header;
  file.resize(layout.file_size, '\0');
  CHECK(parse_safetensors_header(file, file.size(), "out.safetensors").tensors.size() == 4);

  const SafetensorsLayout empty = layout_safetensors({}, {}, "empty.safetensors");
  CHECK(empty.header == le64(8) + "{}      ");
}

TEST_CASE("layout rejects what no reader could load") {
  CHECK(error_of([] { layout_safetensors({{"w", Dtype::F32, {2}, 0, 0}, {"w", Dtype::F16, {2}, 0, 0}}, {}, "o"); }) ==
        "o: tensor 'w': name appears twice");
  CHECK(error_of([] { layout_safetensors({{"__metadata__", Dtype::F32, {2}, 0, 0}}, {}, "o"); }) ==
        "o: tensor '__metadata__': name is reserved for the metadata");
  CHECK(error_of([] { layout_safetensors({{"w", Dtype::F32, {-1}, 0, 0}}, {}, "o"); }) ==
        "o: tensor 'w': shape [-1] is negative or too large");
  CHECK(error_of([] { layout_safetensors({{"w\xff", Dtype::F32, {1}, 0, 0}}, {}, "o"); })
            .find("o: header text is not valid UTF-8") == 0);
}

TEST_CASE("dtype names round trip and sizes are right") {
  for (Dtype d : {Dtype::BOOL, Dtype::U8, Dtype::I8, Dtype::F8_E5M2, Dtype::F8_E4M3, Dtype::I16, Dtype::U16,
                  Dtype::F16, Dtype::BF16, Dtype::I32, Dtype::U32, Dtype::F32, Dtype::F64, Dtype::I64, Dtype::U64}) {
    CHECK(dtype_from_name(dtype_name(d)) == d);
  }
  CHECK(dtype_itemsize(Dtype::BF16) == 2);
  CHECK(dtype_itemsize(Dtype::F8_E4M3) == 1);
  CHECK(dtype_itemsize(Dtype::U64) == 8);
  CHECK_FALSE(dtype_from_name("F8_E8M0").has_value());
}
