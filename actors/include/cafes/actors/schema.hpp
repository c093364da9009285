// The schemas of an aggregate type's events and state, as JSON, and the gate that compares
// them with a committed copy (docs/schema-evolution.md).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cafes/actors/aggregate.hpp"
#include "cafes/actors/ops.hpp"
#include "cafes/persistence/registry.hpp"

namespace cafes {

/// The version of the schema export's layout ("format" in its JSON).
inline constexpr int schema_format_version = 1;

/// One event or state type as export_schemas sees it: its registered name, its kind ("event"
/// or "state"), the schema version this build writes, and the msgpack bytes of a
/// default-constructed value, from which its fields are derived.
struct type_sample {
  std::string name;         ///< the registered type name ("account.opened", "account.state")
  std::string kind;         ///< "event" or "state"
  std::uint32_t version = 1; ///< the schema version this build writes
  std::string sample;       ///< msgpack bytes of a default-constructed value (a map)
};

/// Renders the schemas of aggregate type `aggregate` as JSON:
/// `{"format":1,"aggregate":"account","types":[{"name":"account.opened","kind":"event",
/// "version":1,"fields":{"owner":"string","overdraft_limit":"integer"}}, ...]}`, the types
/// sorted by name, the fields by name. A field's kind is the msgpack kind of its default value
/// (nil, boolean, integer, float, string, binary, array, map, ext); a nested struct (a map)
/// is an object of its own fields. Ends with a newline.
std::string render_schemas(std::string_view aggregate, std::vector<type_sample> types);

/// Returns the JSON schemas of aggregate type A's events and state (render_schemas).
template <class A>
std::string export_schemas() {
  std::vector<type_sample> types;
  [&]<class... Es>(std::variant<Es...>*) {
    (types.push_back(type_sample{std::string{Es::type_name}, "event", version_of<Es>(), detail::pack_value(Es{})}),
     ...);
  }(static_cast<typename A::events*>(nullptr));
  types.push_back(type_sample{std::string{A::name} + ".state", "state", state_version_of<A>(),
                              detail::pack_value(typename A::state{})});
  return render_schemas(A::name, std::move(types));
}

/// How the schemas of this build differ from a committed export (compare_schemas).
struct schema_report {
  /// Changes that break reading what is journaled: a type removed, its kind changed, its
  /// fields changed without a version bump, its version lowered, or a version above 1
  /// without an upcaster from each older version (the journal may hold any of them, so this
  /// is checked even when the committed version is the current one). Each names the type and
  /// says what to do.
  std::vector<std::string> incompatible;
  /// Compatible differences: a new type, a version bumped with its upcasters. The committed
  /// export is then out of date: regenerate it.
  std::vector<std::string> changed;

  /// Returns true when nothing differs.
  bool same() const noexcept { return incompatible.empty() && changed.empty(); }
  /// Returns true when nothing incompatible changed.
  bool compatible() const noexcept { return incompatible.empty(); }
  /// Returns every difference, one per line, incompatible ones first.
  std::string to_string() const;
};

/// Compares the JSON schemas `current` (this build's export) with `committed` (an earlier
/// export), checking a bumped version's upcasters in `registry`. Fails with malformed_record
/// if either is no schema export, invalid_argument if they are of different aggregates.
expected<schema_report> compare_schemas(std::string_view committed, std::string_view current,
                                        const type_registry& registry);

/// Compares aggregate type A's schemas with the committed export `committed`, checking A's
/// upcasters (compare_schemas).
template <class A>
expected<schema_report> check_schemas(std::string_view committed) {
  auto ops = make_ops<A>();
  return compare_schemas(committed, export_schemas<A>(), ops->registry());
}

} // namespace cafes
