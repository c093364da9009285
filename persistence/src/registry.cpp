// The type registry: names and versions to C++ types, with upcasting of older versions.
#include "cafes/persistence/registry.hpp"

#include <nlohmann/json.hpp>

#include "cafes/persistence/envelope.hpp"

namespace cafes {

expected<void> type_registry::add_entry(std::string name, entry e) {
  if (name.empty())
    return error{errc::invalid_argument, "a type needs a non-empty name"};
  if (e.version == 0)
    return error{errc::invalid_argument, "type '" + name + "' needs a version >= 1"};
  if (entries_.count(name))
    return error{errc::duplicate_type, "type name '" + name + "' is registered twice"};
  if (by_cpp_.count(e.cpp))
    return error{errc::duplicate_type, "C++ type of '" + name + "' is already registered as '" +
                                           by_cpp_.at(e.cpp) + "'"};
  by_cpp_.emplace(e.cpp, name);
  entries_.emplace(std::move(name), std::move(e));
  return {};
}

expected<void> type_registry::add_upcaster(std::string_view name, std::uint32_t from, upcaster f) {
  auto i = entries_.find(std::string{name});
  if (i == entries_.end())
    return error{errc::unknown_type, "no type '" + std::string{name} + "' to add an upcaster to"};
  if (from == 0 || from >= i->second.version)
    return error{errc::invalid_argument, "upcaster of '" + std::string{name} + "' from version " +
                                             std::to_string(from) + " must start below the current version " +
                                             std::to_string(i->second.version)};
  if (!i->second.upcasters.emplace(from, std::move(f)).second)
    return error{errc::duplicate_type, "two upcasters of '" + std::string{name} + "' from version " +
                                           std::to_string(from)};
  return {};
}

bool type_registry::has_upcaster(std::string_view name, std::uint32_t from) const {
  auto i = entries_.find(std::string{name});
  return i != entries_.end() && i->second.upcasters.count(from) > 0;
}

expected<std::uint32_t> type_registry::current_version(std::string_view name) const {
  auto i = entries_.find(std::string{name});
  if (i == entries_.end())
    return error{errc::unknown_type, "type '" + std::string{name} + "' is not registered"};
  return i->second.version;
}

expected<std::any> type_registry::decode_any(std::string_view name, std::uint32_t version,
                                             std::string_view bytes) const {
  auto i = entries_.find(std::string{name});
  if (i == entries_.end())
    return error{errc::unknown_type, "type '" + std::string{name} + "' is not registered"};
  const entry& e = i->second;
  if (version == 0 || version > e.version)
    return error{errc::unsupported_version, "type '" + std::string{name} + "' version " +
                                                std::to_string(version) + " is not supported (current " +
                                                std::to_string(e.version) + ")"};
  std::string upcast;
  if (version < e.version) {
    nlohmann::json j;
    try {
      j = nlohmann::json::from_msgpack(bytes.begin(), bytes.end());
    } catch (const std::exception& ex) {
      return error{errc::malformed_record, std::string{"cannot upcast: "} + ex.what()};
    }
    for (auto v = version; v < e.version; ++v) {
      auto u = e.upcasters.find(v);
      if (u == e.upcasters.end())
        return error{errc::unsupported_version, "type '" + std::string{name} + "' has no upcaster from version " +
                                                    std::to_string(v)};
      if (auto ok = u->second(j); !ok)
        return std::move(ok).error();
    }
    auto out = nlohmann::json::to_msgpack(j);
    upcast.assign(out.begin(), out.end());
    bytes = upcast;
  }
  try {
    const auto n = bytes.size();
    msgpack::unpack_limit limit(n, n, n, n, n, 64);
    std::size_t off = 0;
    auto oh = msgpack::unpack(bytes.data(), n, off, nullptr, nullptr, limit);
    if (oh.get().type != msgpack::type::MAP || off != n)
      return error{errc::malformed_record, "type '" + std::string{name} + "': the value is not one msgpack map"};
    return e.decode(oh.get());
  } catch (const msgpack::type_error&) {
    return error{errc::type_mismatch, "value does not match the fields of type '" + std::string{name} + "'"};
  } catch (const msgpack::insufficient_bytes&) {
    return error{errc::malformed_record, "type '" + std::string{name} + "': truncated msgpack value"};
  } catch (const std::exception& ex) {
    return error{errc::malformed_record, "type '" + std::string{name} + "': " + ex.what()};
  }
}

} // namespace cafes
