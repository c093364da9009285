// bank_chaos_verify: the checks of scripts/chaos.sh. Reads the bank's journal with a plain
// librdkafka consumer and msgpack-c (the wire format of docs/wire-format.md, not cafes's
// journal classes) and checks it against the driver's operation log and the balances the node
// answered. Prints one JSON line; exits 1 if any invariant is violated.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>
#include <librdkafka/rdkafka.h>
#include <msgpack.hpp>
#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

struct options {
  std::string bootstrap, ns, mode = "idempotent", log, balances, report;
  bool read_side = false; // check the account state topic and the enriched transfers
  double timeout = 60; // seconds to read each topic to its end
};

/// One journal record, decoded.
struct event {
  std::string where; // topic/partition@offset, for messages
  std::string id, type;
  std::uint64_t seq = 0;
  std::int64_t amount = 0;
  std::string ref, from, to;
  std::string transfer; // account.leg_applied, account.leg_refused, account.legs_settled
  int leg = -1;         // account.leg_applied: 0 debit, 1 credit, 2 refund
  std::string owner;    // account.opened
};

class checker {
 public:
  void fail(std::string what) { violations_.push_back(std::move(what)); }
  const std::vector<std::string>& violations() const { return violations_; }

 private:
  std::vector<std::string> violations_;
};

