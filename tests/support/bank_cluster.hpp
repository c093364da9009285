// Bank node processes in cluster mode on the real broker, and a client that keeps deposits
// going across them: the fixture of the cluster tests.
#pragma once

#include <array>
#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "account.hpp"
#include "cafes/persistence/kafka_journal.hpp"
#include "cafes/persistence/partitioner.hpp"
#include "cafes/persistence/topics.hpp"
#include "journal_contract.hpp"
#include "kafka_fixture.hpp"
#include "process.hpp"
#include "test_env.hpp"

namespace cafes::test {

/// One bank node process with --cluster, and an HTTP client to it.
class bank_process {
 public:
  bank_process(const std::string& ns, const std::string& name, std::int32_t partitions,
               std::chrono::milliseconds session_timeout, const std::string& log, int standby = 0)
    : name_(name) {
    proc_ = std::make_unique<child>(
      std::vector<std::string>{CAFES_BANK_BINARY, "node", "--bootstrap", bootstrap(), "--namespace", ns,
                               "--node-name", name, "--mode", "transactional", "--cluster", "--session-timeout-ms",
                               std::to_string(session_timeout.count()), "--partitions", std::to_string(partitions),
                               "--snapshot-every", "50", "--standby-replicas", std::to_string(standby), "--port", "0",
                               "--log-level", "info"},
      log);
    auto port = proc_->wait_for(std::regex{"listening on 127\\.0\\.0\\.1:([0-9]+)"}, scaled(std::chrono::seconds{90}));
    REQUIRE(port);
    port_ = std::stoi(*port);
  }

  const std::string& name() const noexcept { return name_; }
  int port() const noexcept { return port_; }
  child& proc() noexcept { return *proc_; }

  /// Posts (a client per call, so that threads never share one); status 0: no answer.
  std::pair<int, nlohmann::json> post(const std::string& path, const httplib::Params& p,
                                      std::chrono::milliseconds timeout = std::chrono::seconds{10}) const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_read_timeout(scaled(timeout));
    c.set_connection_timeout(scaled(std::chrono::seconds{2}));
    auto res = c.Post(path + "?" + httplib::detail::params_to_query_str(p));
    if (!res)
      return {0, {}};
    return {res->status, nlohmann::json::parse(res->body, nullptr, false)};
  }

  /// Returns the node's /stats, or null when it does not answer.
  nlohmann::json stats() const {
    httplib::Client c{"127.0.0.1", port_};
    c.set_read_timeout(scaled(std::chrono::seconds{2}));
    c.set_connection_timeout(scaled(std::chrono::seconds{1}));
    auto res = c.Get("/stats");
    if (!res || res->status != 200)
      return nullptr;
    return nlohmann::json::parse(res->body, nullptr, false);
  }

  /// Returns (partition -> epoch) of the ready partitions this node owns, per type; empty
  /// when the node does not answer.
  std::map<std::string, std::map<std::int32_t, std::uint64_t>> owned() const {
    std::map<std::string, std::map<std::int32_t, std::uint64_t>> out;
    auto j = stats();
    if (!j.is_object())
      return out;
    for (auto type : {"account", "transfer"})
      if (j.contains(type))
        for (auto& o : j[type]["owned"])
          if (o["ready"].get<bool>())
            out[type][o["partition"].get<std::int32_t>()] = o["epoch"].get<std::uint64_t>();
    return out;
  }

 private:
  std::string name_;
  std::unique_ptr<child> proc_;
  int port_ = 0;
};

/// Bank nodes on one namespace.
struct bank_cluster {
  std::string ns;
  std::int32_t partitions;
  std::chrono::milliseconds session_timeout;
  std::string log;
  /// Fixed slots (never reallocated while a load reads them); null: not started or killed.
  std::array<std::unique_ptr<bank_process>, 8> nodes;

  int standby = 0; ///< hot standby replicas of each partition (--standby-replicas)

  bank_cluster(const std::string& what, std::int32_t parts, std::chrono::milliseconds session, int count,
               int standby_replicas = 0)
    : ns(unique_ns(what)), partitions(parts), session_timeout(session),
      log((std::filesystem::temp_directory_path() / (ns + ".log")).string()), standby(standby_replicas) {
    for (int i = 0; i < count; ++i)
      start(i);
  }

