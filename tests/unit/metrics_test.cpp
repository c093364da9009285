// The node's metrics, health and readiness on a memory node: commands by outcome, the
// histograms, the partition gauges, /ready while a partition recovers, /metrics and /stats over
// HTTP, and the exposition checked by Prometheus' own promtool where it is installed.
#include <cstdio>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <thread>

#include <stdlib.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <prometheus/counter.h>

#include "account.hpp"
#include "cafes/runtime/metrics.hpp"
#include "cafes/runtime/node.hpp"
#include "journal_wrappers.hpp"
#include "server.hpp"
#include "test_env.hpp"
#include "transfer.hpp"

using namespace cafes;
using namespace bank;
using cafes::test::scaled;

namespace {

node_config memory_config(bool metrics = true) {
  node_config c;
  c.storage = storage_kind::memory;
  c.ns = "mt";
  c.log_level = "warn";
  c.threads = 2;
  c.metrics = metrics;
  return c;
}

/// One sample of the text exposition: `name{k="v",...} value`.
struct sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

std::vector<sample> parse(const std::string& text) {
  std::vector<sample> out;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    sample s;
    auto brace = line.find('{');
    auto space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    s.name = line.substr(0, std::min(brace, space));
    if (brace != std::string::npos && brace < space) {
      auto close = line.rfind('}', space);
      std::string ls = line.substr(brace + 1, close - brace - 1);
      std::size_t i = 0;
      while (i < ls.size()) {
        auto eq = ls.find('=', i);
        auto q2 = ls.find('"', eq + 2);
        s.labels[ls.substr(i, eq - i)] = ls.substr(eq + 2, q2 - eq - 2);
        i = q2 + 2; // past '",'
      }
    }
    s.value = std::stod(line.substr(space + 1));
    out.push_back(std::move(s));
  }
  return out;
}

/// The value of the sample `name` whose labels include `want`; fails if there is none.
double value_of(const std::string& text, const std::string& name, std::map<std::string, std::string> want) {
  for (auto& s : parse(text)) {
    if (s.name != name)
      continue;
    bool all = true;
    for (auto& [k, v] : want)
      all = all && s.labels.count(k) && s.labels[k] == v;
    if (all)
      return s.value;
  }
  FAIL("no sample " << name << " in:\n" << text);
  return -1;
}

const std::map<std::string, std::string> acc_labels{{"namespace", "mt"}, {"type", "account"}};
std::map<std::string, std::string> with(std::string k, std::string v) {
  auto m = acc_labels;
  m[k] = v;
  return m;
}

} // namespace

TEST_CASE("metrics: commands by outcome, their latency, persists and partitions, in Prometheus' text format",
          "[metrics]") {
  node n{memory_config()};
  host_options o;
  o.partitions = 2;
  REQUIRE(n.host<account>(o));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a-1", bank::open{"ann", 0}));
  REQUIRE(n.ask<account>("a-1", deposit{50, "r1"}));
  auto refused = n.ask<account>("a-1", withdraw{80, "r2"});
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == condition::rejected);

  const auto text = n.metrics()->text();
  CHECK(text.find("# TYPE cafes_commands_total counter") != std::string::npos);
  CHECK(text.find("# TYPE cafes_command_duration_seconds histogram") != std::string::npos);
  CHECK(value_of(text, "cafes_commands_total", with("outcome", "ok")) == 2);
  CHECK(value_of(text, "cafes_commands_total", with("outcome", "rejected")) == 1);
  CHECK(value_of(text, "cafes_commands_total", with("outcome", "timeout")) == 0);
  CHECK(value_of(text, "cafes_command_duration_seconds_count", acc_labels) == 3);
  CHECK(value_of(text, "cafes_command_duration_seconds_bucket", with("le", "+Inf")) == 3);
  CHECK(value_of(text, "cafes_command_duration_seconds_sum", acc_labels) > 0);
  CHECK(value_of(text, "cafes_events_persisted_total", acc_labels) == 2);
  const auto batches = value_of(text, "cafes_persist_batch_events_count", acc_labels);
  CHECK(batches >= 1);
  CHECK(value_of(text, "cafes_persist_duration_seconds_count", acc_labels) == batches);
  CHECK(value_of(text, "cafes_persist_batch_events_sum", acc_labels) == 2);
  CHECK(value_of(text, "cafes_partitions_owned", acc_labels) == 2);
  CHECK(value_of(text, "cafes_partitions_recovering", acc_labels) == 0);
  CHECK(value_of(text, "cafes_recovery_duration_seconds_count", acc_labels) == 2);
  CHECK(value_of(text, "cafes_aggregates_resident", acc_labels) == 1);
  CHECK(value_of(text, "cafes_node_ready", {{"namespace", "mt"}}) == 1);
  CHECK(value_of(text, "cafes_node_info", {{"node", "node-1"}, {"mode", "idempotent"}}) == 1);
  // Bounded labels: no sample names an aggregate.
  CHECK(text.find("a-1") == std::string::npos);

  // The application's own metrics come out with the node's, and a collectable added for a while.
  auto& mine = prometheus::BuildCounter().Name("app_things_total").Help("Things").Register(n.metrics()->registry());
  mine.Add({}).Increment(3);
  CHECK(value_of(n.metrics()->text(), "app_things_total", {}) == 3);
}

TEST_CASE("metrics: with durations not measured, the counters still count and the histograms stay empty",
          "[metrics]") {
  node n{memory_config(false)};
  REQUIRE(n.host<account>());
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a-1", bank::open{"ann", 0}));
  const auto text = n.metrics()->text();
  CHECK(value_of(text, "cafes_commands_total", with("outcome", "ok")) == 1);
  CHECK(value_of(text, "cafes_command_duration_seconds_count", acc_labels) == 0);
  CHECK(value_of(text, "cafes_persist_duration_seconds_count", acc_labels) == 0);
  CHECK(value_of(text, "cafes_persist_batch_events_count", acc_labels) == 1);
}

