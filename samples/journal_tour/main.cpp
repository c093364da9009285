// journal_tour: appends, reads back and snapshots events with the persistence layer alone.
// With no --bootstrap it runs on the embedded mock cluster (nothing is durable).
#include <chrono>
#include <cstdio>
#include <map>
#include <random>

#include <CLI/CLI.hpp>
#include <msgpack.hpp>

#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/registry.hpp"
#include "cafes/persistence/snapshot_store.hpp"
#include "cafes/persistence/topics.hpp"

namespace {

struct deposited {
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(amount);
};

struct balance_state {
  std::int64_t balance = 0;
  MSGPACK_DEFINE_MAP(balance);
};

int fail(const cafes::error& e) {
  std::fprintf(stderr, "journal_tour: %s\n", e.to_string().c_str());
  return 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Appends deposits to a journal, replays them, and checks every balance."};
  std::string bootstrap, mode = "idempotent";
  int accounts = 100, events = 20000, partitions = 6;
  app.add_option("--bootstrap", bootstrap, "Kafka bootstrap servers (default: embedded mock cluster)");
  app.add_option("--mode", mode, "journal mode")->check(CLI::IsMember({"idempotent", "transactional"}));
  app.add_option("--accounts", accounts, "number of aggregates")->check(CLI::Range(1, 1'000'000));
  app.add_option("--events", events, "number of events")->check(CLI::Range(1, 10'000'000));
  app.add_option("--partitions", partitions, "partitions")->check(CLI::Range(1, 1000));
  CLI11_PARSE(app, argc, argv);

  cafes::kafka_config cfg;
  cfg.mode = cafes::parse_journal_mode(mode).value();
  if (bootstrap.empty()) {
    auto mc = cafes::embedded_cluster::start(3);
    if (!mc)
      return fail(mc.error());
    cfg.embedded = *mc;
    std::printf("embedded mock cluster at %s: NOTHING IS DURABLE\n", cfg.embedded->bootstrap().c_str());
  } else {
    cfg.bootstrap = bootstrap;
  }
  const auto ns = "tour" + std::to_string(std::random_device{}() % 100000);
  if (auto ok = cafes::ensure_topics(cfg, cafes::aggregate_topics(ns, "account", partitions, 1)); !ok)
    return fail(ok.error());
  auto names = cafes::topic_names::of(ns, "account");
  auto journal = cafes::make_kafka_journal(cfg, names.events, partitions);
  if (!journal)
    return fail(journal.error());
  auto snaps = cafes::make_kafka_snapshot_store(cfg, names.snapshots, partitions);
  if (!snaps)
    return fail(snaps.error());

  cafes::type_registry reg;
  (void) reg.add<deposited>("deposited");
  (void) reg.add<balance_state>("balance");

  // Append in batches of 1000, as a node's journal actor would.
  std::map<std::string, std::uint64_t> seq;
  std::map<std::string, std::int64_t> expected_balance;
  std::mt19937 rng{7};
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<cafes::event_envelope> batch;
  for (int i = 0; i < events; ++i) {
    auto id = "acc-" + std::to_string(rng() % static_cast<unsigned>(accounts));
    deposited d{static_cast<std::int64_t>(rng() % 100 + 1)};
    auto enc = reg.encode(d).value();
    cafes::event_envelope e;
    e.id = cafes::aggregate_id::make(id).value();
    e.seq = cafes::seq_nr{++seq[id]};
    e.type = enc.type;
    e.schema_version = enc.version;
    e.payload = std::move(enc.bytes);
    e.writer_node = "tour";
    expected_balance[id] += d.amount;
    batch.push_back(std::move(e));
    if (batch.size() == 1000 || i + 1 == events) {
      auto r = (*journal)->append_sync(std::move(batch));
      if (!r)
        return fail(r.error());
      batch.clear();
      std::printf("\rappended %d/%d events", i + 1, events);
      std::fflush(stdout);
    }
  }
  const auto t1 = std::chrono::steady_clock::now();

  // Replay every partition and rebuild the balances, checking sequence numbers on the way.
  std::map<std::string, std::int64_t> replayed;
  std::map<std::string, std::uint64_t> last_seq;
  std::size_t read = 0;
  for (std::int32_t p = 0; p < partitions; ++p) {
    cafes::offset from{0};
    for (;;) {
      auto c = (*journal)->read(cafes::partition_id{p}, from, 512);
      if (!c)
        return fail(c.error());
      for (auto& e : c->events) {
        auto& last = last_seq[e.id.str()];
        if (e.seq.value() != last + 1)
          return fail(cafes::error{cafes::errc::sequence_gap, "sequence of " + e.id.str()});
        last = e.seq.value();
        replayed[e.id.str()] += reg.decode<deposited>(e.type, e.schema_version, e.payload).value().amount;
        ++read;
      }
      if (c->end)
        break;
      from = c->next;
    }
  }
  const auto t2 = std::chrono::steady_clock::now();
  for (auto& [id, bal] : replayed) {
    auto enc = reg.encode(balance_state{bal}).value();
    cafes::snapshot s{cafes::aggregate_id::make(id).value(), cafes::seq_nr{last_seq[id]}, cafes::offset{0},
                      enc.type, enc.version, enc.bytes};
    if (auto ok = (*snaps)->save_sync(std::move(s)); !ok)
      return fail(ok.error());
  }
  auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  const bool ok = replayed == expected_balance && read == static_cast<std::size_t>(events);
  std::printf("\nmode: %s, partitions: %d, accounts: %zu\n", mode.c_str(), partitions, replayed.size());
  std::printf("appended %d events in %.2f s (%.0f events/s)\n", events, secs(t1 - t0), events / secs(t1 - t0));
  std::printf("replayed %zu events in %.2f s (%.0f events/s)\n", read, secs(t2 - t1), read / secs(t2 - t1));
  std::printf("snapshots written: %zu\n", replayed.size());
  std::printf("balances_match: %s\n", ok ? "true" : "false");
  return ok ? 0 : 1;
}
