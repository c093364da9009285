// A node's metrics: its counters turned into Prometheus families at each collection.
#include "cafes/runtime/metrics.hpp"

#include <sstream>

#include <prometheus/text_serializer.h>

#include "cafes/persistence/projection.hpp"
#include "metrics_families.hpp"

namespace cafes {

namespace detail {

prometheus::ClientMetric& family_builder::sample(const std::string& name, const std::string& help,
                                                 prometheus::MetricType t, labels l) {
  auto [it, fresh] = index_.try_emplace(name, out_.size());
  if (fresh)
    out_.push_back(prometheus::MetricFamily{name, help, t, {}});
  auto& f = out_[it->second];
  f.metric.emplace_back();
  f.metric.back().label = std::move(l);
  return f.metric.back();
}

void family_builder::counter(const std::string& name, const std::string& help, labels l, double v) {
  sample(name, help, prometheus::MetricType::Counter, std::move(l)).counter.value = v;
}

void family_builder::gauge(const std::string& name, const std::string& help, labels l, double v) {
  sample(name, help, prometheus::MetricType::Gauge, std::move(l)).gauge.value = v;
}

void family_builder::histogram(const std::string& name, const std::string& help, labels l,
                               const duration_histogram& h) {
  auto& m = sample(name, help, prometheus::MetricType::Histogram, std::move(l));
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < h.buckets.size(); ++i) {
    cum += h.buckets[i].load(std::memory_order_relaxed);
    m.histogram.bucket.push_back({cum, i < h.bounds.size() ? h.bounds[i] : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cum;
  m.histogram.sample_sum = static_cast<double>(h.sum_ns.load(std::memory_order_relaxed)) / 1e9;
}

void collect_host(family_builder& b, const std::string& ns, const std::string& type, const host_stats& s) {
  const labels l{{"namespace", ns}, {"type", type}};
  auto with = [&](const char* name, std::string value) {
    auto x = l;
    x.push_back({name, std::move(value)});
    return x;
  };
  auto n = [](const std::atomic<std::uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };

  static constexpr const char* outcomes[] = {"ok", "rejected", "overloaded", "timeout", "failed"};
  static_assert(std::size(outcomes) == command_outcomes);
  for (std::size_t i = 0; i < command_outcomes; ++i)
    b.counter("cafes_commands_total", "Commands asked through this node, by how they ended", with("outcome", outcomes[i]),
              n(s.asked[i]));
  b.histogram("cafes_command_duration_seconds", "Time from a command's ask to its reply, on this node", l,
              s.command_latency);
  b.counter("cafes_commands_received_total", "Commands received by this node's partitions (routed ones included)", l,
            n(s.commands));
  b.counter("cafes_handler_rejections_total", "Commands refused by their handler (on the owning node)", l, n(s.rejections));
  b.counter("cafes_handler_failures_total", "Commands failed because handle or apply threw", l, n(s.handler_failures));

  b.counter("cafes_events_persisted_total", "Events made durable in the journal", l, n(s.events_persisted));
  b.histogram("cafes_persist_duration_seconds", "Time from a journal append's send to its acknowledgement", l,
              s.persist_latency);
  b.pow2_histogram("cafes_persist_batch_events", "Events per journal append", l, s.batch_hist, n(s.batch_events));
  b.counter("cafes_persist_failures_total", "Journal appends in which some events were not made durable", l,
            n(s.persist_failures));
  b.counter("cafes_journal_overloads_total", "Persists refused because the journal backlog was full", l, n(s.overloads));
  b.gauge("cafes_journal_backlog_events", "Events waiting in the journal actor", l, n(s.backlog));

  const auto owned = s.partitions_owned.load(), ready = s.partitions_ready.load(), failed = s.partitions_failed.load();
  b.gauge("cafes_partitions_owned", "Partitions this node owns", l, static_cast<double>(owned));
  b.gauge("cafes_partitions_recovering", "Owned partitions not serving yet (recovering)", l,
          static_cast<double>(owned > ready + failed ? owned - ready - failed : 0));
  b.gauge("cafes_partitions_failed", "Owned partitions stopped by corruption", l, static_cast<double>(failed));
  b.gauge("cafes_partitions_standby", "Partitions this node keeps a hot standby of", l, n(s.standbys));
  b.counter("cafes_rebalances_total", "Partitions taken over (assigned) or given up (revoked) by this node",
            with("change", "assigned"), n(s.assignments));
  b.counter("cafes_rebalances_total", "", with("change", "revoked"), n(s.revocations));
  b.histogram("cafes_handoff_duration_seconds", "Time to take a partition over or to release one", l, s.handoff_time);
  b.counter("cafes_partition_retakes_total", "Partitions taken over again after their writer was lost", l,
            n(s.retakes));

  b.histogram("cafes_recovery_duration_seconds", "Time from a partition's assignment to serving", l, s.recovery_time);
  b.counter("cafes_recovery_events_replayed_total", "Journal events read while recovering", l, n(s.events_replayed));
  b.counter("cafes_recovery_snapshots_read_total", "Snapshots loaded while recovering", l, n(s.snapshots_read));
  b.counter("cafes_sequence_errors_total", "Gaps or repeats found in the journal", l, n(s.sequence_errors));

  b.gauge("cafes_aggregates_resident", "Live aggregate actors", l, n(s.resident));
  b.counter("cafes_aggregates_activated_total", "Aggregate actors started for a command", l, n(s.activations));
  b.counter("cafes_aggregates_passivated_total", "Idle aggregate actors stopped", l, n(s.passivations));
  b.counter("cafes_aggregates_stopped_total", "Aggregates stopped until fixed (apply threw on a replayed event)", l,
            n(s.aggregates_stopped));

  b.counter("cafes_snapshots_written_total", "Snapshots stored", l, n(s.snapshots_written));
  b.counter("cafes_snapshots_failed_total", "Snapshots that could not be stored", l, n(s.snapshot_failures));
  b.counter("cafes_snapshots_corrupt_total", "Snapshots that did not decode", l, n(s.corrupt_snapshots));
  b.counter("cafes_checkpoints_written_total", "Partition checkpoints stored", l, n(s.checkpoints_written));
}

void merge_families(std::vector<prometheus::MetricFamily>& fams) {
  std::map<std::string, std::size_t> first;
  std::vector<prometheus::MetricFamily> out;
  for (auto& f : fams) {
    auto [it, fresh] = first.try_emplace(f.name, out.size());
    if (fresh) {
      out.push_back(std::move(f));
      continue;
    }
    auto& into = out[it->second].metric;
    into.insert(into.end(), std::make_move_iterator(f.metric.begin()), std::make_move_iterator(f.metric.end()));
  }
  fams = std::move(out);
}

} // namespace detail

metrics_registration::metrics_registration(metrics_registration&& o) noexcept
    : m_(std::move(o.m_)), id_(std::exchange(o.id_, 0)) {}

metrics_registration& metrics_registration::operator=(metrics_registration&& o) noexcept {
  if (this != &o) {
    reset();
    m_ = std::move(o.m_);
    id_ = std::exchange(o.id_, 0);
  }
  return *this;
}

metrics_registration::~metrics_registration() { reset(); }

void metrics_registration::reset() noexcept {
  if (auto m = m_.lock(); m && id_ != 0)
    m->remove(id_);
  m_.reset();
  id_ = 0;
}

node_metrics::node_metrics(source node_part)
    : node_part_(std::move(node_part)), registry_(std::make_shared<prometheus::Registry>()) {}

std::vector<prometheus::MetricFamily> node_metrics::Collect() const {
  std::vector<prometheus::MetricFamily> fams;
  std::lock_guard guard{mtx_};
  if (node_part_)
    node_part_(fams);
  auto own = registry_->Collect();
  fams.insert(fams.end(), std::make_move_iterator(own.begin()), std::make_move_iterator(own.end()));
  for (auto& [id, c] : added_) {
    auto more = c->Collect();
    fams.insert(fams.end(), std::make_move_iterator(more.begin()), std::make_move_iterator(more.end()));
  }
  detail::merge_families(fams);
  return fams;
}

std::string node_metrics::text() const {
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, Collect());
  return out.str();
}

void node_metrics::detach() noexcept {
  std::lock_guard guard{mtx_};
  node_part_ = nullptr;
}

metrics_registration node_metrics::add(std::shared_ptr<const prometheus::Collectable> c) {
  std::lock_guard guard{mtx_};
  added_.emplace_back(++next_id_, std::move(c));
  return metrics_registration{weak_from_this(), next_id_};
}

void node_metrics::remove(std::uint64_t id) noexcept {
  std::lock_guard guard{mtx_};
  std::erase_if(added_, [id](auto& e) { return e.first == id; });
}

namespace {

class projection_collectable final : public prometheus::Collectable {
 public:
  projection_collectable(std::string name, const projection& p) : name_(std::move(name)), p_(p) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> fams;
    detail::family_builder b{fams};
    const detail::labels l{{"projection", name_}};
    for (auto& lag : p_.lag())
      b.gauge("cafes_projection_lag_events", "Events a projection has not handled yet, per source partition",
              {{"projection", name_}, {"topic", lag.topic}, {"partition", std::to_string(lag.partition.value())}},
              static_cast<double>(lag.lag()));
    const auto s = p_.stats();
    b.counter("cafes_projection_events_total", "Events a projection handled and committed", l,
              static_cast<double>(s.handled));
    b.counter("cafes_projection_batches_total", "Batches a projection committed", l, static_cast<double>(s.batches));
    b.counter("cafes_projection_retries_total", "Handler attempts a projection repeated", l,
              static_cast<double>(s.retries));
    b.counter("cafes_projection_dead_letters_total", "Records a projection sent to a dead-letter topic", l,
              static_cast<double>(s.dead_letters));
    b.counter("cafes_projection_rebalances_total", "Assignments and revocations of a projection's partitions", l,
              static_cast<double>(s.rebalances));
    b.counter("cafes_projection_aborts_total", "Batches a projection gave up and read again", l,
              static_cast<double>(s.aborted));
    b.gauge("cafes_projection_failed", "1 once a projection stopped on an error", l, p_.failure() ? 1 : 0);
    return fams;
  }

 private:
  std::string name_;
  const projection& p_;
};

} // namespace

std::shared_ptr<const prometheus::Collectable> projection_metrics(std::string name, const projection& p) {
  return std::make_shared<projection_collectable>(std::move(name), p);
}

} // namespace cafes
