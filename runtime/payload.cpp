// Default Payload hooks: broadcast on shard, refuse to gather, demangled
// type names; plus the edge helpers that skip the hooks for one replica.
#include "runtime/payload.hpp"

#include <cxxabi.h>

#include <cstdlib>
#include <typeinfo>

#include "common/error.hpp"

namespace qerl::runtime {

Payload::~Payload() = default;

PayloadPtr Payload::shard(int /*index*/, int /*count*/) const { return shared_from_this(); }

PayloadPtr Payload::gather(const std::vector<PayloadPtr>& parts) const {
  throw Error("payload type " + type_name() + " cannot be gathered from " +
              std::to_string(parts.size()) + " producer replicas (it does not override " +
              "Payload::gather); run the producer with replicas = 1");
}

std::string Payload::type_name() const { return demangled_name(typeid(*this)); }

std::string demangled_name(std::type_index type) {
  const char* mangled = type.name();
  int status = 0;
  char* demangled = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string name = (status == 0 && demangled) ? demangled : mangled;
  std::free(demangled);
  return name;
}

std::string short_type_name(std::type_index type) {
  const std::string full = demangled_name(type);
  if (full.find('<') != std::string::npos) return full;
  const auto colons = full.rfind("::");
  return colons == std::string::npos ? full : full.substr(colons + 2);
}

PayloadPtr gather_parts(const std::vector<PayloadPtr>& parts) {
  if (parts.empty() || !parts.front()) throw Error("no payload to gather");
  if (parts.size() == 1) return parts.front();
  PayloadPtr whole = parts.front()->gather(parts);
  if (!whole) throw Error("payload type " + parts.front()->type_name() + ": gather returned null");
  return whole;
}

PayloadPtr shard_for(const PayloadPtr& whole, int index, int count) {
  if (count == 1) return whole;
  PayloadPtr part = whole->shard(index, count);
  if (!part) throw Error("payload type " + whole->type_name() + ": shard returned null");
  return part;
}

}  // namespace qerl::runtime
