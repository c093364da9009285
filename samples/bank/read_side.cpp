// The bank's read side: the state topic of accounts, the enrichment join, the SQLite model.
#include "read_side.hpp"

#include <sqlite3.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "account.hpp"
#include "cafes/actors/projection.hpp"
#include "cafes/persistence/kv_table.hpp"
#include "cafes/persistence/topics.hpp"
#include "cafes/runtime/metrics.hpp"
#include "transfer.hpp"

namespace bank {

using cafes::errc;
using cafes::error;
using cafes::expected;

std::string enriched_topic(const std::string& ns) {
  return ns + ".bank.transfers-enriched";
}

namespace {

// ---- SQLite ---------------------------------------------------------------------------------

/// A prepared statement, finalized when it goes out of scope.
struct stmt {
  sqlite3_stmt* s = nullptr;
  stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s, nullptr); }
  ~stmt() { sqlite3_finalize(s); }
  stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(s, i, v);
    return *this;
  }
  std::string text(int i) const {
    auto* p = sqlite3_column_text(s, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
};

/// Errors of the SQLite read model ("read_model:sql_failed: …").
CAFES_ERROR_ENUM(read_model_errc, "read_model", sql_failed);

error sql_error(sqlite3* db, const std::string& what) {
  return error{read_model_errc::sql_failed, what + ": " + (db ? sqlite3_errmsg(db) : "out of memory")};
}

expected<void> exec(sqlite3* db, const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    error e{read_model_errc::sql_failed, std::string{msg ? msg : "error"} + " in: " + sql};
    sqlite3_free(msg);
    return e;
  }
  return {};
}

/// Runs a statement to completion.
expected<void> run(sqlite3* db, stmt& st, const char* what) {
  if (!st.s)
    return sql_error(db, std::string{"cannot prepare "} + what);
  auto rc = sqlite3_step(st.s);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return sql_error(db, what);
  return {};
}

constexpr const char* schema = R"(
  PRAGMA journal_mode = WAL;
  PRAGMA synchronous = FULL;
  CREATE TABLE IF NOT EXISTS balances (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', balance INTEGER NOT NULL DEFAULT 0,
    seq INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY, from_id TEXT NOT NULL DEFAULT '', to_id TEXT NOT NULL DEFAULT '',
    amount INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
    updated TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0);
  CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL, part INTEGER NOT NULL, next INTEGER NOT NULL, PRIMARY KEY (topic, part));
)";

expected<sqlite3*> open_db(const std::string& file) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    auto e = sql_error(db, "cannot open " + file);
    sqlite3_close(db);
    return e;
  }
  sqlite3_busy_timeout(db, 10'000); // instances of the projection on one file take turns
  if (auto ok = exec(db, schema); !ok) {
    sqlite3_close(db);
    return std::move(ok).error();
  }
  return db;
}

/// The read model: a projection_store on SQLite.
class sqlite_store final : public cafes::projection_store {
 public:
  explicit sqlite_store(sqlite3* db) : db_(db) {}
  ~sqlite_store() override { sqlite3_close(db_); }

  expected<std::optional<cafes::offset>> position(const std::string& topic, cafes::partition_id p) override {
    stmt st{db_, "SELECT next FROM positions WHERE topic = ? AND part = ?"};
    st.bind(1, topic).bind(2, std::int64_t{p.value()});
    auto rc = sqlite3_step(st.s);
    if (rc == SQLITE_ROW)
      return std::optional<cafes::offset>{cafes::offset{sqlite3_column_int64(st.s, 0)}};
    if (rc == SQLITE_DONE)
      return std::optional<cafes::offset>{};
    return sql_error(db_, "cannot read a position");
  }

  expected<void> begin() override { return exec(db_, "BEGIN IMMEDIATE"); }