TEST_CASE("metrics: a collectable added is exposed until its registration goes; the metrics outlive the node",
          "[metrics]") {
  std::shared_ptr<node_metrics> m;
  {
    node n{memory_config()};
    m = n.metrics();
    struct one final : prometheus::Collectable {
      std::vector<prometheus::MetricFamily> Collect() const override {
        prometheus::MetricFamily f{"app_extra", "an extra gauge", prometheus::MetricType::Gauge, {}};
        f.metric.emplace_back();
        f.metric.back().gauge.value = 7;
        return {f};
      }
    };
    {
      auto reg = m->add(std::make_shared<one>());
      CHECK(value_of(m->text(), "app_extra", {}) == 7);
    }
    CHECK(m->text().find("app_extra") == std::string::npos);
    CHECK(m->text().find("cafes_node_ready") != std::string::npos);
  }
  // The node stopped: its part is gone, collecting is still safe.
  CHECK(m->text().find("cafes_node_ready") == std::string::npos);
}

TEST_CASE("http: /ready is 503 while a partition recovers and 200 after; /health stays 200; /metrics and /stats",
          "[metrics][http]") {
  auto gate = std::make_shared<cafes::test::read_gate>(make_memory_journal("mt.account.events", 2));
  node n{memory_config()};
  host_options o;
  o.partitions = 2;
  o.journal = gate;
  o.snapshots = make_memory_snapshot_store(2);
  REQUIRE(n.host<account>(o));
  REQUIRE(n.host<transfer>(host_options{.partitions = 2}));
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  http_interface http{n, http_limits{}};
  const int port = http.bind(0).value();
  std::thread serving{[&] { http.listen(); }};
  httplib::Client c{"127.0.0.1", port};
  c.set_read_timeout(scaled(std::chrono::seconds{30}));

  REQUIRE(n.ask<account>("a-1", bank::open{"ann", 0}));
  auto r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 200);

  // Partition 0 is released, then taken over again while the journal's reads are held: its
  // recovery cannot finish.
  REQUIRE(n.revoke("account", 0));
  gate->close();
  auto taking = std::async(std::launch::async, [&] { return n.assign("account", 0); });
  const auto deadline = std::chrono::steady_clock::now() + scaled(std::chrono::seconds{10});
  while (gate->waiting() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  REQUIRE(gate->waiting() > 0);
  r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 503);
  auto body = nlohmann::json::parse(r->body);
  CHECK(body["ready"] == false);
  CHECK(body["reason"].get<std::string>().find("recovering") != std::string::npos);
  auto h = c.Get("/health"); // alive all along
  REQUIRE(h);
  CHECK(h->status == 200);
  auto m = c.Get("/metrics");
  REQUIRE(m);
  CHECK(m->status == 200);
  CHECK(m->get_header_value("Content-Type").find("text/plain; version=0.0.4") == 0);
  CHECK(value_of(m->body, "cafes_partitions_recovering", acc_labels) == 1);
  CHECK(value_of(m->body, "cafes_node_ready", {{"namespace", "mt"}}) == 0);
  auto s = c.Get("/stats");
  REQUIRE(s);
  auto stats = nlohmann::json::parse(s->body);
  bool seen_recovering = false;
  for (auto& p : stats["account"]["owned"])
    if (p["partition"] == 0) {
      seen_recovering = p["state"] == "recovering";
      CHECK(p["owner"] == "node-1");
    }
  CHECK(seen_recovering);

  gate->open();
  REQUIRE(taking.get());
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  r = c.Get("/ready");
  REQUIRE(r);
  CHECK(r->status == 200);
  stats = nlohmann::json::parse(c.Get("/stats")->body);
  for (auto& p : stats["account"]["owned"]) {
    CHECK(p["state"] == "ready");
    CHECK(p["epoch"].get<std::uint64_t>() >= 1);
    CHECK(p["end"].get<std::int64_t>() >= p["checkpoint"].get<std::int64_t>());
  }
  const auto text = n.metrics()->text();
  CHECK(value_of(text, "cafes_rebalances_total", with("change", "revoked")) == 1);
  CHECK(value_of(text, "cafes_handoff_duration_seconds_count", acc_labels) == 2);
  CHECK(value_of(text, "cafes_recovery_duration_seconds_count", acc_labels) == 3);
  http.stop();
  serving.join();
}

#ifdef CAFES_PROMTOOL
TEST_CASE("metrics: promtool check metrics passes on the exposition of a bank node that served commands",
          "[metrics][promtool]") {
  node n{memory_config()};
  REQUIRE(n.host<account>());
  REQUIRE(n.host<transfer>());
  REQUIRE(n.wait_ready(scaled(std::chrono::seconds{10})));
  REQUIRE(n.ask<account>("a-1", bank::open{"ann", 0}));
  REQUIRE_FALSE(n.ask<account>("a-1", withdraw{5, "x"}));
  char tmpl[] = "/tmp/cafes-metrics.XXXXXX";
  REQUIRE(::mkdtemp(tmpl));
  const auto file = std::string{tmpl} + "/metrics.txt";
  std::ofstream{file} << n.metrics()->text();
  const auto cmd = std::string{CAFES_PROMTOOL} + " check metrics < " + file + " 2>&1";
  auto* p = ::popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[512];
  while (auto k = std::fread(buf, 1, sizeof buf, p))
    out.append(buf, k);
  const int rc = ::pclose(p);
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.empty()); // promtool prints every problem it finds, even a lint one
  std::remove(file.c_str());
  ::rmdir(tmpl);
}
#endif
