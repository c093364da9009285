// A read model of balances kept by a projection: the example of docs/read-side.md.
#include <cstdio>
#include "account.hpp" // the bank sample's account aggregate
#include "cafes/actors/projection.hpp"
#include "cafes/runtime/node.hpp"
using namespace cafes;

struct balances final : projection_store { // balances, and beside them the position in each partition
  std::map<std::string, std::int64_t> rows, tx;
  std::map<std::pair<std::string, int>, std::int64_t> at; // (topic, partition) -> next offset
  expected<std::optional<offset>> position(const std::string& t, partition_id p) override {
    return at.count({t, p.value()}) ? std::optional{offset{at[{t, p.value()}]}} : std::nullopt;
  }
  expected<void> begin() override { return tx = rows, expected<void>{}; }
  expected<void> handle(const projected_event& e) override {
    if (auto* d = e.get<bank::deposited>()) tx[e.envelope.id.str()] += d->amount;
    return {};
  }
  expected<void> commit(const std::vector<position_advance>& moves) override {
    for (auto& m : moves) // a stale instance's batch: the partition moved on without it
      if (auto k = std::pair{m.topic, m.partition.value()}; (at.count(k) ? at[k] : -1) != m.from.value())
        return error{errc::fenced, "another instance moved " + m.topic + " on"};
    for (auto& m : moves) at[{m.topic, m.partition.value()}] = m.to.value();
    return rows = tx, expected<void>{};
  }
  void rollback() override {}
  expected<void> clear() override { return rows.clear(), at.clear(), expected<void>{}; }
};
int main() {
  node n{node_config{}}; // on the embedded cluster
  n.host<bank::account>().value();
  n.ask<bank::account>("ann", bank::open{"Ann", 0}).value();
  for (int i = 1; i <= 3; ++i) n.ask<bank::account>("ann", bank::deposit{10 * i, "d" + std::to_string(i)}).value();
  projection_options o{.name = "balances", .sources = {source_of<bank::account>(n.config().ns)}};
  auto model = std::make_shared<balances>();
  auto p = projection::into_store(n.kafka().value(), o, model).value();
  p->wait_caught_up(std::chrono::seconds{30}).value();
  p.reset(); // the projection stopped: the model is ours to read
  std::printf("ann has %lld\n", static_cast<long long>(model->rows["ann"]));
}
