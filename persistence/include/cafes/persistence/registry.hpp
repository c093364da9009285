// The type registry: event and state types under a stable name and version, with upcasters.
#pragma once

#include <any>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <typeindex>
#include <unordered_map>

#include <msgpack.hpp>
#include <nlohmann/json_fwd.hpp>

#include "cafes/persistence/errc.hpp"

namespace cafes {

/// A value encoded for the wire: its registered name, schema version and msgpack bytes.
struct encoded_value {
  /// The registered type name.
  std::string type;
  /// The schema version.
  std::uint32_t version = 0;
  /// The value as a msgpack map.
  std::string bytes;
};

/// Rewrites a value of one schema version into the next (version v into v + 1). It sees the
/// msgpack map as JSON, so renaming, adding and converting fields is plain code. This header
/// declares nlohmann::json only: code that writes an upcaster includes <nlohmann/json.hpp>.
using upcaster = std::function<expected<void>(nlohmann::json&)>;

/// Maps C++ types to stable (name, version) pairs and back. The C++ type name never reaches
/// the wire. Register everything before sharing the registry between threads; after that it
/// is read-only and safe to use concurrently.
class type_registry {
 public:
  /// Registers T under `name` at `version` (the version this build writes). T must be
  /// msgpack-convertible (MSGPACK_DEFINE_MAP) and default-constructible. Fails with
  /// duplicate_type or invalid_argument.
  template <class T>
  expected<void> add(std::string name, std::uint32_t version = 1) {
    entry e;
    e.version = version;
    e.cpp = typeid(T);
    e.decode = [](const msgpack::object& o) -> std::any {
      T v{};
      o.convert(v);
      return std::any{std::move(v)};
    };
    return add_entry(std::move(name), std::move(e));
  }

  /// Adds the upcaster from schema version `from` to `from + 1` of type `name`.
  expected<void> add_upcaster(std::string_view name, std::uint32_t from, upcaster f);

  /// Returns the registered name of T, or unknown_type.
  template <class T>
  expected<std::string> name_of() const {
    auto i = by_cpp_.find(typeid(T));
    if (i == by_cpp_.end())
      return error{errc::unknown_type, "C++ type is not registered"};
    return i->second;
  }

  /// Encodes `v` as a msgpack map with its registered name and current version.
  template <class T>
  expected<encoded_value> encode(const T& v) const {
    auto n = name_of<T>();
    if (!n)
      return std::move(n).error();
    msgpack::sbuffer buf;
    msgpack::pack(buf, v);
    return encoded_value{*n, entries_.at(*n).version, std::string{buf.data(), buf.size()}};
  }

  /// Decodes bytes stored as (name, version) into T, upcasting older versions. Fails with
  /// unknown_type, unsupported_version, malformed_record or type_mismatch.
  template <class T>
  expected<T> decode(std::string_view name, std::uint32_t version, std::string_view bytes) const {
    auto a = decode_any(name, version, bytes);
    if (!a)
      return std::move(a).error();
    if (auto* p = std::any_cast<T>(&*a))
      return std::move(*p);
    return error{errc::type_mismatch, "type '" + std::string{name} + "' is not the requested C++ type"};
  }

  /// Decodes bytes stored as (name, version) into the registered C++ type, inside a std::any.
  expected<std::any> decode_any(std::string_view name, std::uint32_t version,
                                std::string_view bytes) const;

  /// Returns the version this build writes for `name`, or unknown_type.
  expected<std::uint32_t> current_version(std::string_view name) const;

  /// Returns true if `name` has an upcaster from schema version `from` (to `from + 1`).
  bool has_upcaster(std::string_view name, std::uint32_t from) const;

  /// Returns true if `name` is registered.
  bool contains(std::string_view name) const { return entries_.count(std::string{name}) > 0; }

 private:
  struct entry {
    std::uint32_t version = 1;
    std::type_index cpp = typeid(void);
    std::function<std::any(const msgpack::object&)> decode;
    std::map<std::uint32_t, upcaster> upcasters; // from version -> fn
  };
  expected<void> add_entry(std::string name, entry e);

  std::unordered_map<std::string, entry> entries_;
  std::unordered_map<std::type_index, std::string> by_cpp_;
};

} // namespace cafes
