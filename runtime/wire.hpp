// The wire format of payloads that cross processes (issue 17): a byte
// Writer, a bounds-checked Reader for untrusted input, and a registry of
// payload codecs. A message is "QRLW", the format version, the payload's
// registered name and its body; decode_payload checks every length against
// what is left, every count against a limit, and the end of the message, and
// throws qerl::Error naming the field and the byte offset, so a truncated,
// corrupted or hostile message never allocates unbounded memory or crashes.
// Integers are little-endian fixed width (the only byte order qerl builds for).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <typeindex>
#include <vector>

#include "runtime/payload.hpp"

namespace qerl::runtime::wire {

inline constexpr uint32_t format_version = 1;
// Upper bound of any one length or count read from the wire (bytes or items).
inline constexpr uint64_t max_length = uint64_t(1) << 40;

class Writer {
 public:
  void u8(uint8_t v) { raw(&v, 1); }
  void u32(uint32_t v) { raw(&v, 4); }
  void u64(uint64_t v) { raw(&v, 8); }
  void i64(int64_t v) { raw(&v, 8); }
  void f64(double v) { raw(&v, 8); }
  void str(const std::string& s);
  void i64s(const std::vector<int64_t>& v);
  void u8s(const std::vector<uint8_t>& v);
  void strs(const std::vector<std::string>& v);
  void raw(const void* data, size_t size);
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> take() { return std::move(bytes_); }

 private:
  std::vector<uint8_t> bytes_;
};

class Reader {
 public:
  // `what` names the message in errors ("message from worker 1").
  Reader(const uint8_t* data, size_t size, std::string what);
  uint8_t u8(const char* field);
  uint32_t u32(const char* field);
  uint64_t u64(const char* field);
  int64_t i64(const char* field);
  double f64(const char* field);
  std::string str(const char* field);
  std::vector<int64_t> i64s(const char* field);
  std::vector<uint8_t> u8s(const char* field);
  std::vector<std::string> strs(const char* field);
  // A count of items of `item_bytes` each that must fit in what is left.
  uint64_t count(const char* field, uint64_t item_bytes);
  // `size` bytes, after checking that they are there.
  const uint8_t* take(const char* field, uint64_t size);
  size_t offset() const { return offset_; }
  size_t left() const { return size_ - offset_; }
  void expect_end() const;
  // Throws qerl::Error: "<what>: <field>: <problem> (at byte <offset>)".
  [[noreturn]] void fail(const char* field, const std::string& problem) const;

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
  std::string what_;
};

struct PayloadCodec {
  std::string name;  // on the wire
  std::function<void(const Payload&, Writer&)> encode;
  std::function<PayloadPtr(Reader&)> decode;
};

// Registers the codec of payload type T (idempotent for the same name;
// another name for T, or the name for another type, throws qerl::Error).
void register_codec(std::type_index type, PayloadCodec codec);
template <class T>
void register_payload_codec(std::string name, std::function<void(const T&, Writer&)> encode,
                            std::function<std::shared_ptr<const T>(Reader&)> decode) {
  register_codec(payload_type<T>(),
                 PayloadCodec{std::move(name),
                              [encode](const Payload& p, Writer& w) { encode(static_cast<const T&>(p), w); },
                              [decode](Reader& r) -> PayloadPtr { return decode(r); }});
}
bool has_codec(std::type_index type);

// The process that the message being encoded goes to (CAF's node id as
// text), set by the stage actor around its encoding; "" outside that or
// when unknown. Codecs that move bulk bytes beside the message
// (actors/bulk_transfer.hpp) pick their link by it.
class DestinationScope {
 public:
  explicit DestinationScope(std::string destination);
  ~DestinationScope();
  DestinationScope(const DestinationScope&) = delete;
  DestinationScope& operator=(const DestinationScope&) = delete;

 private:
  std::string previous_;
};
const std::string& destination();

// Whole messages. encode_payload throws qerl::Error when the payload's type
// has no codec (it cannot leave its process).
std::vector<uint8_t> encode_payload(const Payload& payload);
PayloadPtr decode_payload(const uint8_t* data, size_t size, const std::string& what);

}  // namespace qerl::runtime::wire