  /// Starts a node in slot i, named node-i unless `name` is given (a restarted node takes a
  /// fresh slot under its old name, so that no slot a load may read is ever replaced).
  void start(int i, std::string name = {}) {
    nodes.at(static_cast<std::size_t>(i)) = std::make_unique<bank_process>(
      ns, name.empty() ? "node-" + std::to_string(i) : name, partitions, session_timeout, log, standby);
  }

  /// Owners of each partition of `type` among the nodes in `among`: partition -> (node, epoch).
  std::map<std::int32_t, std::vector<std::pair<int, std::uint64_t>>> owners(const std::string& type,
                                                                            const std::vector<int>& among) const {
    std::map<std::int32_t, std::vector<std::pair<int, std::uint64_t>>> out;
    for (int i : among)
      if (auto& n = nodes[static_cast<std::size_t>(i)]) {
        auto owned = n->owned();
        for (auto& [p, epoch] : owned[type])
          out[p].push_back({i, epoch});
      }
    return out;
  }

  /// Returns whether every partition of both types has exactly one ready owner in `among`,
  /// and every node in `among` owns some (the group has taken each of them in).
  bool settled(const std::vector<int>& among) const {
    std::set<int> owning;
    for (auto type : {"account", "transfer"}) {
      auto o = owners(type, among);
      if (static_cast<std::int32_t>(o.size()) != partitions)
        return false;
      for (auto& [p, list] : o) {
        if (list.size() != 1)
          return false;
        owning.insert(list.front().first);
      }
    }
    return owning.size() == among.size();
  }

  /// Returns the node that owns aggregate `id` of `type` among `among`, or -1.
  int owner_of(const std::string& type, const std::string& id, const std::vector<int>& among) const {
    auto o = owners(type, among);
    auto i = o.find(partition_for(id, partitions).value());
    return i == o.end() || i->second.size() != 1 ? -1 : i->second.front().first;
  }
};

/// Deposits of 1 with unique refs from a few threads, each retried with its ref until a node
/// acknowledges it (the account drops a repeated ref), sent to the partition's owner.
class deposit_load {
 public:
  deposit_load(const bank_cluster& c, std::vector<std::string> accounts, int threads)
    : c_(c), accounts_(std::move(accounts)) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, t] { run(t); });
  }
  ~deposit_load() { stop(); }

  /// Nodes the load may send to (the others are dead or stopped).
  void set_live(std::vector<int> live) {
    std::lock_guard g{mtx_};
    live_ = std::move(live);
  }

  /// Stops the load; an unacknowledged deposit is dropped (its ref may have landed: at most once).
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }

  std::uint64_t acked_count() const { return acked_count_.load(); }
  /// The longest time one deposit took from its first attempt to its acknowledgement.
  std::chrono::milliseconds slowest() const {
    std::lock_guard g{mtx_};
    return slowest_;
  }
  std::uint64_t rejected() const { return rejected_.load(); }
  std::map<std::string, std::int64_t> acked() const {
    std::lock_guard g{mtx_};
    return acked_;
  }
  std::set<std::string> acked_refs() const {
    std::lock_guard g{mtx_};
    return refs_;
  }

 private:
  void run(int t) {
    // Keep-alive connections per node, and the owners as last seen: they are looked up
    // again only when a deposit fails (a moved partition, a dead node).
    std::map<int, std::unique_ptr<httplib::Client>> clients;
    std::map<std::int32_t, int> owner; // partition -> node
    auto refresh = [&] {
      std::vector<int> live;
      {
        std::lock_guard g{mtx_};
        live = live_;
      }
      owner.clear();
      for (auto& [p, list] : c_.owners("account", live))
        if (list.size() == 1)
          owner[p] = list.front().first;
    };
    std::uint64_t n = 0;
    while (!stop_) {
      const auto& id = accounts_[(n + static_cast<std::uint64_t>(t)) % accounts_.size()];
      const auto ref = "t" + std::to_string(t) + "-" + std::to_string(n++);
      const auto p = partition_for(id, c_.partitions).value();
      const auto first_try = std::chrono::steady_clock::now();
      for (bool fresh = false; !stop_; fresh = false) {
        auto o = owner.find(p);
        if (o == owner.end()) {
          refresh();
          fresh = true;
          o = owner.find(p);
          if (o == owner.end()) {
            std::this_thread::sleep_for(std::chrono::milliseconds{50}); // backoff while the partition moves
            continue;
          }
        }
        auto& cl = clients[o->second];
        if (!cl) {
          cl = std::make_unique<httplib::Client>("127.0.0.1", c_.nodes[static_cast<std::size_t>(o->second)]->port());
          cl->set_keep_alive(true);
          cl->set_read_timeout(scaled(std::chrono::seconds{3}));
          cl->set_connection_timeout(scaled(std::chrono::seconds{1}));
        }
        auto res = cl->Post("/accounts/deposit?" +
                            httplib::detail::params_to_query_str({{"id", id}, {"amount", "1"}, {"ref", ref}}));
        if (res && res->status == 200) {
          std::lock_guard g{mtx_};
          slowest_ = std::max(slowest_, std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::steady_clock::now() - first_try));
          acked_[id] += 1;
          refs_.insert(ref);
          ++acked_count_;
          break;
        }
        if (res && res->status == 422) { // a rule refused it: never expected for a deposit of 1
          ++rejected_;
          break;
        }
        // not_owner, a moving partition, a stopped node: look the owner up again and retry
        // with the same ref
        if (!res)
          clients.erase(o->second);
        owner.erase(p);
        if (fresh)
          std::this_thread::sleep_for(std::chrono::milliseconds{50}); // backoff
      }
    }
  }

  const bank_cluster& c_;
  std::vector<std::string> accounts_;
  mutable std::mutex mtx_;
  std::vector<int> live_;
  std::map<std::string, std::int64_t> acked_;
  std::set<std::string> refs_;
  std::chrono::milliseconds slowest_{0};
  std::atomic<std::uint64_t> acked_count_{0};
  std::atomic<std::uint64_t> rejected_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