  expected<void> handle(const cafes::projected_event& e) override {
    const auto& id = e.envelope.id.str();
    const auto seq = static_cast<std::int64_t>(e.envelope.seq.value());
    auto balance = [&](std::int64_t delta, const std::string* owner) {
      stmt st{db_, owner ? "INSERT INTO balances (id, owner, balance, seq) VALUES (?1, ?2, ?3, ?4) "
                           "ON CONFLICT(id) DO UPDATE SET owner = ?2, balance = balance + ?3, seq = ?4"
                         : "INSERT INTO balances (id, balance, seq) VALUES (?1, ?3, ?4) "
                           "ON CONFLICT(id) DO UPDATE SET balance = balance + ?3, seq = ?4"};
      st.bind(1, id).bind(3, delta).bind(4, seq);
      if (owner)
        st.bind(2, *owner);
      return run(db_, st, "cannot update a balance");
    };
    auto status = [&](transfer_status s, const std::string& reason) {
      stmt st{db_, "INSERT INTO transfers (id, status, reason, updated, seq) VALUES (?1, ?2, ?3, ?4, ?5) "
                   "ON CONFLICT(id) DO UPDATE SET status = ?2, reason = ?3, updated = ?4, seq = ?5"};
      st.bind(1, id).bind(2, std::string{to_string(s)}).bind(3, reason);
      st.bind(4, cafes::format_rfc3339(e.envelope.time_ms)).bind(5, seq);
      return run(db_, st, "cannot update a transfer");
    };
    expected<void> out;
    bool known = cafes::visit_event<account>(e, [&](const auto& ev) {
      using E = std::decay_t<decltype(ev)>;
      if constexpr (std::is_same_v<E, opened>)
        out = balance(0, &ev.owner);
      else if constexpr (std::is_same_v<E, deposited>)
        out = balance(ev.amount, nullptr);
      else if constexpr (std::is_same_v<E, withdrawn>)
        out = balance(-ev.amount, nullptr);
      else if constexpr (std::is_same_v<E, leg_applied>)
        out = balance(ev.leg == leg_kind::debit ? -ev.amount : ev.amount, nullptr);
    });
    if (known)
      return out;
    cafes::visit_event<transfer>(e, [&](const auto& ev) {
      using E = std::decay_t<decltype(ev)>;
      if constexpr (std::is_same_v<E, transfer_started>) {
        stmt st{db_, "INSERT INTO transfers (id, from_id, to_id, amount, status, updated, seq) "
                     "VALUES (?1, ?2, ?3, ?4, 'started', ?5, ?6) ON CONFLICT(id) DO UPDATE SET from_id = ?2, "
                     "to_id = ?3, amount = ?4, status = 'started', updated = ?5, seq = ?6"};
        st.bind(1, id).bind(2, ev.from).bind(3, ev.to).bind(4, ev.amount);
        st.bind(5, cafes::format_rfc3339(e.envelope.time_ms)).bind(6, seq);
        out = run(db_, st, "cannot record a transfer");
      } else if constexpr (std::is_same_v<E, transfer_debited>) {
        out = status(transfer_status::debited, "");
      } else if constexpr (std::is_same_v<E, transfer_rejected>) {
        out = status(transfer_status::rejected, ev.reason);
      } else if constexpr (std::is_same_v<E, transfer_credited>) {
        out = status(transfer_status::completed, "");
      } else if constexpr (std::is_same_v<E, transfer_credit_failed>) {
        out = status(transfer_status::credit_failed, ev.reason);
      } else if constexpr (std::is_same_v<E, transfer_compensated>) {
        out = status(transfer_status::compensated, "");
      }
    });
    return out;
  }