std::optional<std::string> header(rd_kafka_headers_t* hdrs, const char* name) {
  const void* v = nullptr;
  size_t n = 0;
  if (!hdrs || rd_kafka_header_get_last(hdrs, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
    return std::nullopt;
  return std::string{static_cast<const char*>(v), n};
}

/// Decodes one record per the wire format; reports what does not conform.
std::optional<event> decode(const rd_kafka_message_t* m, checker& c) {
  event e;
  e.where = std::string{rd_kafka_topic_name(m->rkt)} + "/" + std::to_string(m->partition) + "@" +
            std::to_string(m->offset);
  rd_kafka_headers_t* hdrs = nullptr;
  rd_kafka_message_headers(m, &hdrs);
  auto subject = header(hdrs, "ce_subject");
  auto type = header(hdrs, "ce_type");
  auto seq = header(hdrs, "ce_cafesseq");
  if (!subject || !type || !seq) {
    c.fail(e.where + ": a required header is missing");
    return std::nullopt;
  }
  e.id = *subject;
  e.type = *type;
  if (!m->key || std::string{static_cast<const char*>(m->key), m->key_len} != e.id)
    c.fail(e.where + ": the key differs from ce_subject " + e.id);
  try {
    e.seq = std::stoull(*seq);
  } catch (const std::exception&) {
    c.fail(e.where + ": ce_cafesseq '" + *seq + "' is not a number");
    return std::nullopt;
  }
  try {
    std::size_t off = 0;
    auto oh = msgpack::unpack(static_cast<const char*>(m->payload), m->len, off);
    if (oh.get().type != msgpack::type::MAP || off != m->len)
      throw std::runtime_error("not exactly one map");
    for (auto& kv : oh.get().via.map) {
      auto key = kv.key.as<std::string>();
      if (key == "amount")
        e.amount = kv.val.as<std::int64_t>();
      else if (key == "ref" || key == "reference") // account.deposited version 1 or 2
        e.ref = kv.val.as<std::string>();
      else if (key == "from")
        e.from = kv.val.as<std::string>();
      else if (key == "to")
        e.to = kv.val.as<std::string>();
      else if (key == "transfer")
        e.transfer = kv.val.as<std::string>();
      else if (key == "leg")
        e.leg = kv.val.as<int>();
      else if (key == "owner")
        e.owner = kv.val.as<std::string>();
    }
  } catch (const std::exception& x) {
    c.fail(e.where + ": malformed value (" + x.what() + ")");
    return std::nullopt;
  }
  return e;
}

/// Reads every partition of `topic` from the beginning to its end (the last stable offset when
/// `committed`) and hands each record to `f` in offset order.
void consume_topic(const options& o, const std::string& topic, checker& c, bool committed,
                   const std::function<void(const rd_kafka_message_t*)>& f) {
  char err[512];
  auto* conf = rd_kafka_conf_new();
  // librdkafka's lines, under the verifier's name (never its raw "%3|…" lines).
  rd_kafka_conf_set_log_cb(conf, [](const rd_kafka_t* rk, int level, const char* fac, const char* buf) {
    std::fprintf(stderr, "bank_chaos_verify: librdkafka %s (level %d) %s: %s\n", rk ? rd_kafka_name(rk) : "-", level,
                 fac, buf);
  });
  for (auto [k, v] : {std::pair<const char*, std::string>{"bootstrap.servers", o.bootstrap},
                      {"group.id", "chaos-verify"}, {"enable.auto.commit", "false"},
                      {"enable.partition.eof", "true"},
                      {"isolation.level", committed ? "read_committed" : "read_uncommitted"}})
    if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      c.fail(std::string{"consumer config "} + k + ": " + err);
  auto* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
  if (!rk) {
    c.fail(std::string{"cannot create a consumer: "} + err);
    return;
  }
  rd_kafka_poll_set_consumer(rk);
  const rd_kafka_metadata_t* md = nullptr;
  auto* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
  const int tmo = static_cast<int>(o.timeout * 1000);
  if (rd_kafka_metadata(rk, 0, rkt, &md, tmo) != RD_KAFKA_RESP_ERR_NO_ERROR || md->topic_cnt != 1 ||
      md->topics[0].err) {
    c.fail("no metadata for topic " + topic);
  } else {
    auto* parts = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
    for (int p = 0; p < md->topics[0].partition_cnt; ++p)
      rd_kafka_topic_partition_list_add(parts, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    std::set<std::int32_t> left;
    for (int p = 0; p < parts->cnt; ++p)
      left.insert(p);
    rd_kafka_topic_partition_list_destroy(parts);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds{tmo};
    while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
      auto* m = rd_kafka_consumer_poll(rk, 200);
      if (!m)
        continue;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        left.erase(m->partition);
      else if (m->err)
        c.fail(topic + ": consumer error: " + rd_kafka_message_errstr(m));
      else
        f(m);
      rd_kafka_message_destroy(m);
    }
    if (!left.empty())
      c.fail(topic + ": " + std::to_string(left.size()) + " partition(s) not read to their end in time");
  }
  if (md)
    rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
}

/// Reads every event of a journal topic and checks that each aggregate's seqs run 1, 2, 3, ...
/// in offset order.
std::vector<event> read_topic(const options& o, const std::string& topic, checker& c) {
  std::vector<event> out;
  std::map<std::string, std::uint64_t> last_seq;
  consume_topic(o, topic, c, o.mode == "transactional", [&](const rd_kafka_message_t* m) {
    if (m->key && std::string_view{static_cast<const char*>(m->key), m->key_len} == "__cafes.barrier")
      return; // a barrier record (docs/wire-format.md): no event, skipped like the runtime does
    if (auto e = decode(m, c)) {
      auto& last = last_seq[e->id];
      if (e->seq != last + 1)
        c.fail(e->where + ": " + e->id + " has seq " + std::to_string(e->seq) + " after " + std::to_string(last));
      last = e->seq;
      out.push_back(std::move(*e));
    }
  });
  return out;
}

std::vector<json> read_lines(const std::string& path, checker& c) {
  std::vector<json> out;
  std::ifstream in{path};
  if (!in)
    c.fail("cannot read " + path);
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_discarded())
      c.fail(path + ": a line is not JSON: " + line);
    else
      out.push_back(std::move(j));
  }
  return out;
}

/// The account events of one reference (an operation's ref, or <transfer id>:debit etc.).
using by_ref = std::map<std::string, std::vector<const event*>>;

std::string count_text(std::size_t n) { return std::to_string(n) + (n == 1 ? " time" : " times"); }

/// Checks that `ref` names exactly `want` account events (want 0..1) of `type` for `amount`
/// on `account`; `at_most` relaxes "exactly" to "at most" (outcomes that are unknown).
void expect_ref(checker& c, const by_ref& refs, const std::string& what, const std::string& ref, std::size_t want,
                bool at_most, const std::string& type, const std::string& account, std::int64_t amount) {
  auto it = refs.find(ref);
  const std::size_t n = it == refs.end() ? 0 : it->second.size();
  if (at_most ? n > want : n != want)
    c.fail(what + ": " + ref + " is in the journal " + count_text(n) + ", expected " +
           (at_most ? "at most " : "") + count_text(want));
  if (it == refs.end())
    return;
  for (auto* e : it->second)
    if (e->type != type || e->id != account || e->amount != amount)
      c.fail(what + ": " + ref + " is " + e->type + " of " + std::to_string(e->amount) + " on " + e->id + " at " +
             e->where + ", expected " + type + " of " + std::to_string(amount) + " on " + account);
}

