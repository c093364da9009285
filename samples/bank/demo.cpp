// The bank demo: a random mixed workload of deposits, withdrawals and transfers, then checks.
#include "demo.hpp"

#include <atomic>
#include <charconv>
#include <map>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "saga.hpp"

namespace bank {

namespace {

struct tally {
  std::atomic<std::int64_t> deposited{0}, withdrawn{0};
  std::atomic<std::uint64_t> done{0}, rejected{0}, retried{0}, failed{0};
  std::atomic<std::uint64_t> completed{0}, compensated{0}, transfers_rejected{0};
};

// Retries an operation whose outcome is unknown (timeout, persist failure). Its reference
// makes the retry safe: the account drops the duplicate.
template <class F>
auto with_retries(tally& t, F f) {
  auto r = f();
  for (int i = 0; i < 5 && !r && r.error() != cafes::condition::rejected; ++i) {
    ++t.retried;
    r = f();
  }
  return r;
}

/// Where the demo's commands go: one node in this process, or bank nodes over HTTP.
struct target {
  virtual ~target() = default;
  virtual cafes::expected<std::int64_t> open_account(const std::string& id, const std::string& owner,
                                                     std::int64_t overdraft) = 0;
  virtual cafes::expected<std::int64_t> deposit_to(const std::string& id, std::int64_t amount, const std::string& ref) = 0;
  virtual cafes::expected<std::int64_t> withdraw_from(const std::string& id, std::int64_t amount,
                                                      const std::string& ref) = 0;
  virtual cafes::expected<transfer_status> transfer_money(const std::string& id, const std::string& from,
                                                          const std::string& to, std::int64_t amount) = 0;
  virtual cafes::expected<std::int64_t> balance(const std::string& id) = 0;
  /// Finishes the transfers an infrastructure error left pending; returns how many remain.
  virtual cafes::expected<std::size_t> finish_transfers(const std::vector<std::string>& ids) = 0;
};

struct local_target final : target {
  cafes::node& node;
  explicit local_target(cafes::node& n) : node(n) {}
  cafes::expected<std::int64_t> open_account(const std::string& id, const std::string& owner,
                                             std::int64_t overdraft) override {
    return node.ask<account>(id, open{owner, overdraft}, id + ":open");
  }
  cafes::expected<std::int64_t> deposit_to(const std::string& id, std::int64_t amount, const std::string& ref) override {
    return node.ask<account>(id, deposit{amount, ref}, ref);
  }
  cafes::expected<std::int64_t> withdraw_from(const std::string& id, std::int64_t amount,
                                              const std::string& ref) override {
    return node.ask<account>(id, withdraw{amount, ref}, ref);
  }
  cafes::expected<transfer_status> transfer_money(const std::string& id, const std::string& from, const std::string& to,
                                                  std::int64_t amount) override {
    return run_transfer(node, id, from, to, amount);
  }
  cafes::expected<std::int64_t> balance(const std::string& id) override { return node.ask<account>(id, get_balance{}); }
  cafes::expected<std::size_t> finish_transfers(const std::vector<std::string>&) override {
    if (auto resumed = resume_transfers(node); !resumed)
      return std::move(resumed).error();
    auto pending = node.query<transfer>([](const transfer::state& s) { return s.pending(); });
    if (!pending)
      return std::move(pending).error();
    return pending->size();
  }
};

void run_command(target& tg, const demo_options& o, int j, tally& t, std::vector<std::string>& transfers) {
  std::mt19937 rng{o.seed * 7919u + static_cast<std::uint32_t>(j)};
  auto pick = [&] { return "acc-" + std::to_string(rng() % static_cast<unsigned>(o.accounts)); };
  const auto kind = rng() % 100;
  const auto ref = "c" + std::to_string(j);
  if (kind < 35) {
    std::int64_t amount = 1 + rng() % 500;
    const auto id = pick(); // a retry goes to the same account with the same ref
    auto r = with_retries(t, [&] { return tg.deposit_to(id, amount, ref); });
    if (r)
      t.deposited += amount;
    else
      ++(r.error() == cafes::condition::rejected ? t.rejected : t.failed);
  } else if (kind < 65) {
    std::int64_t amount = 1 + rng() % 800;
    const auto id = pick();
    auto r = with_retries(t, [&] { return tg.withdraw_from(id, amount, ref); });
    if (r)
      t.withdrawn += amount;
    else
      ++(r.error() == cafes::condition::rejected ? t.rejected : t.failed);
  } else if (kind < 98) {
    auto from = pick();
    auto to = kind < 95 ? pick() : "ghost-" + std::to_string(j); // a ghost account is never open
    if (to == from)
      to = "acc-" + std::to_string((std::stoi(from.substr(4)) + 1) % o.accounts);
    std::int64_t amount = 1 + rng() % 600;
    auto tid = "t" + std::to_string(j);
    transfers.push_back(tid);
    auto r = with_retries(t, [&] { return tg.transfer_money(tid, from, to, amount); });
    if (!r)
      ++t.failed;
    else if (*r == transfer_status::completed)
      ++t.completed;
    else if (*r == transfer_status::compensated)
      ++t.compensated;
    else
      ++t.transfers_rejected;
  } else {
    // Bad input on purpose: each must come back as a typed rejection.
    auto r = kind == 98 ? tg.withdraw_from(pick(), -5, ref) : tg.deposit_to("ghost-" + std::to_string(j), 10, ref);
    if (!r && r.error() == cafes::condition::rejected)
      ++t.rejected;
    else
      ++t.failed;
  }
  ++t.done;
}

/// Bank nodes over HTTP: command j goes to node j mod N (any node takes any command: the
/// cluster routes it to its owner). Each thread has its own keep-alive connections.
class http_target final : public target {
 public:
  explicit http_target(std::vector<std::pair<std::string, int>> nodes) : nodes_(std::move(nodes)) {}