  expected<void> commit(const std::vector<cafes::position_advance>& advances) override {
    for (auto& a : advances) {
      auto have = position(a.topic, a.partition);
      if (!have)
        return std::move(have).error();
      auto at = *have ? (*have)->value() : -1;
      if (at != a.from.value())
        return error{errc::fenced, "the read model holds " + std::to_string(at) + " for " + a.topic + "/" +
                                     std::to_string(a.partition.value()) + ", not " +
                                     std::to_string(a.from.value()) + ": another instance moved it on"};
      stmt st{db_, "INSERT INTO positions (topic, part, next) VALUES (?1, ?2, ?3) "
                   "ON CONFLICT(topic, part) DO UPDATE SET next = ?3"};
      st.bind(1, a.topic).bind(2, std::int64_t{a.partition.value()}).bind(3, a.to.value());
      if (auto ok = run(db_, st, "cannot store a position"); !ok)
        return ok;
    }
    return exec(db_, "COMMIT");
  }

  void rollback() override { (void)exec(db_, "ROLLBACK"); }

  expected<void> clear() override {
    return exec(db_, "BEGIN IMMEDIATE; DELETE FROM balances; DELETE FROM transfers; DELETE FROM positions; COMMIT;");
  }

  sqlite3* db() const { return db_; }

 private:
  sqlite3* db_;
};

expected<nlohmann::json> report_of(sqlite3* db, int recent) {
  nlohmann::json out;
  out["balances"] = nlohmann::json::array();
  out["transfers"] = nlohmann::json::array();
  stmt b{db, "SELECT id, owner, balance, seq FROM balances ORDER BY id"};
  if (!b.s)
    return sql_error(db, "cannot read balances");
  while (sqlite3_step(b.s) == SQLITE_ROW)
    out["balances"].push_back({{"id", b.text(0)},
                               {"owner", b.text(1)},
                               {"balance", sqlite3_column_int64(b.s, 2)},
                               {"seq", sqlite3_column_int64(b.s, 3)}});
  stmt t{db, "SELECT id, from_id, to_id, amount, status, reason, updated FROM transfers "
             "ORDER BY updated DESC, id LIMIT ?"};
  if (!t.s)
    return sql_error(db, "cannot read transfers");
  sqlite3_bind_int(t.s, 1, recent);
  while (sqlite3_step(t.s) == SQLITE_ROW)
    out["transfers"].push_back({{"id", t.text(0)},
                                {"from", t.text(1)},
                                {"to", t.text(2)},
                                {"amount", sqlite3_column_int64(t.s, 3)},
                                {"status", t.text(4)},
                                {"reason", t.text(5)},
                                {"updated", t.text(6)}});
  return out;
}

} // namespace

expected<nlohmann::json> read_report(const std::string& file, int recent) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    auto e = sql_error(db, "cannot open " + file);
    sqlite3_close(db);
    return e;
  }
  sqlite3_busy_timeout(db, 10'000);
  auto r = report_of(db, recent);
  sqlite3_close(db);
  return r;
}

int print_report(const std::string& file, int recent, bool json) {
  if (!std::ifstream{file}) {
    std::fprintf(stderr, "bank report: no read model at %s\n", file.c_str());
    return 2;
  }
  auto r = read_report(file, recent);
  if (!r) {
    std::fprintf(stderr, "bank report: %s\n", r.error().to_string().c_str());
    return 2;
  }
  if (json) {
    std::printf("%s\n", r->dump().c_str());
    return 0;
  }
  std::printf("%-24s %-24s %16s\n", "account", "owner", "balance");
  for (auto& b : (*r)["balances"])
    std::printf("%-24s %-24s %16lld\n", b["id"].get<std::string>().c_str(), b["owner"].get<std::string>().c_str(),
                static_cast<long long>(b["balance"].get<std::int64_t>()));
  std::printf("\n%-24s %-16s %-16s %12s %-14s %s\n", "transfer", "from", "to", "amount", "status", "updated");
  for (auto& t : (*r)["transfers"])
    std::printf("%-24s %-16s %-16s %12lld %-14s %s\n", t["id"].get<std::string>().c_str(),
                t["from"].get<std::string>().c_str(), t["to"].get<std::string>().c_str(),
                static_cast<long long>(t["amount"].get<std::int64_t>()), t["status"].get<std::string>().c_str(),
                t["updated"].get<std::string>().c_str());
  return 0;
}