/// Reads every record of `topic`, read committed (projections write in transactions whatever
/// the journal's mode), and hands (key, value) to `f` in offset order.
void read_records(const options& o, const std::string& topic, checker& c,
                  const std::function<void(const std::string&, std::optional<std::string>)>& f) {
  consume_topic(o, topic, c, true, [&](const rd_kafka_message_t* m) {
    f(m->key ? std::string{static_cast<const char*>(m->key), m->key_len} : std::string{},
      m->payload ? std::optional<std::string>{std::string{static_cast<const char*>(m->payload), m->len}}
                 : std::nullopt);
  });
}

/// The read side against the journal: the account state topic holds each account's fold (its
/// balance and owner), and the enriched transfers topic one record per started transfer, with
/// both owners.
void verify_read_side(const options& o, checker& c, const std::map<std::string, std::int64_t>& fold,
                      const std::map<std::string, std::string>& owners,
                      const std::map<std::string, std::vector<const event*>>& started) {
  std::map<std::string, std::optional<std::string>> states;
  read_records(o, o.ns + ".account.state", c, [&](const std::string& k, std::optional<std::string> v) {
    states[k] = std::move(v);
  });
  for (auto& [id, balance] : fold) {
    auto it = states.find(id);
    if (it == states.end() || !it->second) {
      c.fail("the account state topic has no state of " + id);
      continue;
    }
    try {
      // The snapshot layout (docs/wire-format.md): the state is a msgpack map in field "state".
      auto outer = msgpack::unpack(it->second->data(), it->second->size());
      std::string bytes;
      for (auto& kv : outer.get().via.map)
        if (kv.key.as<std::string>() == "state")
          bytes.assign(kv.val.via.bin.ptr, kv.val.via.bin.size);
      auto inner = msgpack::unpack(bytes.data(), bytes.size());
      std::int64_t got = 0;
      std::string owner;
      for (auto& kv : inner.get().via.map) {
        auto key = kv.key.as<std::string>();
        if (key == "balance")
          got = kv.val.as<std::int64_t>();
        else if (key == "owner")
          owner = kv.val.as<std::string>();
      }
      if (got != balance)
        c.fail("the account state topic says " + std::to_string(got) + " for " + id + " but the journal's fold is " +
               std::to_string(balance));
      if (owners.count(id) && owner != owners.at(id))
        c.fail("the account state topic says " + id + " is owned by '" + owner + "'");
    } catch (const std::exception& x) {
      c.fail("the account state topic's record of " + id + " is malformed (" + x.what() + ")");
    }
  }
  std::map<std::string, int> records;
  read_records(o, o.ns + ".bank.transfers-enriched", c, [&](const std::string& k, std::optional<std::string> v) {
    ++records[k];
    auto j = json::parse(v.value_or(""), nullptr, false);
    auto s = started.find(k);
    if (s == started.end() || s->second.empty()) {
      c.fail("the enriched transfers topic has " + k + ", which the journal never started");
      return;
    }
    const auto& e = *s->second.front();
    // An account that never opened (the driver's ghosts) has no owner: null (a left join).
    auto owner = [&](const std::string& id) { return owners.count(id) ? json(owners.at(id)) : json(nullptr); };
    if (!j.is_object() || j.value("from", "") != e.from || j.value("to", "") != e.to ||
        j.value("amount", std::int64_t{-1}) != e.amount || j["from_owner"] != owner(e.from) ||
        j["to_owner"] != owner(e.to))
      c.fail("the enriched record of " + k + " differs from the journal: " + v.value_or("(tombstone)"));
  });
  for (auto& [id, events] : started)
    if (!events.empty() && records[id] != 1)
      c.fail("the enriched transfers topic has " + count_text(static_cast<std::size_t>(records[id])) + " of " + id);
}