  cafes::expected<std::int64_t> open_account(const std::string& id, const std::string& owner,
                                             std::int64_t overdraft) override {
    return balance_of(call(true, "/accounts/open", {{"id", id}, {"owner", owner}, {"overdraft", std::to_string(overdraft)}}));
  }
  cafes::expected<std::int64_t> deposit_to(const std::string& id, std::int64_t amount, const std::string& ref) override {
    return balance_of(call(true, "/accounts/deposit", {{"id", id}, {"amount", std::to_string(amount)}, {"ref", ref}}));
  }
  cafes::expected<std::int64_t> withdraw_from(const std::string& id, std::int64_t amount,
                                              const std::string& ref) override {
    return balance_of(call(true, "/accounts/withdraw", {{"id", id}, {"amount", std::to_string(amount)}, {"ref", ref}}));
  }
  cafes::expected<transfer_status> transfer_money(const std::string& id, const std::string& from, const std::string& to,
                                                  std::int64_t amount) override {
    auto r = call(true, "/transfers", {{"id", id}, {"from", from}, {"to", to}, {"amount", std::to_string(amount)}});
    // 202: still pending after the node's wait; its transfer manager finishes it.
    for (int polls = 0; r && (*r)["status"] == "pending" && polls < 600; ++polls) {
      std::this_thread::sleep_for(std::chrono::milliseconds{100}); // poll interval of a pending transfer
      r = call(false, "/transfers", {{"id", id}});
    }
    if (!r)
      return std::move(r).error();
    return status_named((*r)["status"].get<std::string>());
  }
  cafes::expected<std::int64_t> balance(const std::string& id) override {
    return balance_of(call(false, "/accounts/balance", {{"id", id}}));
  }
  cafes::expected<std::size_t> finish_transfers(const std::vector<std::string>& ids) override {
    std::size_t left = 0;
    for (auto& id : ids) {
      cafes::expected<transfer_status> s = cafes::error{cafes::actor_errc::timeout, "never asked"};
      for (int polls = 0; polls < 600; ++polls) {
        auto r = call(false, "/transfers", {{"id", id}});
        if (!r)
          return std::move(r).error();
        s = status_named((*r)["status"].get<std::string>());
        if (*s == transfer_status::completed || *s == transfer_status::compensated ||
            *s == transfer_status::rejected || *s == transfer_status::none)
          break;
        std::this_thread::sleep_for(std::chrono::milliseconds{100}); // poll interval of a pending transfer
      }
      if (s && *s != transfer_status::completed && *s != transfer_status::compensated &&
          *s != transfer_status::rejected && *s != transfer_status::none)
        ++left;
    }
    return left;
  }

 private:
  static cafes::expected<std::int64_t> balance_of(cafes::expected<nlohmann::json> r) {
    if (!r)
      return std::move(r).error();
    return (*r)["balance"].get<std::int64_t>();
  }
  static transfer_status status_named(const std::string& s) {
    for (auto st : {transfer_status::none, transfer_status::started, transfer_status::debited,
                    transfer_status::credit_failed, transfer_status::completed, transfer_status::compensated,
                    transfer_status::rejected})
      if (to_string(st) == s)
        return st;
    return transfer_status::none;
  }

