// Schema export and comparison (docs/schema-evolution.md).
#include "cafes/actors/schema.hpp"

#include <algorithm>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

namespace cafes {

namespace {

using ojson = nlohmann::ordered_json;

std::string key_of(const msgpack::object& k) {
  if (k.type == msgpack::type::STR)
    return std::string{k.via.str.ptr, k.via.str.size};
  std::ostringstream os;
  os << k;
  return os.str();
}

ojson kind_of(const msgpack::object& o);

ojson fields_of(const msgpack::object& map) {
  std::map<std::string, ojson> sorted;
  for (std::uint32_t i = 0; i < map.via.map.size; ++i)
    sorted[key_of(map.via.map.ptr[i].key)] = kind_of(map.via.map.ptr[i].val);
  ojson out = ojson::object();
  for (auto& [k, v] : sorted)
    out[k] = std::move(v);
  return out;
}

ojson kind_of(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return fields_of(o);
    case msgpack::type::EXT: return "ext";
  }
  return "unknown";
}

} // namespace

std::string render_schemas(std::string_view aggregate, std::vector<type_sample> types) {
  std::sort(types.begin(), types.end(), [](auto& a, auto& b) { return a.name < b.name; });
  ojson list = ojson::array();
  for (auto& t : types) {
    ojson fields = ojson::object();
    auto oh = msgpack::unpack(t.sample.data(), t.sample.size());
    if (oh.get().type == msgpack::type::MAP)
      fields = fields_of(oh.get());
    ojson e = ojson::object();
    e["name"] = t.name;
    e["kind"] = t.kind;
    e["version"] = t.version;
    e["fields"] = std::move(fields);
    list.push_back(std::move(e));
  }
  ojson doc = ojson::object();
  doc["format"] = schema_format_version;
  doc["aggregate"] = std::string{aggregate};
  doc["types"] = std::move(list);
  return doc.dump(2) + "\n";
}

std::string schema_report::to_string() const {
  std::string out;
  for (auto& m : incompatible)
    out += "incompatible: " + m + "\n";
  for (auto& m : changed)
    out += "changed: " + m + "\n";
  return out;
}

namespace {

struct type_schema {
  std::string kind;
  std::uint32_t version = 0;
  nlohmann::json fields;
};

struct schemas {
  std::string aggregate;
  std::map<std::string, type_schema> types;
};

expected<schemas> parse(std::string_view text, std::string_view what) {
  try {
    auto j = nlohmann::json::parse(text);
    if (j.at("format").get<int>() != schema_format_version)
      return cafes::error{errc::unsupported_version, std::string{what} + ": schema format " +
                                                         j.at("format").dump() + " is not " +
                                                         std::to_string(schema_format_version)};
    schemas s;
    s.aggregate = j.at("aggregate").get<std::string>();
    for (auto& t : j.at("types"))
      s.types[t.at("name").get<std::string>()] =
        type_schema{t.at("kind").get<std::string>(), t.at("version").get<std::uint32_t>(), t.at("fields")};
    return s;
  } catch (const std::exception& ex) {
    return cafes::error{errc::malformed_record, std::string{what} + " is no schema export: " + ex.what()};
  }
}

/// The versions below `version` of type `name` that have no upcaster.
std::vector<std::uint32_t> missing_upcasters(const std::string& name, std::uint32_t version,
                                             const type_registry& registry) {
  std::vector<std::uint32_t> out;
  for (std::uint32_t v = 1; v < version; ++v)
    if (!registry.has_upcaster(name, v))
      out.push_back(v);
  return out;
}

} // namespace

expected<schema_report> compare_schemas(std::string_view committed_text, std::string_view current_text,
                                        const type_registry& registry) {
  auto committed = parse(committed_text, "the committed schemas");
  if (!committed)
    return std::move(committed).error();
  auto current = parse(current_text, "the current schemas");
  if (!current)
    return std::move(current).error();
  if (committed->aggregate != current->aggregate)
    return cafes::error{errc::invalid_argument, "the committed schemas are of aggregate '" + committed->aggregate +
                                                    "', not '" + current->aggregate + "'"};
  schema_report r;
  for (auto& [name, old] : committed->types) {
    auto i = current->types.find(name);
    const auto was = " (committed: version " + std::to_string(old.version) + ")";
    if (i == current->types.end()) {
      r.incompatible.push_back(name + ": the type is gone, but the journal may hold it" + was +
                               "; keep it registered (an old event can be upcast, never dropped)");
      continue;
    }
    auto& now = i->second;
    if (now.kind != old.kind) {
      r.incompatible.push_back(name + ": its kind changed from " + old.kind + " to " + now.kind);
      continue;
    }
    if (now.version < old.version) {
      r.incompatible.push_back(name + ": its version went back from " + std::to_string(old.version) + " to " +
                               std::to_string(now.version));
      continue;
    }
    if (now.version == old.version) {
      if (now.fields != old.fields)
        r.incompatible.push_back(name + ": its fields changed without a version bump" + was + ": was " +
                                 old.fields.dump() + ", is " + now.fields.dump() + "; give it version " +
                                 std::to_string(old.version + 1) + " and an upcaster from version " +
                                 std::to_string(old.version));
      continue;
    }
    if (missing_upcasters(name, now.version, registry).empty())
      r.changed.push_back(name + ": version " + std::to_string(old.version) + " -> " + std::to_string(now.version) +
                          ", upcast");
  }
  // Every version below the current one may be in the journal: each needs its upcaster, not
  // only those above the committed version (an upcaster removed later is caught too).
  for (auto& [name, now] : current->types) {
    auto missing = missing_upcasters(name, now.version, registry);
    if (missing.empty())
      continue;
    std::string list;
    for (auto v : missing)
      list += (list.empty() ? "" : ", ") + std::to_string(v);
    r.incompatible.push_back(name + ": version " + std::to_string(now.version) + " has no upcaster from version " +
                             list + ": what is journaled at that version would not decode");
  }
  for (auto& [name, now] : current->types)
    if (!committed->types.count(name))
      r.changed.push_back(name + ": a new " + now.kind + " type (version " + std::to_string(now.version) + ")");
  return r;
}

} // namespace cafes
