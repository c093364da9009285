// A journal archive: the records of events topics as JSON lines (docs/schema-evolution.md).
//
// One record per line, in topic, partition and offset order:
//   {"topic":"bank.account.events","partition":0,"offset":3,"key":"acc-1",
//    "headers":[["ce_specversion","1.0"],...],"value":"<msgpack bytes in hex>"}
// The headers are the CloudEvents Kafka headers (text); the value is the event's msgpack map.
#pragma once

#include <fstream>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/journal.hpp"

namespace cafes::test {

inline std::string to_hex(const std::string& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

inline std::string from_hex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    throw std::invalid_argument{"not a hex digit"};
  };
  if (hex.size() % 2)
    throw std::invalid_argument{"odd number of hex digits"};
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2)
    out += static_cast<char>(nibble(hex[i]) * 16 + nibble(hex[i + 1]));
  return out;
}

/// Writes one record as a line of the archive.
inline void write_archive_line(std::ostream& os, const record& r) {
  nlohmann::ordered_json j;
  j["topic"] = r.topic;
  j["partition"] = r.partition.value();
  j["offset"] = r.off.value();
  j["key"] = r.key;
  auto hs = nlohmann::ordered_json::array();
  for (auto& h : r.headers)
    hs.push_back({h.key, h.value});
  j["headers"] = std::move(hs);
  j["value"] = r.value ? to_hex(*r.value) : nullptr;
  os << j.dump() << "\n";
}

/// Writes every event of `j` (all its partitions) to the archive, as the journal's records.
inline void write_archive(std::ostream& os, journal& j) {
  for (std::int32_t p = 0; p < j.partitions(); ++p) {
    offset from{0};
    for (;;) {
      auto c = j.read(partition_id{p}, from, 1000);
      if (!c)
        throw std::runtime_error{"cannot read " + j.topic() + ": " + c.error().to_string()};
      for (std::size_t i = 0; i < c->events.size(); ++i) {
        auto r = encode_event(c->events[i], j.topic());
        if (!r)
          throw std::runtime_error{"cannot encode an event: " + r.error().to_string()};
        r->partition = partition_id{p};
        r->off = c->offsets[i];
        write_archive_line(os, *r);
      }
      if (c->end)
        break;
      from = c->next;
    }
  }
}

/// Reads the archive's records, in order.
inline std::vector<record> read_archive(std::istream& is) {
  std::vector<record> out;
  std::string line;
  while (std::getline(is, line)) {
    if (line.empty())
      continue;
    auto j = nlohmann::json::parse(line);
    record r;
    r.topic = j.at("topic").get<std::string>();
    r.partition = partition_id{j.at("partition").get<std::int32_t>()};
    r.off = offset{j.at("offset").get<std::int64_t>()};
    r.key = j.at("key").get<std::string>();
    for (auto& h : j.at("headers"))
      r.headers.push_back({h.at(0).get<std::string>(), h.at(1).get<std::string>()});
    if (!j.at("value").is_null())
      r.value = from_hex(j.at("value").get<std::string>());
    out.push_back(std::move(r));
  }
  return out;
}

} // namespace cafes::test
