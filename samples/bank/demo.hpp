// The bank demo: opens accounts, runs a random mixed workload, verifies the invariants.
#pragma once

#include <cstdint>
#include <string>

#include "cafes/runtime/node.hpp"

namespace bank {

struct demo_options {
  int accounts = 200;
  int commands = 20'000;
  int workers = 16;
  std::int32_t partitions = 12;
  std::uint64_t snapshot_every = 100;
  std::uint32_t seed = 42;
  bool json = false;
};

/// Runs the demo on `node` (which hosts nothing yet). Returns 0 if the invariants hold.
int run_demo(cafes::node& node, const demo_options& o);

/// Runs the same workload over HTTP across running bank nodes ("host:port,host:port,..."),
/// command j on node j mod N, then verifies the invariants. Returns 0 if they hold.
int run_cluster_demo(const std::string& nodes, const demo_options& o);

} // namespace bank