  /// One request to the next node (round robin per thread); 422 is the bank's rejection.
  cafes::expected<nlohmann::json> call(bool post, const std::string& path, const httplib::Params& params) {
    thread_local std::map<const http_target*, std::vector<std::unique_ptr<httplib::Client>>> per_thread;
    thread_local std::size_t next = 0;
    auto& clients = per_thread[this];
    if (clients.empty())
      for (auto& [host, port] : nodes_) {
        clients.push_back(std::make_unique<httplib::Client>(host, port));
        clients.back()->set_keep_alive(true);
        clients.back()->set_read_timeout(std::chrono::seconds{30});
      }
    auto& c = *clients[next++ % clients.size()];
    auto q = httplib::detail::params_to_query_str(params);
    auto res = post ? c.Post(path + "?" + q) : c.Get(path + "?" + q);
    if (!res)
      return cafes::error{cafes::actor_errc::timeout, "no answer from a bank node (" + httplib::to_string(res.error()) + ")"};
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    if (res->status == 200 || res->status == 202)
      return j;
    const auto msg = j.is_object() && j.contains("error") ? j["error"].get<std::string>() : res->body;
    if (res->status == 422)
      return cafes::error{bank_errc::invalid_amount, msg}; // a rejection (the demo counts them, whatever the rule)
    return cafes::error{cafes::errc::kafka_error, "HTTP " + std::to_string(res->status) + ": " + msg};
  }

