// Shared by the projection tests: bank account events, an in-memory store that counts what it
// applied, and readers of whole topics.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include <catch2/catch.hpp>

#include "account.hpp"
#include "cafes/actors/projection.hpp"
#include "cafes/persistence/dead_letter.hpp"
#include "cafes/persistence/kv_table.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "kafka_fixture.hpp"

namespace cafes::test {


inline auto ops() {
  static auto o = make_ops<bank::account>();
  return o;
}

/// An account event for `id` at `seq`, encoded as the node would.
template <class E>
event_envelope env(const std::string& id, std::uint64_t seq, E e) {
  auto enc = ops()->encode_event(std::any{std::move(e)}).value();
  event_envelope x;
  x.id = aggregate_id::make(id).value();
  x.seq = seq_nr{seq};
  x.type = enc.type;
  x.schema_version = enc.version;
  x.source = "/cafes/test";
  x.payload = std::move(enc.bytes);
  return x;
}

/// Journals `accounts` accounts, each opened then given `deposits` deposits of 1..n; returns
/// the events.
inline std::vector<event_envelope> bank_events(int accounts, int deposits, int first_seq = 1, const std::string& tag = "") {
  std::vector<event_envelope> out;
  for (int a = 0; a < accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    int seq = first_seq;
    if (first_seq == 1)
      out.push_back(env(id, seq++, bank::opened{"owner-" + std::to_string(a), 0}));
    for (int d = 1; d <= deposits; ++d)
      out.push_back(env(id, seq++, bank::deposited{d, tag + "r" + std::to_string(seq)}));
  }
  return out;
}

/// A read model in memory: balances, how often each (topic, partition, offset) was applied,
/// and the positions, with a handler that can be told to fail.
struct memory_store final : projection_store {
  std::mutex mtx;
  std::map<std::pair<std::string, std::int32_t>, std::int64_t> positions;
  std::map<std::string, std::int64_t> balances;
  std::map<std::tuple<std::string, std::int32_t, std::int64_t>, int> applied;
  // the open transaction
  std::map<std::string, std::int64_t> tx_balances;
  std::vector<std::tuple<std::string, std::int32_t, std::int64_t>> tx_applied;
  std::function<expected<void>(const projected_event&)> fail; // returns an error to fail an event

  expected<std::optional<offset>> position(const std::string& topic, partition_id p) override {
    std::lock_guard g{mtx};
    auto i = positions.find({topic, p.value()});
    if (i == positions.end())
      return std::optional<offset>{};
    return std::optional<offset>{offset{i->second}};
  }
  expected<void> begin() override {
    std::lock_guard g{mtx};
    tx_balances = balances;
    tx_applied.clear();
    return {};
  }
  expected<void> handle(const projected_event& e) override {
    if (fail)
      if (auto ok = fail(e); !ok)
        return ok;
    std::lock_guard g{mtx};
    tx_applied.emplace_back(e.topic, e.partition.value(), e.off.value());
    visit_event<bank::account>(e, [&](const auto& ev) {
      using E = std::decay_t<decltype(ev)>;
      if constexpr (std::is_same_v<E, bank::deposited>)
        tx_balances[e.envelope.id.str()] += ev.amount;
      else if constexpr (std::is_same_v<E, bank::opened>)
        tx_balances[e.envelope.id.str()] += 0;
    });
    return {};
  }
  expected<void> commit(const std::vector<position_advance>& adv) override {
    std::lock_guard g{mtx};
    for (auto& a : adv) {
      auto i = positions.find({a.topic, a.partition.value()});
      auto have = i == positions.end() ? -1 : i->second;
      if (have != a.from.value())
        return error{errc::fenced, "position moved"};
    }
    for (auto& a : adv)
      positions[{a.topic, a.partition.value()}] = a.to.value();
    balances = tx_balances;
    for (auto& k : tx_applied)
      ++applied[k];
    return {};
  }
  void rollback() override {}
  expected<void> clear() override {
    std::lock_guard g{mtx};
    positions.clear();
    balances.clear();
    applied.clear();
    return {};
  }
  /// Every applied record once, and how many.
  std::pair<bool, std::size_t> once() {
    std::lock_guard g{mtx};
    for (auto& [k, n] : applied)
      if (n != 1)
        return {false, applied.size()};
    return {true, applied.size()};
  }
};

inline projection_options options(const std::string& ns, const std::string& name) {
  projection_options o;
  o.name = ns + "." + name;
  o.sources.push_back(source_of<bank::account>(ns));
  o.backoff = std::chrono::milliseconds{1};
  o.max_backoff = std::chrono::milliseconds{5};
  o.max_attempts = 3;
  return o;
}

inline std::vector<record> read_topic(const kafka_config& cfg, const std::string& topic, std::int32_t partitions) {
  std::vector<record> out;
  for (std::int32_t p = 0; p < partitions; ++p)
    REQUIRE(read_partition(cfg, topic, partition_id{p}, [&](record&& r) { out.push_back(std::move(r)); }));
  return out;
}

inline const auto caught_up = std::chrono::seconds{30};


/// The namespace of fresh topics (their events topic less ".account.events").
inline std::string ns_of(const fresh_topics& t) {
  return t.names.events.substr(0, t.names.events.size() - std::string{".account.events"}.size());
}

} // namespace cafes::test
