// Result lines of the benchmarks: a readable table row and one JSON object each.
#pragma once

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace bench {

/// Prints one result: a table row on stderr and a JSON line on stdout.
inline void report(const std::string& bench, const std::string& metric, double value, const std::string& unit,
                   double baseline, const nlohmann::json& params) {
  const double ratio = baseline > 0 ? value / baseline : 0.0;
  std::fprintf(stderr, "%-10s %-28s %14.1f %-8s baseline %14.1f  ratio %6.3f  %s\n", bench.c_str(), metric.c_str(),
               value, unit.c_str(), baseline, ratio, params.dump().c_str());
  nlohmann::json j{{"bench", bench},   {"metric", metric}, {"value", value},
                   {"unit", unit},     {"baseline", baseline > 0 ? nlohmann::json(baseline) : nlohmann::json(nullptr)},
                   {"ratio", baseline > 0 ? nlohmann::json(ratio) : nlohmann::json(nullptr)}, {"params", params}};
  std::printf("%s\n", j.dump().c_str());
  std::fflush(stdout);
}

/// Returns the p-quantile (0..1) of `v` (sorted in place).
inline double quantile(std::vector<double>& v, double p) {
  if (v.empty())
    return 0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

} // namespace bench
