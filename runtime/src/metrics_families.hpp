// Building Prometheus families from a node's counters (internal to the runtime).
#pragma once

#include <array>
#include <atomic>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <prometheus/metric_family.h>

#include "cafes/actors/stats.hpp"

namespace cafes::detail {

/// Labels of one sample: name and value pairs.
using labels = std::vector<prometheus::ClientMetric::Label>;

/// Appends samples to families, one family per name (created on first use, in order).
class family_builder {
 public:
  explicit family_builder(std::vector<prometheus::MetricFamily>& out) : out_(out) {}
  /// A counter sample.
  void counter(const std::string& name, const std::string& help, labels l, double v);
  /// A gauge sample.
  void gauge(const std::string& name, const std::string& help, labels l, double v);
  /// A histogram sample of durations, in seconds.
  void histogram(const std::string& name, const std::string& help, labels l, const duration_histogram& h);
  /// A histogram sample from power-of-two buckets: bucket i counts values in [2^i, 2^(i+1)).
  template <std::size_t N>
  void pow2_histogram(const std::string& name, const std::string& help, labels l,
                      const std::array<std::atomic<std::uint64_t>, N>& buckets, double sum);

 private:
  prometheus::ClientMetric& sample(const std::string& name, const std::string& help, prometheus::MetricType t,
                                   labels l);
  std::vector<prometheus::MetricFamily>& out_;
  std::map<std::string, std::size_t> index_;
};

/// Appends the families of one hosted type's counters.
void collect_host(family_builder& b, const std::string& ns, const std::string& type, const host_stats& s);

/// Merges the families of one name into the first of them, keeping their order.
void merge_families(std::vector<prometheus::MetricFamily>& fams);

template <std::size_t N>
void family_builder::pow2_histogram(const std::string& name, const std::string& help, labels l,
                                    const std::array<std::atomic<std::uint64_t>, N>& buckets, double sum) {
  auto& m = sample(name, help, prometheus::MetricType::Histogram, std::move(l));
  std::uint64_t cum = 0;
  for (std::size_t i = 0; i < N; ++i) {
    cum += buckets[i].load(std::memory_order_relaxed);
    // Whole numbers: values below 2^(i+1) are at most 2^(i+1) - 1.
    m.histogram.bucket.push_back({cum, i + 1 < N ? static_cast<double>((std::uint64_t{2} << i) - 1)
                                                  : std::numeric_limits<double>::infinity()});
  }
  m.histogram.sample_count = cum;
  m.histogram.sample_sum = sum;
}

} // namespace cafes::detail