/// The committed account journal of `ns`: per account, how often each deposit ref landed, and
/// per partition whether the writers' epochs never go back (a fenced owner wrote nothing after
/// its successor's first event).
struct account_census {
  std::map<std::string, std::map<std::string, int>> deposits; // id -> ref -> count
  std::map<std::int32_t, bool> epochs_monotonic;
  std::map<std::int32_t, std::set<std::uint64_t>> epochs;
  std::uint64_t events = 0;

  static account_census read(const std::string& ns, std::int32_t partitions) {
    account_census c;
    auto j = make_kafka_journal(broker_config(journal_mode::transactional), topic_names::of(ns, "account").events,
                                partitions, std::vector<partition_id>{}); // a reader: it opens no writer
    REQUIRE(j);
    for (std::int32_t p = 0; p < partitions; ++p) {
      std::uint64_t last = 0;
      bool ok = true;
      for (auto& e : read_all(**j, partition_id{p}, offset{0}, 2000)) {
        ++c.events;
        if (e.writer_epoch < last)
          ok = false;
        last = std::max<std::uint64_t>(last, e.writer_epoch);
        c.epochs[p].insert(e.writer_epoch);
        if (e.type == bank::deposited::type_name) {
          auto h = msgpack::unpack(e.payload.data(), e.payload.size());
          c.deposits[e.id.str()][h.get().as<bank::deposited>().reference] += 1;
        }
      }
      c.epochs_monotonic[p] = ok;
    }
    return c;
  }
};

/// Opens accounts acc-0 .. acc-(count-1), each at its owner among `among`.
inline std::vector<std::string> open_accounts(const bank_cluster& c, const std::vector<int>& among, int count) {
  std::vector<std::string> ids;
  for (int a = 0; a < count; ++a) {
    auto id = "acc-" + std::to_string(a);
    const int to = c.owner_of("account", id, among);
    REQUIRE(to >= 0);
    auto [status, body] = c.nodes[static_cast<std::size_t>(to)]->post("/accounts/open", {{"id", id}, {"owner", "o"}});
    INFO(body.dump());
    REQUIRE(status == 200);
    ids.push_back(id);
  }
  return ids;
}

/// Every acknowledged deposit is in the committed journal exactly once, nothing is there
/// twice, and each partition's epochs never go back. Returns the census.
inline account_census check_census(const bank_cluster& c, const deposit_load& load) {
  auto census = account_census::read(c.ns, c.partitions);
  const auto refs = load.acked_refs();
  std::size_t found = 0;
  for (auto& [id, by_ref] : census.deposits)
    for (auto& [ref, count] : by_ref) {
      INFO(id << " " << ref);
      CHECK(count == 1);
      found += refs.count(ref);
    }
  CHECK(found == refs.size());
  for (auto& [p, ok] : census.epochs_monotonic) {
    INFO("partition " << p);
    CHECK(ok);
  }
  return census;
}

} // namespace cafes::test
