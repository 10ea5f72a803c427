// Wire format and payload codec registry (see wire.hpp).
#include "runtime/wire.hpp"

#include <cstring>
#include <map>
#include <mutex>

#include "common/error.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

namespace qerl::runtime::wire {
namespace {

constexpr char magic[4] = {'Q', 'R', 'L', 'W'};

struct Registry {
  std::mutex mutex;
  std::map<std::type_index, PayloadCodec> by_type;
  std::map<std::string, std::type_index> by_name;
};

Registry& registry() {
  static Registry r;
  return r;
}

thread_local std::string current_destination;

}  // namespace

DestinationScope::DestinationScope(std::string destination) : previous_(std::move(current_destination)) {
  current_destination = std::move(destination);
}

DestinationScope::~DestinationScope() { current_destination = std::move(previous_); }

const std::string& destination() { return current_destination; }

void Writer::raw(const void* data, size_t size) {
  const auto* p = static_cast<const uint8_t*>(data);
  bytes_.insert(bytes_.end(), p, p + size);
}

void Writer::str(const std::string& s) {
  u64(s.size());
  raw(s.data(), s.size());
}

void Writer::i64s(const std::vector<int64_t>& v) {
  u64(v.size());
  raw(v.data(), v.size() * sizeof(int64_t));
}

void Writer::u8s(const std::vector<uint8_t>& v) {
  u64(v.size());
  raw(v.data(), v.size());
}

void Writer::strs(const std::vector<std::string>& v) {
  u64(v.size());
  for (const auto& s : v) str(s);
}

Reader::Reader(const uint8_t* data, size_t size, std::string what) : data_(data), size_(size), what_(std::move(what)) {}

void Reader::fail(const char* field, const std::string& problem) const {
  throw Error(what_ + ": " + field + ": " + problem + " (at byte " + std::to_string(offset_) + " of " +
              std::to_string(size_) + ")");
}

const uint8_t* Reader::take(const char* field, uint64_t size) {
  if (size > left())
    fail(field, "message truncated: needs " + std::to_string(size) + " bytes, " + std::to_string(left()) + " left");
  const uint8_t* p = data_ + offset_;
  offset_ += size;
  return p;
}

#define QERL_WIRE_READ(T, name)             \
  T Reader::name(const char* field) {       \
    T v;                                    \
    std::memcpy(&v, take(field, sizeof v), sizeof v); \
    return v;                               \
  }
QERL_WIRE_READ(uint8_t, u8)
QERL_WIRE_READ(uint32_t, u32)
QERL_WIRE_READ(uint64_t, u64)
QERL_WIRE_READ(int64_t, i64)
QERL_WIRE_READ(double, f64)
#undef QERL_WIRE_READ

uint64_t Reader::count(const char* field, uint64_t item_bytes) {
  const uint64_t n = u64(field);
  if (n > max_length) fail(field, "count " + std::to_string(n) + " exceeds the limit " + std::to_string(max_length));
  if (item_bytes > 0 && n > left() / item_bytes)
    fail(field, "count " + std::to_string(n) + " of " + std::to_string(item_bytes) + "-byte items, only " +
                    std::to_string(left()) + " bytes left");
  return n;
}

std::string Reader::str(const char* field) {
  const uint64_t n = count(field, 1);
  const uint8_t* p = take(field, n);
  return std::string(reinterpret_cast<const char*>(p), n);
}

std::vector<int64_t> Reader::i64s(const char* field) {
  const uint64_t n = count(field, sizeof(int64_t));
  std::vector<int64_t> v(n);
  std::memcpy(v.data(), take(field, n * sizeof(int64_t)), n * sizeof(int64_t));
  return v;
}

std::vector<uint8_t> Reader::u8s(const char* field) {
  const uint64_t n = count(field, 1);
  const uint8_t* p = take(field, n);
  return std::vector<uint8_t>(p, p + n);
}

std::vector<std::string> Reader::strs(const char* field) {
  const uint64_t n = count(field, sizeof(uint64_t));  // each string has at least its length
  std::vector<std::string> v;
  v.reserve(n);
  for (uint64_t i = 0; i < n; ++i) v.push_back(str(field));
  return v;
}

void Reader::expect_end() const {
  if (left() != 0) fail("end", std::to_string(left()) + " unexpected bytes after the payload");
}

void register_codec(std::type_index type, PayloadCodec codec) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  const auto by_type = r.by_type.find(type);
  if (by_type != r.by_type.end()) {
    if (by_type->second.name != codec.name)
      throw Error("payload codec: " + demangled_name(type) + " is already registered as '" + by_type->second.name +
                  "', not '" + codec.name + "'");
    return;
  }
  const auto by_name = r.by_name.find(codec.name);
  if (by_name != r.by_name.end())
    throw Error("payload codec: the name '" + codec.name + "' already belongs to " + demangled_name(by_name->second));
  r.by_name.emplace(codec.name, type);
  r.by_type.emplace(type, std::move(codec));
}

bool has_codec(std::type_index type) {
  Registry& r = registry();
  const std::lock_guard<std::mutex> lock(r.mutex);
  return r.by_type.count(type) > 0;
}

std::vector<uint8_t> encode_payload(const Payload& payload) {
  PayloadCodec codec;
  {
    Registry& r = registry();
    const std::lock_guard<std::mutex> lock(r.mutex);
    const auto it = r.by_type.find(std::type_index(typeid(payload)));
    if (it == r.by_type.end())
      throw Error("payload " + payload.type_name() +
                  " has no wire codec, so it cannot cross processes (register one with "
                  "qerl::runtime::wire::register_payload_codec)");
    codec = it->second;
  }
  Writer w;
  w.raw(magic, sizeof magic);
  w.u32(format_version);
  w.str(codec.name);
  codec.encode(payload, w);
  return w.take();
}

PayloadPtr decode_payload(const uint8_t* data, size_t size, const std::string& what) {
  Reader r(data, size, what);
  if (std::memcmp(r.take("magic", sizeof magic), magic, sizeof magic) != 0)
    r.fail("magic", "not a qerl payload message");
  const uint32_t version = r.u32("format version");
  if (version != format_version)
    r.fail("format version", "version " + std::to_string(version) + ", this build reads " +
                                 std::to_string(format_version));
  const std::string name = r.str("payload name");
  std::function<PayloadPtr(Reader&)> decode;
  {
    Registry& reg = registry();
    const std::lock_guard<std::mutex> lock(reg.mutex);
    const auto it = reg.by_name.find(name);
    if (it == reg.by_name.end()) r.fail("payload name", "unknown payload type '" + name.substr(0, 64) + "'");
    decode = reg.by_type.at(it->second).decode;
  }
  PayloadPtr payload = decode(r);
  r.expect_end();
  return payload;
}

}  // namespace qerl::runtime::wire
