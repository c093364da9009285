// cafes_bench: persist, recovery, memory, hot-aggregate, embedded, hand-off, routing, projection, metrics and start-up
// benchmarks, each beside its baseline (raw librdkafka, or local commands) measured in the same run.
#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "bench_model.hpp"
#include "cafes/actors/projection.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/persistence/topics.hpp"
#include "cafes/runtime/metrics.hpp"
#include "cafes/runtime/node.hpp"
#include "raw_baseline.hpp"
#include "projection_bench.hpp"
#include "raw_startup.hpp"
#include "report.hpp"

using namespace bench;

namespace {

struct options {
  std::string bootstrap;
  bool smoke = false;
  double seconds = 3.0;
  double warmup = 0.5;
  std::string plot_data;
  std::size_t in_flight = 4;
  std::vector<int> aggregates, concurrency;
  std::string modes = "both";
  int repeat = 3;
  int runs = 15;
  bool verbose = false;
};

std::string unique_ns(const char* what) {
  return std::string{"bench-"} + what + "-" + std::to_string(std::random_device{}() % 1000000);
}

/// Returns agg-0 .. agg-(count-1).
std::vector<std::string> agg_ids(int count) {
  std::vector<std::string> ids;
  for (int i = 0; i < count; ++i)
    ids.push_back("agg-" + std::to_string(i));
  return ids;
}

/// Drives `k` closed-loop clients sending `c` to aggregates of type A picked from `ids` for a
/// while; returns the figures.
template <class A, class C = bump>
loop_result cafes_loop(cafes::node& n, std::vector<std::string> ids, int k, double seconds, double warmup,
                       C command = bump{payload()}) {
  struct shared {
    std::mutex mtx;
    std::vector<double> lat;
    std::uint64_t done = 0;
    std::uint64_t errors = 0;
    std::promise<void> finished;
    std::atomic<int> running{0};
  };
  auto sh = std::make_shared<shared>();
  auto router = n.router<A>().value();
  auto t0 = clock_type::now();
  auto measure_from = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(warmup));
  auto end = measure_from + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(seconds));
  auto pool = std::make_shared<const std::vector<std::string>>(std::move(ids));
  sh->running = k;
  for (int c = 0; c < k; ++c) {
    n.system().spawn([=](caf::event_based_actor* self) {
      auto rng = std::make_shared<std::mt19937>(static_cast<unsigned>(c) * 7919u + 1);
      auto lat = std::make_shared<std::vector<double>>();
      auto count = std::make_shared<std::uint64_t>(0);
      auto errors = std::make_shared<std::uint64_t>(0);
      auto issue = std::make_shared<std::function<void()>>();
      *issue = [=] {
        auto started = clock_type::now();
        const auto& id = (*pool)[(*rng)() % pool->size()];
        self->request(router, std::chrono::seconds{60}, cafes::make_command<A>(id, command))
          .then(
            [=](cafes::command_reply& r) {
              auto now = clock_type::now();
              if (r.err)
                ++*errors;
              else if (now >= measure_from) {
                lat->push_back(std::chrono::duration<double, std::milli>(now - started).count());
                ++*count;
              }
              if (now < end)
                return (*issue)();
              std::lock_guard guard{sh->mtx};
              sh->lat.insert(sh->lat.end(), lat->begin(), lat->end());
              sh->done += *count;
              sh->errors += *errors;
              if (--sh->running == 0)
                sh->finished.set_value();
              self->quit();
            },
            [=](caf::error&) {
              std::lock_guard guard{sh->mtx};
              ++sh->errors;
              if (--sh->running == 0)
                sh->finished.set_value();
              self->quit();
            });
      };
      (*issue)();
    });
  }
  sh->finished.get_future().wait();
  loop_result r;
  r.ops_per_s = static_cast<double>(sh->done) / seconds;
  r.latencies_ms = std::move(sh->lat);
  r.errors = sh->errors;
  return r;
}

cafes::node_config config_of(const std::string& bootstrap, const std::string& ns, cafes::journal_mode mode) {
  cafes::node_config c;
  c.bootstrap = bootstrap;
  c.ns = ns;
  c.mode = mode;
  c.log_level = "warn";
  c.command_timeout = std::chrono::seconds{60};
  return c;
}

std::unique_ptr<cafes::node> start_node(const std::string& bootstrap, const std::string& ns,
                                        cafes::journal_mode mode = cafes::journal_mode::idempotent,
                                        cafes::storage_kind storage = cafes::storage_kind::kafka) {
  auto c = config_of(bootstrap, ns, mode);
  c.storage = storage;
  return cafes::node::start(c).value();
}

/// Starts node `name` of a namespace that several nodes share and hosts counter on it, on the
/// transactional journal: the one cluster mode needs, and the ownership seam it drives.
std::unique_ptr<cafes::node> start_peer(const options& o, const std::string& ns, const char* name, bool cluster,
                                        const cafes::host_options& h) {
  auto c = config_of(o.bootstrap, ns, cafes::journal_mode::transactional);
  c.node_name = name;
  c.cluster = cluster;
  auto n = cafes::node::start(c).value();
  n->host<counter>(h).value();
  return n;
}

