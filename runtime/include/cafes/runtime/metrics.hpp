// A node's metrics in Prometheus' data model: what node::metrics() gives the application.
#pragma once

#include <functional>
#include <memory>
#include <cstdint>
#include <mutex>
#include <utility>
#include <string>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

namespace cafes {

class projection;
class node_metrics;

/// Keeps a collectable added to a node's metrics (node_metrics::add) exposed: destroying it
/// (or reset()) removes it, after any collection in progress finished, so that what the
/// collectable reads may be destroyed right after.
class metrics_registration {
 public:
  /// Exposes nothing.
  metrics_registration() = default;
  /// Takes the registration over.
  metrics_registration(metrics_registration&& o) noexcept;
  /// Removes the current one, then takes `o`'s over.
  metrics_registration& operator=(metrics_registration&& o) noexcept;
  /// Removes the collectable.
  ~metrics_registration();
  /// Removes the collectable now.
  void reset() noexcept;

 private:
  friend class node_metrics;
  metrics_registration(std::weak_ptr<node_metrics> m, std::uint64_t id) : m_(std::move(m)), id_(id) {}
  std::weak_ptr<node_metrics> m_;
  std::uint64_t id_ = 0;
};

/// The metrics of one node (docs/operations.md lists them): counters, gauges and histograms
/// named `cafes_*`, labelled by namespace and aggregate type, read from the node's counters at
/// each collection. It is a prometheus-cpp Collectable: register it with a prometheus::Exposer,
/// or serve text() from the application's own HTTP server (the bank serves `/metrics`).
/// Collecting is safe from any thread and costs the node nothing between collections.
class node_metrics final : public prometheus::Collectable, public std::enable_shared_from_this<node_metrics> {
 public:
  /// What a node adds at each collection: it appends its families.
  using source = std::function<void(std::vector<prometheus::MetricFamily>&)>;

  /// Metrics whose node part comes from `node_part` (node::metrics() builds it).
  explicit node_metrics(source node_part);

  /// Returns the node's families, then the registry's, then those of each collectable added
  /// and still alive; families of one name are merged into one.
  std::vector<prometheus::MetricFamily> Collect() const override;

  /// Returns Collect() in Prometheus' text exposition format (version 0.0.4): the body of a
  /// `/metrics` answer, with content type `text/plain; version=0.0.4`.
  std::string text() const;

  /// Returns a registry for the application's own metrics, exposed with the node's.
  prometheus::Registry& registry() noexcept { return *registry_; }

  /// Stops calling the node part (the node calls it when it stops), after any collection in
  /// progress finished: the node's families are then no longer collected.
  void detach() noexcept;

  /// Exposes `c`'s families with the node's (for example what projection_metrics returns)
  /// until the registration is destroyed.
  [[nodiscard]] metrics_registration add(std::shared_ptr<const prometheus::Collectable> c);

 private:
  friend class metrics_registration;
  void remove(std::uint64_t id) noexcept;
  source node_part_;
  std::shared_ptr<prometheus::Registry> registry_;
  mutable std::mutex mtx_; // held while the added collectables are collected
  std::uint64_t next_id_ = 0;
  std::vector<std::pair<std::uint64_t, std::shared_ptr<const prometheus::Collectable>>> added_;
};

/// Returns a collectable of projection `p`, named `name` in the label `projection`:
/// `cafes_projection_lag_events` (events behind, per topic and partition it holds) and the
/// counters of projection::stats(). It reads `p` at each collection: add it to a node's
/// metrics with node_metrics::add, and destroy the registration before `p`.
std::shared_ptr<const prometheus::Collectable> projection_metrics(std::string name, const projection& p);

} // namespace cafes