// ---- the projections --------------------------------------------------------------------------

struct read_side::impl {
  cafes::kafka_config kafka;
  std::string ns;
  std::shared_ptr<const cafes::aggregate_ops> accounts = cafes::make_ops<account>();
  std::unique_ptr<cafes::kv_table> owners; // the account state topic, for the join
  std::shared_ptr<sqlite_store> store;
  std::vector<std::pair<std::string, std::unique_ptr<cafes::projection>>> projections;
  std::vector<cafes::metrics_registration> watches; // each projection's metrics, on the node's
  /// How long the join waits for an account missing from the table.
  std::chrono::milliseconds owner_wait{5'000};

  /// The owner of account `id` as the state topic has it: its owner once it is open, null
  /// when the table knows it is not open (a transfer's leg to it was refused), or null when it
  /// is still not in the table after `wait` (a left join: an account that never opened).
  /// Waiting covers the state projection's lag behind the account events: an account opened
  /// just before the transfer reaches the table a moment later.
  expected<nlohmann::json> owner_of(const std::string& id, std::chrono::milliseconds wait) {
    const auto deadline = std::chrono::steady_clock::now() + wait;
    for (;;) {
      if (auto r = owners->get(id)) {
        auto s = cafes::decode_state_record<account>(*r, *accounts);
        if (!s)
          return std::move(s).error();
        return s->open ? nlohmann::json(s->owner) : nlohmann::json(nullptr);
      }
      if (std::chrono::steady_clock::now() >= deadline)
        return nlohmann::json(nullptr);
      (void)owners->sync(std::chrono::milliseconds{200}); // it may be on its way
    }
  }

  expected<void> enrich(const cafes::projected_event& e, cafes::projection_output& out) {
    auto* s = e.get<transfer_started>();
    if (!s)
      return {}; // one record per transfer: at its start
    auto from = owner_of(s->from, owner_wait);
    if (!from)
      return std::move(from).error();
    auto to = owner_of(s->to, owner_wait);
    if (!to)
      return std::move(to).error();
    nlohmann::json j{{"transfer", e.envelope.id.str()}, {"from", s->from},   {"from_owner", *from},
                     {"to", s->to},                     {"to_owner", *to},   {"amount", s->amount},
                     {"time", cafes::format_rfc3339(e.envelope.time_ms)}};
    cafes::record r;
    r.topic = enriched_topic(ns);
    r.partition = e.partition;
    r.key = e.envelope.id.str();
    r.value = j.dump();
    r.headers.push_back({"content-type", "application/json"});
    out.send(std::move(r));
    return {};
  }
};

read_side::read_side(std::unique_ptr<impl> p) : impl_(std::move(p)) {}

read_side::~read_side() {
  // Their metrics first, then the projections (the join reads the owners table).
  impl_->watches.clear();
  for (auto& [_, p] : impl_->projections)
    p.reset();
}

expected<std::unique_ptr<read_side>> read_side::start(cafes::node& node, const read_side_options& o) {
  auto kafka = node.kafka();
  if (!kafka)
    return std::move(kafka).error();
  auto d = std::make_unique<impl>();
  d->kafka = *kafka;
  d->ns = node.config().ns;
  const auto instance = node.config().node_name;
  std::vector<cafes::topic_spec> specs;
  if (o.state_topic)
    specs.push_back(cafes::state_topic_spec(d->ns, account::name, o.partitions, o.replication));
  if (o.state_topic && o.enrich)
    specs.push_back({enriched_topic(d->ns), o.partitions, o.replication, "delete", {}});
  if (auto ok = cafes::ensure_topics(d->kafka, specs); !ok)
    return std::move(ok).error();
  // `what` names the projection in errors and in its metrics' label.
  auto add = [&](std::string what, expected<std::unique_ptr<cafes::projection>> p) -> expected<void> {
    if (!p)
      return error{p.error().code, what + ": " + p.error().message};
    d->watches.push_back(node.metrics()->add(cafes::projection_metrics(what, **p)));
    d->projections.emplace_back(std::move(what), std::move(*p));
    return {};
  };
  if (o.state_topic) {
    cafes::projection_options po;
    po.instance = instance;
    if (auto ok = add("account state topic", cafes::start_state_topic<account>(d->kafka, d->ns, po)); !ok)
      return std::move(ok).error();
  }
  if (o.state_topic && o.enrich) {
    auto t = cafes::kv_table::open(d->kafka, cafes::topic_names::of(d->ns, account::name).state,
                                   d->kafka.request_timeout);
    if (!t)
      return std::move(t).error();
    d->owners = std::move(*t);
    cafes::projection_options po;
    po.name = enriched_topic(d->ns) + "-projection";
    po.instance = instance;
    po.sources.push_back(cafes::source_of<transfer>(d->ns));
    po.outputs.push_back(enriched_topic(d->ns));
    auto* raw = d.get();
    if (auto ok = add("transfer enrichment",
                      cafes::projection::exactly_once(d->kafka, po, [raw](const auto& e, auto& out) {
                        return raw->enrich(e, out);
                      }));
        !ok)
      return std::move(ok).error();
  }
  if (!o.db.empty()) {
    auto db = open_db(o.db);
    if (!db)
      return std::move(db).error();
    d->store = std::make_shared<sqlite_store>(*db);
    cafes::projection_options po;
    po.name = d->ns + ".bank.read-model";
    po.instance = instance;
    po.sources.push_back(cafes::source_of<account>(d->ns));
    po.sources.push_back(cafes::source_of<transfer>(d->ns));
    if (auto ok = add("read model", cafes::projection::into_store(d->kafka, po, d->store)); !ok)
      return std::move(ok).error();
  }
  return std::unique_ptr<read_side>{new read_side(std::move(d))};
}

expected<void> read_side::wait_caught_up(std::chrono::milliseconds timeout) {
  for (auto& [what, p] : impl_->projections)
    if (auto ok = p->wait_caught_up(timeout); !ok)
      return error{ok.error().code, what + ": " + ok.error().message};
  return {};
}

nlohmann::json read_side::status() const {
  auto out = nlohmann::json::object();
  for (auto& [what, p] : impl_->projections) {
    auto st = p->stats();
    std::int64_t lag = 0;
    auto parts = nlohmann::json::array();
    for (auto& l : p->lag()) {
      lag += l.lag();
      parts.push_back({{"topic", l.topic}, {"partition", l.partition.value()}, {"position", l.position.value()},
                       {"end", l.end.value()}, {"lag", l.lag()}});
    }
    auto failure = p->failure();
    out[what] = {{"handled", st.handled},
                 {"batches", st.batches},
                 {"retries", st.retries},
                 {"dead_letters", st.dead_letters},
                 {"rebalances", st.rebalances},
                 {"aborted", st.aborted},
                 {"lag", lag},
                 {"partitions", parts},
                 {"failure", failure ? failure->to_string() : ""}};
  }
  return out;
}

expected<nlohmann::json> read_side::redrive(std::chrono::milliseconds timeout) {
  auto out = nlohmann::json::object();
  for (auto& [what, p] : impl_->projections) {
    auto r = p->redrive(timeout);
    if (!r)
      return error{r.error().code, what + ": " + r.error().message};
    out[what] = {{"letters", r->letters}, {"redriven", r->redriven}, {"failed_again", r->failed_again}};
  }
  return out;
}

expected<void> read_side::reset(std::chrono::milliseconds timeout) {
  for (auto& [what, p] : impl_->projections)
    if (auto ok = p->reset(timeout); !ok)
      return error{ok.error().code, what + ": " + ok.error().message};
  return {};
}

expected<nlohmann::json> read_side::report(int recent) const {
  if (!impl_->store)
    return error{errc::invalid_argument, "this node keeps no read model (start it with --read-model FILE)"};
  return report_of(impl_->store->db(), recent);
}

} // namespace bank