std::vector<cafes::record> records_for(const std::string& topic, std::int32_t partitions, int aggregates) {
  std::vector<cafes::record> recs;
  for (int i = 0; i < std::max(aggregates, 64); ++i)
    recs.push_back(make_record(topic, partitions, "agg-" + std::to_string(i % aggregates), 1 + static_cast<std::uint64_t>(i / aggregates), "\x81\xa4" "data\xd9\x5a" + payload()));
  return recs;
}

void report_loop(const std::string& bench, const loop_result& ours, const loop_result& raw, nlohmann::json params,
                 bool events_equal_commands = true) {
  auto a = ours.latencies_ms, b = raw.latencies_ms;
  report(bench, "events/s", ours.ops_per_s, "events/s", raw.ops_per_s, params);
  if (events_equal_commands)
    report(bench, "commands/s", ours.ops_per_s, "cmd/s", 0, params);
  report(bench, "latency p50", quantile(a, 0.5), "ms", quantile(b, 0.5), params);
  report(bench, "latency p99", quantile(a, 0.99), "ms", quantile(b, 0.99), params);
  report(bench, "latency p999", quantile(a, 0.999), "ms", quantile(b, 0.999), params);
}

// 1. Persist: aggregates x concurrency, idempotent and transactional, beside the raw producer.
void persist(const options& o) {
  std::vector<int> aggs = o.smoke ? std::vector<int>{100} : std::vector<int>{1, 100, 10000};
  std::vector<int> ks = o.smoke ? std::vector<int>{16} : std::vector<int>{1, 4, 16, 64, 256};
  if (!o.aggregates.empty())
    aggs = o.aggregates;
  if (!o.concurrency.empty())
    ks = o.concurrency;
  std::ofstream plot;
  if (!o.plot_data.empty())
    plot.open(o.plot_data);
  for (auto mode : {cafes::journal_mode::idempotent, cafes::journal_mode::transactional}) {
    if (o.modes != "both" && o.modes != cafes::to_string(mode))
      continue;
    auto ns = unique_ns("persist");
    auto n = start_node(o.bootstrap, ns, mode);
    cafes::host_options h;
    h.partitions = 12;
    h.batching.max_in_flight = o.in_flight;
    n->host<counter>(h).value();
    n->wait_ready(std::chrono::seconds{60}).value();
    if (mode == cafes::journal_mode::transactional)
      cafes_loop<counter>(*n, agg_ids(1000), 64, 0.1, o.smoke ? 1.0 : 5.0); // first commits (~1 s each) out of the way
    auto topic = cafes::topic_names::of(ns, "counter").events;
    for (int a : aggs)
      for (int k : ks) {
        if (a == 1 && k > 1 && !o.smoke)
          continue; // one aggregate: the hot-aggregate bench covers concurrency
        if (mode == cafes::journal_mode::transactional && k != 64 && k != 16)
          continue; // transactions: the two most telling points, to keep the run short
        auto recs = records_for(topic, 12, a);
        auto ours = cafes_loop<counter>(*n, agg_ids(a), k, o.seconds, o.warmup);
        auto raw = mode == cafes::journal_mode::idempotent
                     ? raw_idempotent(o.bootstrap, recs, k, o.seconds, o.warmup)
                     : raw_transactional(o.bootstrap, recs, k, o.seconds, ns + ".raw-tx");
        nlohmann::json params{{"mode", cafes::to_string(mode)}, {"aggregates", a}, {"concurrency", k},
                              {"event_bytes", 100}, {"batches_in_flight", o.in_flight}};
        report_loop("persist", ours, raw, params);
        if (plot && mode == cafes::journal_mode::idempotent && a == 100) {
          auto x = ours.latencies_ms, y = raw.latencies_ms;
          plot << k << " " << ours.ops_per_s << " " << raw.ops_per_s << " " << quantile(x, 0.5) << " "
               << quantile(x, 0.99) << " " << quantile(x, 0.999) << " " << quantile(y, 0.5) << " " << quantile(y, 0.99)
               << " " << quantile(y, 0.999) << "\n";
        }
      }
  }
}