  std::vector<std::pair<std::string, int>> nodes_;
};

/// What a workload did and found.
struct outcome {
  double secs = 0;
  std::int64_t expected = 0, actual = 0;
  std::size_t accounts = 0, pending = 0;
  bool ok = false;
};

/// Opens the accounts, runs the workload with progress on stderr, finishes pending transfers
/// and checks the invariants: the balances add up, every transfer is final, nothing failed.
cafes::expected<outcome> run_workload(target& tg, const demo_options& o, tally& t) {
  using clock = std::chrono::steady_clock;
  const std::int64_t initial = 1000;
  for (int a = 0; a < o.accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    auto opened_ok = with_retries(t, [&] { return tg.open_account(id, "owner-" + std::to_string(a), a % 4 == 0 ? 200 : 0); });
    auto funded = with_retries(t, [&] { return tg.deposit_to(id, initial, id + ":init"); });
    if (!opened_ok || !funded)
      return cafes::error{(!opened_ok ? opened_ok.error() : funded.error()).code,
                          "cannot open " + id + ": " + (!opened_ok ? opened_ok.error() : funded.error()).to_string()};
  }
  t.retried = 0;
  const auto t0 = clock::now();
  std::atomic<int> next{0};
  std::mutex transfers_mtx;
  std::vector<std::string> transfers;
  std::vector<std::thread> workers;
  for (int w = 0; w < o.workers; ++w)
    workers.emplace_back([&] {
      std::vector<std::string> mine;
      for (int j = next++; j < o.commands; j = next++)
        run_command(tg, o, j, t, mine);
      std::lock_guard g{transfers_mtx};
      transfers.insert(transfers.end(), mine.begin(), mine.end());
    });
  // Progress: one line, rewritten about twice a second, on stderr.
  std::mutex mtx;
  std::condition_variable cv;
  bool finished = false;
  std::thread progress{[&] {
    std::unique_lock lock{mtx};
    while (!cv.wait_for(lock, std::chrono::milliseconds{500}, [&] { return finished; })) {
      auto secs = std::chrono::duration<double>(clock::now() - t0).count();
      std::fprintf(stderr, "\rbank demo: %llu/%d commands, %.0f commands/s", static_cast<unsigned long long>(t.done.load()),
                   o.commands, static_cast<double>(t.done.load()) / secs);
    }
  }};
  for (auto& w : workers)
    w.join();
  {
    std::lock_guard lock{mtx};
    finished = true;
  }
  cv.notify_one();
  progress.join();
  outcome out;
  out.secs = std::chrono::duration<double>(clock::now() - t0).count();
  std::fprintf(stderr, "\rbank demo: %d/%d commands done%30s\n", o.commands, o.commands, "");

  // Finish any transfer an infrastructure error left pending, then verify.
  auto pending = tg.finish_transfers(transfers);
  for (int a = 0; a < o.accounts; ++a)
    if (auto b = tg.balance("acc-" + std::to_string(a))) {
      out.actual += *b;
      ++out.accounts;
    }
  out.pending = pending ? *pending : 0;
  out.expected = initial * o.accounts + t.deposited.load() - t.withdrawn.load();
  out.ok = pending && *pending == 0 && out.accounts == static_cast<std::size_t>(o.accounts) &&
           out.expected == out.actual && t.failed.load() == 0;
  return out;
}

/// Prints the results; `storage` names where the events went, `events` and `batches` are
/// the journal's counts when known (0: not known here).
void report(const demo_options& o, const tally& t, const outcome& out, const std::string& storage,
            std::uint64_t events, std::uint64_t batches, std::uint64_t batch_events, std::uint64_t snapshots,
            bool durable) {
  std::printf("bank demo on %s\n", storage.c_str());
  std::printf("  accounts:              %zu\n", out.accounts);
  std::printf("  commands:              %d in %.2f s (%.0f commands/s), %llu rejected as expected, %llu retried\n",
              o.commands, out.secs, o.commands / out.secs, static_cast<unsigned long long>(t.rejected.load()),
              static_cast<unsigned long long>(t.retried.load()));
  if (events > 0)
    std::printf("  events:                %llu (%.0f events/s incl. set-up), %llu journal batches (avg %.1f events)\n",
                static_cast<unsigned long long>(events), static_cast<double>(events) / out.secs,
                static_cast<unsigned long long>(batches),
                batches ? static_cast<double>(batch_events) / static_cast<double>(batches) : 0.0);
  std::printf("  transfers:             %llu completed, %llu compensated, %llu rejected\n",
              static_cast<unsigned long long>(t.completed.load()), static_cast<unsigned long long>(t.compensated.load()),
              static_cast<unsigned long long>(t.transfers_rejected.load()));
  std::printf("  expected total:        %lld\n  actual total:          %lld\n", static_cast<long long>(out.expected),
              static_cast<long long>(out.actual));
  std::printf("  pending transfers:     %zu\n", out.pending);
  if (events > 0)
    std::printf("  snapshots written:     %llu\n", static_cast<unsigned long long>(snapshots));
  std::printf("invariant_ok: %s\n", out.ok ? "true" : "false");
  if (o.json) {
    nlohmann::json j{
      {"commands", o.commands},
      {"events", events},
      {"accounts", out.accounts},
      {"transfers_completed", t.completed.load()},
      {"transfers_compensated", t.compensated.load()},
      {"transfers_rejected", t.transfers_rejected.load()},
      {"rejected", t.rejected.load()},
      {"failed", t.failed.load()},
      {"expected_total", out.expected},
      {"actual_total", out.actual},
      {"invariant_ok", out.ok},
      {"seconds", out.secs},
      {"commands_per_s", o.commands / out.secs},
      {"events_per_s", static_cast<double>(events) / out.secs},
      {"durable", durable},
    };
    std::printf("%s\n", j.dump().c_str());
  }
}

} // namespace

int run_demo(cafes::node& node, const demo_options& o) {
  if (auto ok = host_bank(node, o.partitions, o.snapshot_every); !ok) {
    std::fprintf(stderr, "bank: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  if (auto ok = node.wait_ready(std::chrono::seconds{60}); !ok) {
    std::fprintf(stderr, "bank: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  local_target tg{node};
  tally t;
  auto out = run_workload(tg, o, t);
  if (!out) {
    std::fprintf(stderr, "bank: %s\n", out.error().to_string().c_str());
    return 2;
  }
  auto acc = node.stats("account");
  auto tr = node.stats("transfer");
  report(o, t, *out,
         std::string{node.durable() ? "durable" : "NON-DURABLE"} + " storage (" +
           (node.config().bootstrap.empty() ? std::string{"embedded mock cluster"} : node.config().bootstrap) + ")",
         acc->events_persisted + tr->events_persisted, acc->batches + tr->batches, acc->batch_events + tr->batch_events,
         acc->snapshots_written + tr->snapshots_written, node.durable());
  return out->ok ? 0 : 1;
}

int run_cluster_demo(const std::string& nodes, const demo_options& o) {
  std::vector<std::pair<std::string, int>> addrs;
  for (std::size_t at = 0; at <= nodes.size();) {
    auto comma = std::min(nodes.find(',', at), nodes.size());
    auto one = nodes.substr(at, comma - at);
    auto colon = one.rfind(':');
    int port = 0;
    if (colon != std::string::npos)
      std::from_chars(one.data() + colon + 1, one.data() + one.size(), port);
    if (colon == std::string::npos || colon == 0 || port <= 0 || port > 65535) {
      std::fprintf(stderr, "bank: --nodes takes host:port,host:port,... ('%s' is not host:port)\n", one.c_str());
      return 2;
    }
    addrs.emplace_back(one.substr(0, colon), port);
    at = comma + 1;
  }
  http_target tg{addrs};
  tally t;
  auto out = run_workload(tg, o, t);
  if (!out) {
    std::fprintf(stderr, "bank: %s\n", out.error().to_string().c_str());
    return 2;
  }
  report(o, t, *out, std::to_string(addrs.size()) + " bank nodes (" + nodes + ")", 0, 0, 0, 0, true);
  return out->ok ? 0 : 1;
}

} // namespace bank