int verify(const options& o) {
  checker c;
  auto accounts = read_topic(o, o.ns + ".account.events", c);
  auto transfers = read_topic(o, o.ns + ".transfer.events", c);
  auto ops = read_lines(o.log, c);

  // The journal's fold: balances, and each transfer's status.
  by_ref refs;
  std::set<std::string> refused; // <transfer id>:debit or :credit, refused by an account
  std::map<std::string, std::int64_t> fold;
  std::map<std::string, int> opened;
  std::map<std::string, std::string> owners;
  for (auto& e : accounts) { // (non-const: a leg's ref is derived here)
    if (e.type == "account.opened") {
      ++opened[e.id];
      owners[e.id] = e.owner;
      fold[e.id] += 0;
    } else if (e.type == "account.deposited" || e.type == "account.withdrawn") {
      fold[e.id] += e.type == "account.deposited" ? e.amount : -e.amount;
      refs[e.ref].push_back(&e);
    } else if (e.type == "account.leg_applied" && e.leg >= 0 && e.leg <= 2) {
      // A transfer's leg: a debit takes, a credit or refund gives. Keyed like a ref.
      static const char* const names[] = {":debit", ":credit", ":refund"};
      e.ref = e.transfer + names[e.leg];
      fold[e.id] += e.leg == 0 ? -e.amount : e.amount;
      refs[e.ref].push_back(&e);
    } else if (e.type == "account.leg_refused" && (e.leg == 0 || e.leg == 1)) {
      // A debit or credit refused for good: no money moves, and the transfer must say so.
      if (!refused.insert(e.transfer + (e.leg == 0 ? ":debit" : ":credit")).second)
        c.fail(e.where + ": leg " + std::to_string(e.leg) + " of " + e.transfer + " is refused twice");
    } else if (e.type == "account.legs_settled") {
      // A finished transfer's legs forgotten: no money moves.
    } else {
      c.fail(e.where + ": unknown account event type " + e.type);
    }
  }
  std::map<std::string, std::string> status;          // transfer id -> last status
  std::map<std::string, std::vector<const event*>> started;
  for (auto& e : transfers) {
    static const std::map<std::string, std::string> next{
      {"transfer.started", "started"},     {"transfer.debited", "debited"},
      {"transfer.rejected", "rejected"},   {"transfer.credited", "completed"},
      {"transfer.credit_failed", "credit_failed"}, {"transfer.compensated", "compensated"},
      {"transfer.settled", ""}};
    auto it = next.find(e.type);
    if (it == next.end()) {
      c.fail(e.where + ": unknown transfer event type " + e.type);
      continue;
    }
    if (e.type == "transfer.started")
      started[e.id].push_back(&e);
    if (!it->second.empty()) // settled keeps the final status
      status[e.id] = it->second;
  }

  // Every operation against the journal.
  std::uint64_t sent = 0, acked = 0, rejected = 0, unknown = 0, resolved = 0;
  std::set<std::string> known_refs;
  for (auto& op : ops) {
    const auto kind = op.value("op", "");
    const auto outcome = op.value("outcome", "");
    const auto ref = op.value("ref", "");
    if (kind == "open") {
      const auto id = op.value("account", "");
      if (opened[id] != 1)
        c.fail("account " + id + " is opened " + count_text(static_cast<std::size_t>(opened[id])) + " in the journal");
      continue;
    }
    ++sent;
    if (op.value("unknown_attempts", 0) > 0 && outcome != "unknown")
      ++resolved;
    const bool is_acked = outcome == "acked", is_unknown = outcome == "unknown";
    ++(is_acked ? acked : is_unknown ? unknown : rejected);
    const std::int64_t amount = op.value("amount", std::int64_t{0});
    const auto what = outcome + " " + kind;
    if (kind == "deposit" || kind == "withdraw") {
      known_refs.insert(ref);
      expect_ref(c, refs, what, ref, is_acked || is_unknown ? 1 : 0, is_unknown,
                 kind == "deposit" ? "account.deposited" : "account.withdrawn", op.value("account", ""), amount);
      continue;
    }
    // A transfer: its events, and the account events of its steps.
    const auto from = op.value("from", ""), to = op.value("to", "");
    for (auto* step : {":debit", ":credit", ":refund"})
      known_refs.insert(ref + step);
    const auto st = status.count(ref) ? status[ref] : std::string{"none"};
    const auto n_started = started.count(ref) ? started[ref].size() : 0;
    if (n_started > 1 || (is_acked && n_started != 1) || (outcome == "rejected" && op.value("error", "") != "" && n_started != 0))
      c.fail(what + ": " + ref + " is started " + count_text(n_started) + " in the journal");
    for (auto* e : started.count(ref) ? started[ref] : std::vector<const event*>{})
      if (e->from != from || e->to != to || e->amount != amount)
        c.fail(what + ": " + ref + " started at " + e->where + " differs from the request");
    if (op.contains("status") && op["status"] != st)
      c.fail(what + ": " + ref + " was answered " + op.value("status", "") + " but the journal says " + st);
    // A refused debit rejects the transfer; a refused credit compensates it.
    if (refused.count(ref + ":debit") && st != "rejected")
      c.fail(what + ": the debit of " + ref + " was refused but the transfer is " + st);
    if (refused.count(ref + ":credit") && st != "compensated")
      c.fail(what + ": the credit of " + ref + " was refused but the transfer is " + st);
    // What its final status moved: a debit, then a credit or a refund.
    const bool debited = st == "completed" || st == "compensated";
    expect_ref(c, refs, what, ref + ":debit", debited ? 1 : 0, false, "account.leg_applied", from, amount);
    expect_ref(c, refs, what, ref + ":credit", st == "completed" ? 1 : 0, false, "account.leg_applied", to, amount);
    expect_ref(c, refs, what, ref + ":refund", st == "compensated" ? 1 : 0, false, "account.leg_applied", from, amount);
  }
  for (auto& [ref, events] : refs)
    if (!known_refs.count(ref))
      c.fail("the journal has " + count_text(events.size()) + " " + ref + ", which no operation sent (first at " +
             events.front()->where + ")");
  for (auto& [id, st] : status) {
    if (st == "started" || st == "debited" || st == "credit_failed")
      c.fail("transfer " + id + " is still pending (" + st + ")");
  }

  // The node's answers against the fold, and conservation of money.
  json answered = json::object();
  if (std::ifstream in{o.balances}; in)
    answered = json::parse(in, nullptr, false);
  else
    c.fail("cannot read " + o.balances);
  std::int64_t total = 0, external = 0;
  for (auto& [id, balance] : fold) {
    total += balance;
    if (!answered.is_object() || !answered.contains(id))
      c.fail("the node did not answer the balance of " + id);
    else if (answered[id].get<std::int64_t>() != balance)
      c.fail("the node answers " + std::to_string(answered[id].get<std::int64_t>()) + " for " + id +
             " but the journal's fold is " + std::to_string(balance));
  }
  for (auto& [ref, events] : refs)
    for (auto* e : events)
      if (ref.find(':') == std::string::npos) // not a transfer's step
        external += e->type == "account.deposited" ? e->amount : -e->amount;
  if (total != external)
    c.fail("money is not conserved: the balances sum to " + std::to_string(total) +
           ", deposits minus withdrawals are " + std::to_string(external));

  if (o.read_side)
    verify_read_side(o, c, fold, owners, started);

  json report = json::object();
  if (!o.report.empty()) {
    std::ifstream in{o.report};
    report = json::parse(in, nullptr, false);
    if (!report.is_object())
      report = json::object();
  }
  auto v = report.value("violations", json::array());
  for (auto& s : c.violations())
    v.push_back(s);
  report["operations"] = {{"sent", sent}, {"acked", acked}, {"rejected", rejected}, {"unknown", unknown},
                          {"unknown_then_resolved", resolved}};
  report["events"] = {{"account", accounts.size()}, {"transfer", transfers.size()}};
  report["violations_total"] = v.size();
  if (v.size() > 50) // one line stays readable; the count says how many more
    v.erase(v.begin() + 50, v.end());
  report["violations"] = v;
  report["ok"] = report["violations_total"] == 0;
  std::printf("%s\n", report.dump().c_str());
  return report["ok"].get<bool>() ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"bank_chaos_verify: checks the bank's journal against a chaos run"};
  options o;
  app.add_option("--bootstrap", o.bootstrap, "Kafka bootstrap servers")->required();
  app.add_option("--namespace", o.ns, "the node's namespace")->required();
  app.add_option("--mode", o.mode, "journal mode")->check(CLI::IsMember({"idempotent", "transactional"}));
  app.add_option("--log", o.log, "the driver's operation log")->required();
  app.add_option("--balances", o.balances, "the balances the node answered (JSON object)")->required();
  app.add_option("--report", o.report, "JSON object to extend (seed, faults, violations found by the script)");
  app.add_option("--timeout", o.timeout, "seconds to read each topic")->check(CLI::Range(1.0, 3600.0));
  app.add_flag("--read-side", o.read_side, "check the account state topic and the enriched transfers too");
  CLI11_PARSE(app, argc, argv);
  return verify(o);
}
