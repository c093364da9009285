// bank_schemas: the bank's schema gate and journal archive (docs/schema-evolution.md).
//
//   bank_schemas export --dir DIR     writes DIR/account.json and DIR/transfer.json (this build's schemas)
//   bank_schemas check --dir DIR      compares this build's schemas with DIR's: exit 1 on an
//                                     incompatible change, 0 otherwise (a compatible one is printed)
//   bank_schemas archive --out FILE   runs a fixed bank scenario on memory storage and writes its
//                                     journal (FILE, JSON lines) and the states it folds to
//                                     (FILE with .expected.json in place of .jsonl)
#include <chrono>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "account.hpp"
#include "archive.hpp"
#include "cafes/actors/schema.hpp"
#include "cafes/runtime/node.hpp"
#include "saga.hpp"
#include "transfer.hpp"

namespace {

using namespace cafes;

int usage() {
  std::cerr << "usage: bank_schemas export --dir DIR | check --dir DIR | archive --out FILE.jsonl\n";
  return 2;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    throw std::runtime_error{"cannot read " + path};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

template <class A>
int export_one(const std::string& dir) {
  const auto path = dir + "/" + std::string{A::name} + ".json";
  std::ofstream out{path, std::ios::binary | std::ios::trunc};
  out << export_schemas<A>();
  if (!out)
    return std::cerr << "bank_schemas: cannot write " << path << "\n", 1;
  std::cout << "wrote " << path << "\n";
  return 0;
}

/// 0: the same; 1: incompatible; 3: compatible but the committed file is out of date.
template <class A>
int check_one(const std::string& dir) {
  const auto path = dir + "/" + std::string{A::name} + ".json";
  auto r = check_schemas<A>(read_file(path));
  if (!r)
    return std::cerr << "bank_schemas: " << path << ": " << r.error().to_string() << "\n", 1;
  if (r->same())
    return 0;
  std::cerr << path << ":\n" << r->to_string();
  if (!r->compatible()) {
    std::cerr << "bank_schemas: an incompatible change to the events or state of '" << A::name
              << "': bump the type's version and add an upcaster (docs/schema-evolution.md)\n";
    return 1;
  }
  std::cerr << "bank_schemas: compatible, but the committed schemas are out of date: regenerate them with "
               "bank_schemas export --dir tests/data/schemas\n";
  return 3;
}

template <class T>
nlohmann::json as_json(const T& v) {
  auto bytes = detail::pack_value(v);
  return nlohmann::json::from_msgpack(bytes);
}

template <class T>
T must(expected<T> r, const std::string& what) {
  if (!r)
    throw std::runtime_error{what + ": " + r.error().to_string()};
  if constexpr (!std::is_void_v<T>)
    return std::move(*r);
}

int archive(const std::string& out_path) {
  using namespace bank;
  constexpr std::int32_t parts = 4;
  std::shared_ptr<journal> aj = make_memory_journal("bank.account.events", parts);
  std::shared_ptr<journal> tj = make_memory_journal("bank.transfer.events", parts);
  host_options ao;
  ao.partitions = parts;
  ao.journal = aj;
  ao.snapshots = make_memory_snapshot_store(parts);
  host_options to = ao;
  to.journal = tj;
  to.snapshots = make_memory_snapshot_store(parts);
  node_config cfg;
  cfg.storage = storage_kind::memory;
  cfg.ns = "bank";
  cfg.log_level = "warn";
  cfg.threads = 2;
  node n{cfg};
  must(host_bank(n, ao, to), "host");
  must(n.wait_ready(std::chrono::seconds{30}), "ready");

  // The scenario: three accounts, deposits with and without a reference, withdrawals (one
  // into the overdraft), and a transfer of each outcome: completed, rejected, compensated.
  must(n.ask<account>("acc-1", open{"ann", 0}, "c-open-1"), "open acc-1");
  must(n.ask<account>("acc-2", open{"bob", 50}, "c-open-2"), "open acc-2");
  must(n.ask<account>("acc-3", open{"cid", 0}, "c-open-3"), "open acc-3");
  must(n.ask<account>("acc-1", deposit{100, "d-1"}, "c-d-1"), "deposit");
  must(n.ask<account>("acc-1", deposit{25, ""}, "c-d-2"), "deposit");
  must(n.ask<account>("acc-2", deposit{30, "d-2"}, "c-d-3"), "deposit");
  must(n.ask<account>("acc-3", deposit{10, "d-3"}, "c-d-4"), "deposit");
  must(n.ask<account>("acc-1", withdraw{20, "w-1"}, "c-w-1"), "withdraw");
  must(n.ask<account>("acc-2", withdraw{60, "w-2"}, "c-w-2"), "withdraw");
  const std::vector<std::tuple<std::string, std::string, std::string, std::int64_t, transfer_status>> transfers{
    {"t-1", "acc-1", "acc-2", 40, transfer_status::completed},
    {"t-2", "acc-3", "acc-1", 500, transfer_status::rejected},
    {"t-3", "acc-1", "acc-9", 10, transfer_status::compensated},
  };
  for (auto& [id, from, to_acc, amount, want] : transfers) {
    auto st = must(run_transfer(n, id, from, to_acc, amount), "transfer " + id);
    if (st != want)
      throw std::runtime_error{"transfer " + id + " ended " + std::string{to_string(st)}};
  }
  // The saga settles the legs after the final status: wait until every transfer recorded it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  for (auto& t : transfers)
    while (!must(n.ask<transfer>(std::get<0>(t), get_transfer{}), "get transfer").settled) {
      if (std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error{"transfer " + std::get<0>(t) + " was not settled in time"};
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }

  nlohmann::ordered_json expected;
  expected["partitions"] = parts;
  auto states = [&]<class A>(const std::vector<std::string>& ids) {
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    for (auto& id : ids) {
      auto h = must(n.history<A>(id), "history of " + id);
      out[id] = as_json(must(n.state_at<A>(id, h.back().seq.value()), "state of " + id));
    }
    return out;
  };
  expected["account"] = states.template operator()<account>({"acc-1", "acc-2", "acc-3", "acc-9"});
  expected["transfer"] = states.template operator()<transfer>({"t-1", "t-2", "t-3"});

  std::ofstream out{out_path, std::ios::binary | std::ios::trunc};
  test::write_archive(out, *aj);
  test::write_archive(out, *tj);
  auto exp_path = out_path;
  if (exp_path.ends_with(".jsonl"))
    exp_path.resize(exp_path.size() - 6);
  exp_path += ".expected.json";
  std::ofstream exp{exp_path, std::ios::binary | std::ios::trunc};
  exp << expected.dump(2) << "\n";
  if (!out || !exp)
    return std::cerr << "bank_schemas: cannot write the archive\n", 1;
  std::cout << "wrote " << out_path << " and " << exp_path << "\n";
  n.stop();
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  if (argc != 4)
    return usage();
  const std::string cmd = argv[1], flag = argv[2], arg = argv[3];
  try {
    if (cmd == "export" && flag == "--dir") {
      int rc = export_one<bank::account>(arg);
      return rc ? rc : export_one<bank::transfer>(arg);
    }
    if (cmd == "check" && flag == "--dir") {
      int a = check_one<bank::account>(arg);
      int t = check_one<bank::transfer>(arg);
      return a == 1 || t == 1 ? 1 : 0;
    }
    if (cmd == "archive" && flag == "--out")
      return archive(arg);
  } catch (const std::exception& ex) {
    std::cerr << "bank_schemas: " << ex.what() << "\n";
    return 1;
  }
  return usage();
}
