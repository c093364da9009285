// The node's storage: memory, or Kafka (a broker or the embedded mock cluster).
#include "storage_provider.hpp"

#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/logger.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/persistence/topics.hpp"

namespace cafes::detail {

namespace {

spdlog::logger& runtime_log() {
  static const auto log = named_logger("cafes.runtime");
  return *log;
}

class memory_storage final : public storage_provider {
 public:
  explicit memory_storage(codec_limits limits) : limits_(limits) {}

  bool durable() const noexcept override { return false; }
  std::string_view name() const noexcept override { return "memory"; }

 protected:
  expected<type_storage> open_missing(const std::string& ns, const std::string& type,
                                      const host_options& opts) override {
    type_storage st{opts.journal, opts.snapshots};
    if (!st.journal)
      st.journal = make_memory_journal(topic_names::of(ns, type).events, opts.partitions, limits_);
    if (!st.snapshots)
      st.snapshots = make_memory_snapshot_store(opts.partitions, limits_);
    return st;
  }

 private:
  codec_limits limits_;
};

class kafka_storage final : public storage_provider {
 public:
  explicit kafka_storage(kafka_config kafka) : kafka_(std::move(kafka)) {}

  bool durable() const noexcept override { return !kafka_.embedded; }
  std::string_view name() const noexcept override { return to_string(kafka_.mode); }

 protected:
  expected<type_storage> open_missing(const std::string& ns, const std::string& type,
                                      const host_options& opts) override {
    auto specs = aggregate_topics(ns, type, opts.partitions, opts.replication);
    if (opts.min_insync_replicas > 0)
      for (auto& spec : specs)
        spec.configs["min.insync.replicas"] = std::to_string(opts.min_insync_replicas);
    if (auto ok = ensure_topics(kafka_, specs); !ok)
      return std::move(ok).error();
    const auto names = topic_names::of(ns, type);
    type_storage st{opts.journal, opts.snapshots};
    if (!st.journal) {
      // No writer is opened here: each partition opens its own when it is assigned.
      auto kj = make_kafka_journal(kafka_, names.events, opts.partitions, std::vector<partition_id>{});
      if (!kj)
        return std::move(kj).error();
      st.journal = std::move(*kj);
    }
    if (!st.snapshots) {
      // In transactional mode, snapshots and checkpoints go through the journal's
      // transactional producers, so that fencing a partition fences them too.
      auto ks = make_kafka_snapshot_store(kafka_, names.snapshots, opts.partitions, transactional_writer(st.journal));
      if (!ks)
        return std::move(ks).error();
      st.snapshots = std::move(*ks);
    }
    return st;
  }

 private:
  kafka_config kafka_;
};

} // namespace

expected<std::unique_ptr<storage_provider>> choose_storage(const node_config& cfg, kafka_config& kafka) {
  if (cfg.storage == storage_kind::memory) {
    runtime_log().warn("memory storage: NOTHING IS DURABLE");
    return std::unique_ptr<storage_provider>{std::make_unique<memory_storage>(kafka.limits)};
  }
  if (cfg.bootstrap.empty()) {
    auto mc = cfg.embedded ? expected<std::shared_ptr<embedded_cluster>>{cfg.embedded}
                           : embedded_cluster::start(cfg.embedded_brokers);
    if (!mc)
      return std::move(mc).error();
    kafka.embedded = *mc;
    runtime_log().warn("no bootstrap servers: running on the embedded mock cluster at {}; NOTHING IS DURABLE",
                       kafka.embedded->bootstrap());
  }
  return std::unique_ptr<storage_provider>{std::make_unique<kafka_storage>(kafka)};
}

} // namespace cafes::detail