// 2. Recovery: one partition with many events, with and without snapshots.
void recovery(const options& o) {
  const int events = o.smoke ? 20'000 : 1'000'000;
  const int aggregates = o.smoke ? 200 : 10'000;
  auto ns = unique_ns("recovery");
  cafes::kafka_config kc;
  kc.bootstrap = o.bootstrap;
  cafes::ensure_topics(kc, cafes::aggregate_topics(ns, "counter", 1, 1)).value();
  auto names = cafes::topic_names::of(ns, "counter");
  {
    auto conf = raw_conf(o.bootstrap, {{"enable.idempotence", "true"}, {"linger.ms", "20"}});
    std::string err;
    std::unique_ptr<RdKafka::Producer> p{RdKafka::Producer::create(conf.get(), err)};
    const std::string value = "\x81\xa4" "data\xd9\x5a" + payload();
    for (int i = 0; i < events; ++i) {
      auto r = make_record(names.events, 1, "agg-" + std::to_string(i % aggregates),
                           1 + static_cast<std::uint64_t>(i / aggregates), value);
      while (produce_record(*p, r, nullptr) == RdKafka::ERR__QUEUE_FULL)
        p->poll(10);
      p->poll(0);
    }
    p->flush(120'000);
  }
  auto [raw_rate, raw_n] = raw_consume(o.bootstrap, names.events, 0);
  auto recover = [&](const char* label, std::uint64_t max_replay) {
    auto t0 = clock_type::now();
    auto n = start_node(o.bootstrap, ns);
    cafes::host_options h;
    h.partitions = 1;
    h.max_replay = max_replay;
    h.snapshot_every = 1'000'000'000;
    n->host<counter>(h).value();
    n->wait_ready(std::chrono::minutes{10}).value();
    auto secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    auto replayed = n->stats("counter")->events_replayed.load();
    nlohmann::json params{{"events", events}, {"aggregates", aggregates}, {"snapshots", label}};
    report("recovery", "time to ready", secs, "s", static_cast<double>(raw_n) / raw_rate, params);
    report("recovery", "events replayed/s", static_cast<double>(replayed) / secs, "events/s", raw_rate, params);
    report("recovery", "events replayed", static_cast<double>(replayed), "events", 0, params);
  };
  recover("none", 1'000'000'000);
  // Snapshots of every aggregate after 90% of the events, and the checkpoint there.
  {
    auto store = cafes::make_kafka_snapshot_store(kc, names.snapshots, 1).value();
    auto ops = cafes::make_ops<counter>();
    const int covered = events / 10 * 9;
    std::vector<std::future<cafes::expected<void>>> saves;
    for (int a = 0; a < aggregates && a < covered; ++a) {
      const int count = (covered - a + aggregates - 1) / aggregates;
      auto enc = ops->encode_state(std::any{counter::state{static_cast<std::uint64_t>(count)}}).value();
      cafes::snapshot snap{cafes::aggregate_id::make("agg-" + std::to_string(a)).value(),
                           cafes::seq_nr{static_cast<std::uint64_t>(count)},
                           cafes::offset{a + static_cast<std::int64_t>(count - 1) * aggregates}, enc.type, enc.version,
                           enc.bytes};
      auto done = std::make_shared<std::promise<cafes::expected<void>>>();
      saves.push_back(done->get_future());
      store->save(std::move(snap), [done](cafes::expected<void> r) { done->set_value(std::move(r)); });
    }
    for (auto& f : saves)
      f.get().value();
    store->save_checkpoint(cafes::partition_id{0}, cafes::offset{covered}).value();
  }
  recover("90% covered", 1'000'000'000);
}

/// Sends command `c` to agg-0 .. agg-(count-1), 1024 at a time, and waits for every reply.
template <class C>
void command_all(cafes::node& n, int count, const C& c) {
  std::vector<std::future<cafes::expected<std::uint64_t>>> window;
  for (int i = 0; i < count; ++i) {
    window.push_back(n.ask_async<counter>("agg-" + std::to_string(i), c));
    if (window.size() == 1024) {
      for (auto& f : window)
        f.get().value();
      window.clear();
    }
  }
  for (auto& f : window)
    f.get().value();
}

// 3. Memory: resident aggregates, RSS per aggregate beyond its 8-byte state.
std::size_t rss_bytes() {
  std::ifstream f{"/proc/self/statm"};
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

void memory(const options& o) {
  std::vector<int> sizes = o.smoke ? std::vector<int>{2'000} : std::vector<int>{100'000, 1'000'000};
  for (int count : sizes) {
    auto n = start_node("", unique_ns("memory"), cafes::journal_mode::idempotent, cafes::storage_kind::memory);
    cafes::host_options h;
    h.partitions = 12;
    h.idle_timeout = std::chrono::hours{1};
    h.max_resident = 100'000'000;
    n->host<counter>(h).value();
    n->wait_ready(std::chrono::seconds{60}).value();
    const auto before = rss_bytes();
    command_all(*n, count, touch{});
    const auto after = rss_bytes();
    const double per = static_cast<double>(after - before) / count - sizeof(counter::state);
    report("memory", "RSS per resident aggregate", per, "bytes", 1024, {{"aggregates", count}});
    report("memory", "resident aggregates", static_cast<double>(n->stats("counter")->resident.load()), "actors", 0,
           {{"aggregates", count}});
  }
}

// 4. Hot aggregate: one aggregate, many concurrent commands, stashing versus pipelining.
void hot(const options& o) {
  auto ns = unique_ns("hot");
  auto n = start_node(o.bootstrap, ns);
  n->host<counter>({.partitions = 1}).value();
  n->host<pcounter>({.partitions = 1}).value();
  n->wait_ready(std::chrono::seconds{60}).value();
  const int k = 64;
  auto recs = records_for(cafes::topic_names::of(ns, "counter").events, 1, 1);
  auto raw = raw_idempotent(o.bootstrap, recs, k, o.seconds, o.warmup);
  auto stash = cafes_loop<counter>(*n, agg_ids(1), k, o.seconds, o.warmup);
  auto pipe = cafes_loop<pcounter>(*n, agg_ids(1), k, o.seconds, o.warmup);
  report("hot", "commands/s stashing", stash.ops_per_s, "cmd/s", raw.ops_per_s, {{"aggregates", 1}, {"concurrency", k}});
  report("hot", "commands/s pipelined", pipe.ops_per_s, "cmd/s", raw.ops_per_s, {{"aggregates", 1}, {"concurrency", k}});
}

// 5. Embedded mock cluster beside the real broker (for information).
void embedded(const options& o) {
  const int k = 64, a = 100;
  auto real = start_node(o.bootstrap, unique_ns("real"));
  real->host<counter>({.partitions = 12}).value();
  real->wait_ready(std::chrono::seconds{60}).value();
  auto on_real = cafes_loop<counter>(*real, agg_ids(a), k, o.seconds, o.warmup);
  real.reset();
  auto emb = start_node("", unique_ns("emb"));
  emb->host<counter>({.partitions = 12}).value();
  emb->wait_ready(std::chrono::seconds{60}).value();
  auto on_emb = cafes_loop<counter>(*emb, agg_ids(a), k, o.seconds, o.warmup);
  report("embedded", "events/s embedded", on_emb.ops_per_s, "events/s", on_real.ops_per_s,
         {{"aggregates", a}, {"concurrency", k}, {"baseline", "cafes on the real broker"}});
}

// Waits until node n's standbys have read what was written: their event count stays the
// same for a second (they read every 200 ms).
void settle_standby(cafes::node& n) {
  auto last = n.stats("counter")->standby_events.load();
  for (auto still = clock_type::now();;) {
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
    auto now = n.stats("counter")->standby_events.load();
    if (now != last) {
      last = now;
      still = clock_type::now();
    } else if (clock_type::now() - still > std::chrono::seconds{1}) {
      return;
    }
  }
}

// 6. Hand-off and failover of one partition with many resident aggregates between two nodes
// (transactional journal, the seam cluster mode drives), beside a raw consumer reading the
// whole partition once.
void handoff(const options& o) {
  const int aggregates = o.smoke ? 500 : 10'000;
  auto ns = unique_ns("handoff");
  cafes::host_options h;
  h.partitions = 1;
  h.assign_all = false;
  h.idle_timeout = std::chrono::hours{1};
  auto a = start_peer(o, ns, "node-a", false, h);
  auto b = start_peer(o, ns, "node-b", false, h);
  // Every aggregate resident on node-a with three events (a third of them unsnapshotted).
  a->assign("counter", 0).value();
  a->wait_ready(std::chrono::minutes{2}).value();
  const auto data = payload();
  for (int round = 0; round < 3; ++round)
    command_all(*a, aggregates, bump{data});
  auto [raw_rate, raw_n] = raw_consume(o.bootstrap, cafes::topic_names::of(ns, "counter").events, 0);
  const double raw_secs = static_cast<double>(raw_n) / raw_rate;
  nlohmann::json params{{"aggregates", aggregates}, {"events", 3 * aggregates}, {"standby", false}};
  auto first_command = [&](cafes::node& n) {
    auto t0 = clock_type::now();
    n.ask<counter>("agg-0", touch{}).value();
    return std::chrono::duration<double>(clock_type::now() - t0).count();
  };
  // Graceful: node-a releases (drains, snapshots, stores its checkpoint), node-b takes over.
  auto t0 = clock_type::now();
  a->revoke("counter", 0).value();
  auto released = clock_type::now();
  b->assign("counter", 0).value();
  b->wait_ready(std::chrono::minutes{2}).value();
  auto ready = clock_type::now();
  const double first_b = first_command(*b);
  const auto replayed = b->stats("counter")->events_replayed.load();
  report("handoff", "graceful release", std::chrono::duration<double>(released - t0).count(), "s", raw_secs, params);
  report("handoff", "graceful takeover to ready", std::chrono::duration<double>(ready - released).count(), "s",
         raw_secs, params);
  report("handoff", "graceful hand-off total", std::chrono::duration<double>(ready - t0).count() + first_b, "s",
         raw_secs, params);
  report("handoff", "events replayed (graceful)", static_cast<double>(replayed), "events", 0, params);
  // Failover: node-b stops answering without a release; node-a takes the partition over
  // (fencing node-b). The group's detection (the session timeout) comes on top.
  command_all(*b, aggregates, bump{data}); // dirty again, never snapshotted by a release
  t0 = clock_type::now();
  a->assign("counter", 0).value();
  a->wait_ready(std::chrono::minutes{2}).value();
  ready = clock_type::now();
  const double first_a = first_command(*a);
  report("handoff", "failover takeover to first reply", std::chrono::duration<double>(ready - t0).count() + first_a,
         "s", raw_secs, {{"aggregates", aggregates}, {"detection", "plus the session timeout"}});

  // The same two with a hot standby: node-c has kept the partition warm since it started.
  auto c = start_peer(o, ns, "node-c", false, h);
  c->standby("counter", 0).value();
  command_all(*a, aggregates, bump{data}); // dirty: the standby tails these
  settle_standby(*c);
  nlohmann::json with{{"aggregates", aggregates}, {"standby", true}};
  t0 = clock_type::now();
  a->revoke("counter", 0).value();
  released = clock_type::now();
  c->assign("counter", 0).value();
  c->wait_ready(std::chrono::minutes{2}).value();
  ready = clock_type::now();
  const double first_c = first_command(*c);
  report("handoff", "graceful takeover to ready, standby", std::chrono::duration<double>(ready - released).count(),
         "s", raw_secs, with);
  report("handoff", "graceful hand-off total, standby", std::chrono::duration<double>(ready - t0).count() + first_c,
         "s", raw_secs, with);
  report("handoff", "events replayed (graceful, standby)", static_cast<double>(c->stats("counter")->events_replayed),
         "events", 0, with);
  // Failover onto a standby: node-b gives up its fenced partition and keeps it warm instead.
  b->revoke("counter", 0).value();
  b->standby("counter", 0).value();
  command_all(*c, aggregates, bump{data}); // dirty again, never snapshotted by a release
  settle_standby(*b);
  const auto before = b->stats("counter")->events_replayed.load();
  t0 = clock_type::now();
  b->assign("counter", 0).value();
  b->wait_ready(std::chrono::minutes{2}).value();
  ready = clock_type::now();
  const double first_b2 = first_command(*b);
  report("handoff", "failover takeover to first reply, standby",
         std::chrono::duration<double>(ready - t0).count() + first_b2, "s", raw_secs,
         {{"aggregates", aggregates}, {"standby", true}, {"detection", "plus the session timeout"}});
  report("handoff", "events replayed (failover, standby)",
         static_cast<double>(b->stats("counter")->events_replayed.load() - before), "events", 0, with);
}

// 7. Routed: both nodes in cluster mode on one broker, sharing the partitions. Node A gets
// every command: those for aggregates of its own partitions it serves itself (the baseline),
// those of B's it forwards to B's gateway. Throughput with K commands in flight, and the
// latency of one command at a time, each side measured `repeat` times, alternating.
void routed(const options& o) {
  constexpr std::int32_t partitions = 12;
  const int per_side = o.aggregates.empty() ? 100 : o.aggregates.front();
  const int k = o.concurrency.empty() ? 16 : o.concurrency.front();
  const int repeat = o.smoke ? 1 : o.repeat;
  auto ns = unique_ns("routed");
  cafes::host_options h;
  h.partitions = partitions;
  auto a = start_peer(o, ns, "node-a", true, h);
  auto b = start_peer(o, ns, "node-b", true, h);
  a->wait_ready(std::chrono::minutes{2}).value();
  b->wait_ready(std::chrono::minutes{2}).value();
  auto serving = [](cafes::node& n) {
    std::set<std::int32_t> out;
    const auto owned = n.owned("counter").value();
    for (auto& p : owned)
      if (p.ready)
        out.insert(p.partition);
    return out;
  };
  // Settled: every partition serves on exactly one node, and each node has some.
  std::set<std::int32_t> on_a, on_b;
  const auto give_up = clock_type::now() + std::chrono::minutes{2};
  for (;; std::this_thread::sleep_for(std::chrono::milliseconds{50})) {
    on_a = serving(*a);
    on_b = serving(*b);
    auto all = on_a;
    all.insert(on_b.begin(), on_b.end());
    if (!on_a.empty() && !on_b.empty() && all.size() == partitions && on_a.size() + on_b.size() == partitions)
      break;
    if (clock_type::now() > give_up)
      throw std::runtime_error("routed: the two nodes did not share the partitions within 2 minutes");
  }
  std::vector<std::string> ids[2]; // local (A's partitions), routed (B's)
  int scanned = 0;
  for (; static_cast<int>(ids[0].size() + ids[1].size()) < 2 * per_side; ++scanned) {
    auto id = "agg-" + std::to_string(scanned);
    auto& side = ids[on_a.count(cafes::partition_for(id, partitions).value()) ? 0 : 1];
    if (static_cast<int>(side.size()) < per_side)
      side.push_back(std::move(id));
  }
  // Every partition's first transaction, A's connection to B's gateway and A's view of the
  // directory out of the way (the forwarder retries until it knows B's partitions).
  command_all(*a, scanned, bump{payload()});
  const auto retries = a->routing_counters().retries;
  const double secs = o.seconds / repeat;
  auto measure = [&](const char* kind, auto command) {
    std::vector<double> rate[2], lat[2];
    for (int r = 0; r < repeat; ++r)
      for (int i = 0; i < 2; ++i) {
        const int side = (i + r) % 2;
        const auto sent = a->routing_counters().forwarded;
        auto many = cafes_loop<counter>(*a, ids[side], k, secs, o.warmup, command);
        auto one = cafes_loop<counter>(*a, ids[side], 1, secs, o.warmup, command);
        const std::string what = std::string{side ? "routed " : "local "} + kind + " commands";
        if (many.errors + one.errors > 0)
          throw std::runtime_error("routed: " + what + " failed");
        if ((a->routing_counters().forwarded > sent) != (side == 1))
          throw std::runtime_error("routed: " + what + (side ? " were not forwarded" : " were forwarded"));
        rate[side].push_back(many.ops_per_s);
        lat[side].insert(lat[side].end(), one.latencies_ms.begin(), one.latencies_ms.end());
      }
    nlohmann::json params{{"command", kind},  {"aggregates_per_side", per_side}, {"partitions", partitions},
                          {"repeat", repeat}, {"seconds", secs},                 {"baseline", "local on node A"}};
    auto with_k = params;
    with_k["concurrency"] = k;
    report("routed", "commands/s routed", quantile(rate[1], 0.5), "cmd/s", quantile(rate[0], 0.5), with_k);
    params["concurrency"] = 1;
    // In microseconds: a local read takes a few.
    auto us = [&](int side, double q) { return 1000 * quantile(lat[side], q); };
    report("routed", "latency p50 routed", us(1, 0.5), "us", us(0, 0.5), params);
    report("routed", "latency p99 routed", us(1, 0.99), "us", us(0, 0.99), params);
  };
  measure("bump", bump{payload()}); // one event: a transaction
  measure("touch", touch{});        // a read: no event, so the routing alone
  // Ownership that moved during the run would have mixed the sides (or retried commands).
  if (serving(*a) != on_a || a->routing_counters().retries != retries)
    throw std::runtime_error("routed: the partitions moved during the run");
}

// 8. Start-up on the embedded default (no bootstrap: the in-process mock cluster with three
// brokers, the idempotent journal): constructing a node, hosting a type on 4 partitions, waiting
// until they recovered, then the first and the second command (each writes one event). Each
// run starts a node of its own, and its own mock cluster, as a fresh program does. The
// baseline, measured in the same run: raw librdkafka starting a mock cluster and an
// idempotent producer (acks=all) and producing one message until it is acknowledged; then a
// second message on the warm producer (the baseline of a command).
void startup(const options& o) {
  const int runs = o.smoke ? 3 : o.runs;
  std::vector<double> ctor, host, ready, start, first, second, stop, raw_start, raw_next;
  double first_start = 0, first_first = 0;
  for (int i = 0; i < runs; ++i) {
    const auto raw = raw_mock_start(3, 4);
    raw_start.push_back(raw.first_ms);
    raw_next.push_back(raw.second_ms);
    cafes::node_config c;
    c.ns = unique_ns("startup");
    c.log_level = "warn";
    auto t0 = clock_type::now();
    std::optional<cafes::node> n;
    n.emplace(c);
    auto t1 = clock_type::now();
    n->host<counter>({.partitions = 4}).value();
    auto t2 = clock_type::now();
    n->wait_ready(std::chrono::seconds{30}).value();
    auto t3 = clock_type::now();
    n->ask<counter>("agg-0", bump{payload()}).value();
    auto t4 = clock_type::now();
    n->ask<counter>("agg-1", bump{payload()}).value();
    auto t5 = clock_type::now();
    n.reset();
    auto t6 = clock_type::now();
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    ctor.push_back(ms(t0, t1));
    host.push_back(ms(t1, t2));
    ready.push_back(ms(t2, t3));
    start.push_back(ms(t0, t3));
    first.push_back(ms(t3, t4));
    second.push_back(ms(t4, t5));
    stop.push_back(ms(t5, t6));
    if (o.verbose)
      std::fprintf(stderr, "run %d: raw %.1f+%.1f ms; node %.1f, host %.1f, ready %.1f, ask %.1f, ask %.1f, stop %.1f ms\n",
                   i, raw.first_ms, raw.second_ms, ctor.back(), host.back(), ready.back(), first.back(),
                   second.back(), stop.back());
    if (i == 0) {
      first_start = start.back();
      first_first = first.back();
    }
  }
  const nlohmann::json params{{"runs", runs}, {"partitions", 4}, {"brokers", 3}, {"statistic", "median"}};
  auto med = [](std::vector<double> v) { return quantile(v, 0.5); };
  const double rs = med(raw_start), rn = med(raw_next);
  report("startup", "node constructed", med(ctor), "ms", 0, params);
  report("startup", "host<A>()", med(host), "ms", 0, params);
  report("startup", "wait_ready", med(ready), "ms", 0, params);
  report("startup", "node ready (sum of the three)", med(start), "ms", rs, params);
  report("startup", "first ask", med(first), "ms", rn, params);
  report("startup", "second ask", med(second), "ms", rn, params);
  report("startup", "node stopped", med(stop), "ms", 0, params);
  report("startup", "raw: cluster+producer+1 msg", rs, "ms", 0, params);
  report("startup", "raw: next msg", rn, "ms", 0, params);
  report("startup", "ready, first run of process", first_start, "ms", rs, {{"runs", 1}});
  report("startup", "first ask, first run", first_first, "ms", rn, {{"runs", 1}});
}

} // namespace

// 9. Projections (the read side): how fast a projection reads a journal beside a raw group
// consumer of the same topic in the same run, from start (group join included) to caught up.
// Then a poison event in every 100 (dead letters), and the lag while events keep arriving.

void projection(const options& o) {
  using namespace proj;
  const int events = o.smoke ? 5'000 : 200'000;
  const std::int32_t partitions = 4;
  auto ns = unique_ns("projection");
  auto kc = kafka_of(o.bootstrap);
  cafes::ensure_topics(kc, cafes::aggregate_topics(ns, "counter", partitions, 1)).value();
  cafes::ensure_topics(kc, {cafes::state_topic_spec(ns, "counter", partitions, 1)}).value();
  auto names = cafes::topic_names::of(ns, "counter");
  write(o.bootstrap, names.events, partitions, events, 0);
  nlohmann::json params{{"events", events}, {"partitions", partitions}};
  std::vector<double> raw, raw_decoding, store, eos, state;
  const int runs = o.smoke ? 1 : 3;
  auto timed = [&](auto start) {
    auto t0 = clock_type::now();
    auto p = start();
    p->wait_caught_up(std::chrono::minutes{10}).value();
    return std::chrono::duration<double>(clock_type::now() - t0).count();
  };
  for (int r = 0; r < runs; ++r) {
    auto tag = std::to_string(r);
    raw.push_back(raw_group(o.bootstrap, names.events, ns + ".raw" + tag, events));
    raw_decoding.push_back(raw_group(o.bootstrap, names.events, ns + ".rawdec" + tag, events, true));
    store.push_back(timed([&] {
      return cafes::projection::into_store(kc, options_of(ns, "store" + tag), std::make_shared<null_store>()).value();
    }));
    eos.push_back(timed([&] {
      return cafes::projection::exactly_once(kc, options_of(ns, "eos" + tag),
                                             [](const cafes::projected_event&, cafes::projection_output&)
                                               -> cafes::expected<void> { return {}; })
        .value();
    }));
    state.push_back(timed([&] { return cafes::start_state_topic<counter>(kc, ns, options_of(ns, "state" + tag)).value(); }));
  }
  const double base = static_cast<double>(events) / quantile(raw, 0.5);
  report("projection", "raw group consumer", base, "events/s", 0, params);
  report("projection", "raw consumer, decoding", static_cast<double>(events) / quantile(raw_decoding, 0.5), "events/s",
         base, params);
  report("projection", "into a store", static_cast<double>(events) / quantile(store, 0.5), "events/s", base, params);
  report("projection", "exactly once, no output", static_cast<double>(events) / quantile(eos, 0.5), "events/s", base,
         params);
  report("projection", "state topic", static_cast<double>(events) / quantile(state, 0.5), "events/s", base, params);

  // Dead letters: one poison event in every 100, into a store.
  {
    auto dns = unique_ns("projection-dlq");
    cafes::ensure_topics(kc, cafes::aggregate_topics(dns, "counter", partitions, 1)).value();
    write(o.bootstrap, cafes::topic_names::of(dns, "counter").events, partitions, events, 100);
    std::shared_ptr<cafes::projection> keep;
    auto secs = timed([&] {
      auto p = cafes::projection::into_store(kc, options_of(dns, "store"), std::make_shared<null_store>()).value();
      keep = std::shared_ptr<cafes::projection>(p.release());
      return std::shared_ptr<cafes::projection>(keep);
    });
    auto st = keep->stats();
    nlohmann::json dp{{"events", events}, {"poison_every", 100}};
    report("projection", "into a store, 1% poison", static_cast<double>(events) / secs, "events/s", base, dp);
    report("projection", "dead letters", static_cast<double>(st.dead_letters), "letters", 0, dp);
  }

  // Lag while events keep arriving: a writer at full speed, the store projection beside it.
  {
    auto lns = unique_ns("projection-lag");
    cafes::ensure_topics(kc, cafes::aggregate_topics(lns, "counter", partitions, 1)).value();
    auto topic = cafes::topic_names::of(lns, "counter").events;
    auto p = cafes::projection::into_store(kc, options_of(lns, "store"), std::make_shared<null_store>()).value();
    p->wait_caught_up(std::chrono::minutes{1}).value(); // joined, nothing to read yet
    std::atomic<bool> writing{true};
    std::vector<double> lags;
    std::thread sampler{[&] {
      while (writing) {
        std::int64_t lag = 0;
        for (auto& l : p->lag())
          lag += l.lag();
        lags.push_back(static_cast<double>(lag));
        std::this_thread::sleep_for(std::chrono::milliseconds{50});
      }
    }};
    auto t0 = clock_type::now();
    write(o.bootstrap, topic, partitions, events, 0);
    auto wrote = std::chrono::duration<double>(clock_type::now() - t0).count();
    writing = false;
    sampler.join();
    auto t1 = clock_type::now();
    p->wait_caught_up(std::chrono::minutes{10}).value();
    auto drain = std::chrono::duration<double>(clock_type::now() - t1).count();
    nlohmann::json lp{{"events", events}, {"write_rate", static_cast<double>(events) / wrote}};
    auto lag_med = quantile(lags, 0.5);
    auto lag_max = quantile(lags, 1.0);
    report("projection", "lag while writing, median", lag_med, "events", 0, lp);
    report("projection", "lag while writing, max", lag_max, "events", 0, lp);
    report("projection", "drain after the writer", drain * 1000, "ms", 0, lp);
  }
}

// 10. Metrics: persist throughput measured and collected every 100 ms, against --no-metrics.
void metrics(const options& o) {
  const int rounds = o.smoke ? 1 : std::max(o.repeat, 5);
  std::unique_ptr<cafes::node> nodes[2];
  for (int i = 0; i < 2; ++i) {
    auto c = config_of(o.bootstrap, unique_ns(i == 0 ? "metrics-on" : "metrics-off"), cafes::journal_mode::idempotent);
    c.metrics = i == 0;
    nodes[i] = cafes::node::start(c).value();
    nodes[i]->host<counter>(cafes::host_options{.partitions = 12}).value();
    nodes[i]->wait_ready(std::chrono::seconds{60}).value();
  }
  std::atomic<bool> stop{false};
  std::size_t scrapes = 0, bytes = 0;
  std::thread scraper{[&] {
    while (!stop) {
      bytes = nodes[0]->metrics()->text().size();
      ++scrapes;
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    }
  }};
  std::vector<double> on, off;
  for (int r = 0; r < rounds; ++r)
    for (int k = 0; k < 2; ++k) { // the order alternates, so that drift hits both alike
      const int i = (r + k) % 2;
      auto res = cafes_loop<counter>(*nodes[i], agg_ids(100), 64, o.seconds, o.warmup);
      (i == 0 ? on : off).push_back(res.ops_per_s);
    }
  stop = true;
  scraper.join();
  nlohmann::json params{{"mode", "idempotent"}, {"aggregates", 100}, {"concurrency", 64}, {"rounds", rounds},
                        {"scrapes", scrapes}, {"exposition_bytes", bytes}};
  report("metrics", "persist events/s, metrics on", quantile(on, 0.5), "events/s", quantile(off, 0.5), params);
}

int main(int argc, char** argv) {
  CLI::App app{"cafes benchmarks: every figure beside its baseline from the same run"};
  options o;
  std::string only = "all";
  app.add_option("--bootstrap", o.bootstrap, "the real broker (every benchmark but startup)");
  const std::vector<std::pair<std::string, void (*)(const options&)>> benches{
    {"persist", persist}, {"recovery", recovery}, {"memory", memory},         {"hot", hot},         {"embedded", embedded},
    {"handoff", handoff}, {"routed", routed},     {"projection", projection}, {"metrics", metrics}, {"startup", startup}};
  std::vector<std::string> names{"all"};
  for (auto& [name, _] : benches)
    names.push_back(name);
  app.add_option("--only", only, "one benchmark, or all")->check(CLI::IsMember(names));
  app.add_flag("--verbose", o.verbose, "startup: print each run");
  app.add_option("--runs", o.runs, "startup: nodes started one after another (medians)")->check(CLI::Range(1, 1000));
  app.add_flag("--smoke", o.smoke, "seconds-long run of every benchmark (CI)");
  app.add_option("--seconds", o.seconds, "measured seconds per point (routed: over all its repetitions)");
  app.add_option("--plot-data", o.plot_data, "write persist throughput and latency by concurrency here");
  app.add_option("--in-flight", o.in_flight, "journal batches in flight (persist)")->check(CLI::Range(1, 64));
  app.add_option("--aggregates", o.aggregates, "persist: aggregate counts to measure (routed: the first, per side)");
  app.add_option("--concurrency", o.concurrency, "persist: concurrent commands to measure (routed: the first)");
  app.add_option("--repeat", o.repeat, "routed: runs per point, local and routed alternating; metrics: rounds (at least 5)")
    ->check(CLI::Range(1, 100));
  std::string modes = "both";
  app.add_option("--modes", modes, "persist: idempotent, transactional or both")
    ->check(CLI::IsMember({"idempotent", "transactional", "both"}));
  CLI11_PARSE(app, argc, argv);
  o.modes = modes;
  if (o.bootstrap.empty() && only != "startup") {
    std::fprintf(stderr, "cafes_bench: --bootstrap is required (but for --only startup)\n");
    return 2;
  }
  if (o.smoke) {
    o.seconds = 0.3;
    o.warmup = 0.1;
  }
  spdlog::set_level(spdlog::level::warn);
  std::fprintf(stderr, "%-10s %-28s %14s %-8s %23s  %12s\n", "bench", "metric", "value", "unit", "baseline", "ratio");
  try {
    for (auto& [name, run] : benches)
      if (only == "all" || only == name)
        run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "cafes_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
