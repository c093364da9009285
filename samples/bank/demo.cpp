// The bank demo: a random mixed workload of deposits, withdrawals and transfers, then checks.
#include "demo.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

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
  for (int i = 0; i < 5 && !r && !is_rejection(r.error()); ++i) {
    ++t.retried;
    r = f();
  }
  return r;
}

void run_command(cafes::node& node, const demo_options& o, int j, tally& t) {
  std::mt19937 rng{o.seed * 7919u + static_cast<std::uint32_t>(j)};
  auto pick = [&] { return "acc-" + std::to_string(rng() % static_cast<unsigned>(o.accounts)); };
  const auto kind = rng() % 100;
  const auto ref = "c" + std::to_string(j);
  if (kind < 35) {
    std::int64_t amount = 1 + rng() % 500;
    const auto id = pick(); // a retry goes to the same account with the same ref
    auto r = with_retries(t, [&] { return node.ask<account>(id, deposit{amount, ref}, ref); });
    if (r)
      t.deposited += amount;
    else
      ++(is_rejection(r.error()) ? t.rejected : t.failed);
  } else if (kind < 65) {
    std::int64_t amount = 1 + rng() % 800;
    const auto id = pick();
    auto r = with_retries(t, [&] { return node.ask<account>(id, withdraw{amount, ref}, ref); });
    if (r)
      t.withdrawn += amount;
    else
      ++(is_rejection(r.error()) ? t.rejected : t.failed);
  } else if (kind < 98) {
    auto from = pick();
    auto to = kind < 95 ? pick() : "ghost-" + std::to_string(j); // a ghost account is never open
    if (to == from)
      to = "acc-" + std::to_string((std::stoi(from.substr(4)) + 1) % o.accounts);
    std::int64_t amount = 1 + rng() % 600;
    auto tid = "t" + std::to_string(j);
    auto r = with_retries(t, [&] { return run_transfer(node, tid, from, to, amount); });
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
    auto r = kind == 98 ? node.ask<account>(pick(), withdraw{-5, ref}, ref)
                        : node.ask<account>("ghost-" + std::to_string(j), deposit{10, ref}, ref);
    if (!r && is_rejection(r.error()))
      ++t.rejected;
    else
      ++t.failed;
  }
  ++t.done;
}

} // namespace

int run_demo(cafes::node& node, const demo_options& o) {
  using clock = std::chrono::steady_clock;
  if (auto ok = host_bank(node, o.partitions, o.snapshot_every); !ok) {
    std::fprintf(stderr, "bank: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  if (auto ok = node.wait_ready(std::chrono::seconds{60}); !ok) {
    std::fprintf(stderr, "bank: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  const std::int64_t initial = 1000;
  for (int a = 0; a < o.accounts; ++a) {
    auto id = "acc-" + std::to_string(a);
    auto opened_ok = node.ask<account>(id, open{"owner-" + std::to_string(a), a % 4 == 0 ? 200 : 0}, id + ":open");
    auto funded = node.ask<account>(id, deposit{initial, id + ":init"}, id + ":init");
    if (!opened_ok || !funded) {
      std::fprintf(stderr, "bank: cannot open %s: %s\n", id.c_str(),
                   (!opened_ok ? opened_ok.error() : funded.error()).to_string().c_str());
      return 2;
    }
  }
  tally t;
  const auto t0 = clock::now();
  std::atomic<int> next{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < o.workers; ++w)
    workers.emplace_back([&] {
      for (int j = next++; j < o.commands; j = next++)
        run_command(node, o, j, t);
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
  const auto secs = std::chrono::duration<double>(clock::now() - t0).count();
  std::fprintf(stderr, "\rbank demo: %d/%d commands done%30s\n", o.commands, o.commands, "");

  // Finish any transfer an infrastructure error left pending, then verify.
  auto resumed = resume_transfers(node);
  std::int64_t actual = 0;
  std::size_t accounts = 0;
  for (int a = 0; a < o.accounts; ++a) {
    auto b = node.ask<account>("acc-" + std::to_string(a), get_balance{});
    if (b) {
      actual += *b;
      ++accounts;
    }
  }
  auto pending = node.query<transfer>([](const transfer::state& s) { return s.pending(); });
  const std::int64_t expected = initial * o.accounts + t.deposited.load() - t.withdrawn.load();
  const bool ok = resumed && pending && pending->empty() && accounts == static_cast<std::size_t>(o.accounts) &&
                  expected == actual && t.failed.load() == 0;
  auto acc_stats = node.stats("account");
  auto tr_stats = node.stats("transfer");
  const auto events = acc_stats->events_persisted.load() + tr_stats->events_persisted.load();
  const auto batches = acc_stats->batches.load() + tr_stats->batches.load();
  std::printf("bank demo on %s storage (%s)\n", node.durable() ? "durable" : "NON-DURABLE",
              node.config().bootstrap.empty() ? "embedded mock cluster" : node.config().bootstrap.c_str());
  std::printf("  accounts:              %zu\n", accounts);
  std::printf("  commands:              %d in %.2f s (%.0f commands/s), %llu rejected as expected, %llu retried\n",
              o.commands, secs, o.commands / secs, static_cast<unsigned long long>(t.rejected.load()),
              static_cast<unsigned long long>(t.retried.load()));
  std::printf("  events:                %llu (%.0f events/s incl. set-up), %llu journal batches (avg %.1f events)\n",
              static_cast<unsigned long long>(events), events / secs, static_cast<unsigned long long>(batches),
              batches ? static_cast<double>(acc_stats->batch_events + tr_stats->batch_events) / static_cast<double>(batches)
                      : 0.0);
  std::printf("  transfers:             %llu completed, %llu compensated, %llu rejected\n",
              static_cast<unsigned long long>(t.completed.load()), static_cast<unsigned long long>(t.compensated.load()),
              static_cast<unsigned long long>(t.transfers_rejected.load()));
  std::printf("  expected total:        %lld\n  actual total:          %lld\n", static_cast<long long>(expected),
              static_cast<long long>(actual));
  std::printf("  pending transfers:     %zu\n", pending ? pending->size() : 0);
  std::printf("  snapshots written:     %llu\n",
              static_cast<unsigned long long>(acc_stats->snapshots_written + tr_stats->snapshots_written));
  std::printf("invariant_ok: %s\n", ok ? "true" : "false");
  if (o.json) {
    nlohmann::json j{
      {"commands", o.commands},
      {"events", events},
      {"accounts", accounts},
      {"transfers_completed", t.completed.load()},
      {"transfers_compensated", t.compensated.load()},
      {"transfers_rejected", t.transfers_rejected.load()},
      {"rejected", t.rejected.load()},
      {"failed", t.failed.load()},
      {"expected_total", expected},
      {"actual_total", actual},
      {"invariant_ok", ok},
      {"seconds", secs},
      {"commands_per_s", o.commands / secs},
      {"events_per_s", static_cast<double>(events) / secs},
      {"durable", node.durable()},
    };
    std::printf("%s\n", j.dump().c_str());
  }
  return ok ? 0 : 1;
}

} // namespace bank
