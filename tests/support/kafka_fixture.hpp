// Helpers to open journals and snapshot stores on fresh topics of a real or embedded cluster.
#pragma once

#include <future>
#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/persistence/topics.hpp"
#include "test_env.hpp"

namespace cafes::test {

/// Appends without waiting; the future gets each event's outcome (append_sync keeps only
/// the first error).
inline std::future<append_result> append_async(journal& j, std::vector<event_envelope> batch) {
  auto done = std::make_shared<std::promise<append_result>>();
  auto f = done->get_future();
  j.append(std::move(batch), [done](append_result r) { done->set_value(std::move(r)); });
  return f;
}

/// Returns a config for the real broker (CAFES_BOOTSTRAP...) in `mode`, timeouts scaled.
inline kafka_config broker_config(journal_mode mode = journal_mode::idempotent) {
  kafka_config c;
  c.bootstrap = bootstrap();
  c.mode = mode;
  c.delivery_timeout = scaled(std::chrono::milliseconds{30'000});
  c.request_timeout = scaled(std::chrono::milliseconds{15'000});
  return c;
}

/// Returns the process-wide embedded cluster (3 brokers), started on first use. It is never
/// destroyed: its destroy would start at exit, after the sanitizers' wait for the others.
inline std::shared_ptr<embedded_cluster> shared_embedded() {
  static auto* mc = new std::shared_ptr<embedded_cluster>(embedded_cluster::start(3).value());
  return *mc;
}

/// Returns a config for the shared embedded cluster.
inline kafka_config embedded_config() {
  kafka_config c;
  c.embedded = shared_embedded();
  c.delivery_timeout = scaled(std::chrono::milliseconds{10'000});
  c.request_timeout = scaled(std::chrono::milliseconds{10'000});
  return c;
}

/// Topics of one fresh aggregate type: its names and partition count.
struct fresh_topics {
  topic_names names;
  std::int32_t partitions;
};

/// Provisions the topics of a new aggregate type with a unique namespace.
inline fresh_topics provision(const kafka_config& cfg, const std::string& what, std::int32_t partitions = 4) {
  auto ns = unique_ns(what);
  auto ok = ensure_topics(cfg, aggregate_topics(ns, "account", partitions, 1));
  INFO((ok ? std::string{} : ok.error().to_string()));
  REQUIRE(ok);
  return {topic_names::of(ns, "account"), partitions};
}

/// Opens a journal on fresh topics.
inline std::unique_ptr<journal> fresh_journal(const kafka_config& cfg, const std::string& what,
                                              std::int32_t partitions = 4) {
  auto t = provision(cfg, what, partitions);
  auto j = make_kafka_journal(cfg, t.names.events, t.partitions);
  INFO((j ? std::string{} : j.error().to_string()));
  REQUIRE(j);
  return std::move(*j);
}

} // namespace cafes::test
