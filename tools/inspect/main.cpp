// cafes-inspect: reads any cafes journal from the wire format alone (no application code) and
// prints JSON, one line per record. See docs/inspecting-the-journal.md.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

#include <CLI/CLI.hpp>

#include "commands.hpp"

using namespace cafes::inspect;

namespace {

constexpr const char* exit_codes = R"(Exit codes:
  0  done (records that do not decode are printed raw, with their "error")
  1  an unexpected failure
  2  a bad command line or argument (id, partition, offset, seq, time)
  3  a topic does not exist
  4  no broker answered within --timeout-ms, or a read got nothing within it
  5  another Kafka error
)";

/// The options every subcommand takes, as a node names them.
struct common {
  source_options src;
  topic_choice t;
  long timeout_ms = 10'000;
  std::vector<std::string> properties; // KEY=VALUE
  std::string config;                  // a node's config file
  std::vector<CLI::Option*> timeout_options; // of each subcommand: was the timeout given?
};

/// Takes from a node's config file (--config, as node_config::add_options reads it) the
/// settings the command line did not give: bootstrap, namespace and request-timeout-ms, and
/// the node's Kafka client settings (kafka-property, security-protocol, ssl-*, sasl-*; -X
/// overrides them). The node's other settings are ignored.
cafes::expected<void> read_node_config(common& c, bool timeout_given) {
  if (c.config.empty())
    return {};
  std::vector<CLI::ConfigItem> items;
  try {
    items = CLI::ConfigTOML{}.from_file(c.config);
  } catch (const CLI::Error& e) {
    return cafes::error{cafes::errc::invalid_argument, "--config " + c.config + ": " + e.what()};
  }
  static const std::map<std::string, std::string> named{
    {"security-protocol", "security.protocol"}, {"ssl-ca", "ssl.ca.location"},
    {"ssl-certificate", "ssl.certificate.location"}, {"ssl-key", "ssl.key.location"},
    {"sasl-mechanism", "sasl.mechanism"}, {"sasl-username", "sasl.username"}};
  for (auto& item : items) {
    if (!item.parents.empty())
      continue;
    if (item.name == "kafka-property") {
      for (auto& kv : item.inputs) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0)
          return cafes::error{cafes::errc::invalid_argument, "--config " + c.config + ": kafka-property takes KEY=VALUE"};
        c.src.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      continue;
    }
    if (item.inputs.size() != 1)
      continue;
    const auto& v = item.inputs.front();
    if (auto n = named.find(item.name); n != named.end()) {
      c.src.properties[n->second] = v;
    } else if (item.name == "sasl-password-file") {
      std::ifstream in{v};
      std::string line;
      if (!in || !std::getline(in, line) || line.empty() || line == "\r")
        return cafes::error{cafes::errc::invalid_argument, "--config " + c.config + ": cannot read a password from sasl-password-file " + v};
      if (line.back() == '\r')
        line.pop_back();
      c.src.properties["sasl.password"] = line;
    } else if (item.name == "bootstrap" && c.src.bootstrap.empty())
      c.src.bootstrap = v;
    else if (item.name == "namespace" && c.t.ns.empty() && c.t.topic.empty())
      c.t.ns = v;
    else if (item.name == "request-timeout-ms" && !timeout_given) {
      try {
        c.timeout_ms = std::stol(v);
      } catch (const std::exception&) {
        return cafes::error{cafes::errc::invalid_argument, "--config " + c.config + ": request-timeout-ms is '" + v + "'"};
      }
    }
  }
  return {};
}

void add_common(CLI::App& sub, common& c, bool own_topic_only) {
  sub.add_option("--config", c.config,
                 "a node's INI or TOML config file: its bootstrap, namespace and request-timeout-ms, "
                 "unless given here");
  sub.add_option("--bootstrap", c.src.bootstrap, "Kafka bootstrap servers, host:port,… (required, here or in --config)");
  auto* topic = sub.add_option("--topic", c.t.topic,
                               own_topic_only ? "the topic to read"
                                              : "the events topic (the snapshot topic is found beside it)");
  auto* ns = sub.add_option("--namespace", c.t.ns, "the node's namespace, with --type");
  auto* type = sub.add_option("--type", c.t.type, "the aggregate type, with --namespace");
  ns->excludes(topic);
  type->excludes(topic);
  c.timeout_options.push_back(sub.add_option("--timeout-ms,--request-timeout-ms", c.timeout_ms,
                                             "bound on connecting and on each request or read")
                                ->capture_default_str()
                                ->check(CLI::Range(1L, 3'600'000L)));
  sub.add_flag("--read-uncommitted", c.src.read_uncommitted,
               "also records of open and aborted transactions (default: read_committed)");
  sub.add_flag("--verbose", c.src.verbose, "keep librdkafka's log on stderr");
  sub.add_option("-X,--property", c.properties, "a librdkafka property KEY=VALUE (security settings, debug), repeatable");
}

void add_range(CLI::App& sub, range_choice& r) {
  auto* p = sub.add_option("--partition", r.partition, "only this partition");
  sub.add_option("--from", r.from, "first offset to print (with --partition)")->needs(p);
  sub.add_option("--to", r.to, "last offset to print, included (with --partition)")->needs(p);
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Reads a cafes journal from its wire format alone and prints JSON, one line per record.",
               "cafes-inspect"};
  app.require_subcommand(1);
  app.footer(exit_codes);

  common c;
  events_options ev;
  snapshots_options sn;
  state_options st;
  partition_options pa;
  dlq_options dl;

  auto* events = app.add_subcommand("events", "the events of <ns>.<type>.events, every envelope field and the payload");
  add_common(*events, c, true);
  auto* id = events->add_option("--id", ev.id, "only this aggregate's events (only its partition is read)");
  add_range(*events, ev.range);
  id->excludes(events->get_option("--partition"));
  events->add_flag("--skip-barriers", ev.skip_barriers, "leave barrier records (key __cafes.barrier) out");
  events->footer(std::string{R"(Examples:
  cafes-inspect events --bootstrap localhost:9092 --namespace bank --type account
  cafes-inspect events --bootstrap localhost:9092 --namespace bank --type account --id acc-1
  cafes-inspect events --bootstrap localhost:9092 --topic bank.account.events --partition 2 --from 10 --to 19

)"} + exit_codes);

  auto* snapshots =
    app.add_subcommand("snapshots", "the snapshots and checkpoints of <ns>.<type>.snapshots, latest per key");
  add_common(*snapshots, c, true);
  snapshots->add_option("--id", sn.id, "only this aggregate's snapshots");
  snapshots->add_option("--partition", sn.partition, "only this partition");
  snapshots->add_flag("--all", sn.all, "every record, not only the latest per key (as before compaction)");
  snapshots->footer(std::string{R"(Examples:
  cafes-inspect snapshots --bootstrap localhost:9092 --namespace bank --type account
  cafes-inspect snapshots --bootstrap localhost:9092 --namespace bank --type account --all --partition 0

)"} + exit_codes);

  auto* state = app.add_subcommand(
    "state", "what the runtime replays to rebuild an aggregate as of a point: the nearest snapshot, then the events");
  add_common(*state, c, false);
  state->add_option("--id", st.id, "the aggregate")->required();
  auto* at_seq = state->add_option("--at-seq", st.at_seq, "up to this event's sequence number");
  auto* at_time = state->add_option("--at-time", st.at_time, "up to the last event at or before this RFC 3339 time");
  at_seq->excludes(at_time);
  state->footer(std::string{R"(Examples:
  cafes-inspect state --bootstrap localhost:9092 --namespace bank --type account --id acc-1 --at-seq 12
  cafes-inspect state --bootstrap localhost:9092 --namespace bank --type account --id acc-1 --at-time 2026-11-26T06:30:00Z

)"} + exit_codes);

  auto* partition =
    app.add_subcommand("partition", "per partition: offsets, stored checkpoint and epoch, lag and last writer");
  add_common(*partition, c, false);
  partition->add_option("--partition", pa.partition, "only this partition");
  partition->footer(std::string{R"(Examples:
  cafes-inspect partition --bootstrap localhost:9092 --namespace bank --type account
  cafes-inspect partition --bootstrap localhost:9092 --topic bank.account.events --partition 3

)"} + exit_codes);

  auto* dlq = app.add_subcommand("dlq", "the dead letters of <ns>.<type>.dlq, each with its original record decoded");
  add_common(*dlq, c, true);
  add_range(*dlq, dl.range);
  dlq->footer(std::string{R"(Examples:
  cafes-inspect dlq --bootstrap localhost:9092 --namespace bank --type account
  cafes-inspect dlq --bootstrap localhost:9092 --topic bank.account.dlq --partition 1 --from 0 --to 9

)"} + exit_codes);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "cafes-inspect: %s (--help lists the options)\n", e.what());
    return exit_bad_input;
  }

  auto fail = [](const cafes::error& e) {
    std::cout.flush();
    std::fprintf(stderr, "cafes-inspect: %s\n", e.to_string().c_str());
    return exit_code_of(e);
  };
  bool timeout_given = false;
  for (auto* o : c.timeout_options)
    timeout_given = timeout_given || o->count() > 0;
  if (auto ok = read_node_config(c, timeout_given); !ok)
    return fail(ok.error());
  if (c.src.bootstrap.empty())
    return fail(cafes::error{cafes::errc::invalid_argument, "--bootstrap is required (here or in --config)"});
  if (c.timeout_ms < 1)
    return fail(cafes::error{cafes::errc::invalid_argument, "the timeout must be at least 1 ms"});
  c.src.timeout = std::chrono::milliseconds{c.timeout_ms};
  for (auto& kv : c.properties) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      std::fprintf(stderr, "cafes-inspect: --property %s is not KEY=VALUE\n", kv.c_str());
      return exit_bad_input;
    }
    c.src.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  ev.t = sn.t = st.t = pa.t = dl.t = c.t;
  // Check the names before connecting: a bad command line fails at once.
  const bool own = !state->parsed() && !partition->parsed();
  const auto kind = events->parsed() || state->parsed() || partition->parsed() ? "events"
                    : snapshots->parsed()                                      ? "snapshots"
                                                                               : "dlq";
  if (auto t = c.t.resolve(kind, true); !t)
    return fail(t.error());
  if (!own)
    if (auto t = c.t.resolve("snapshots", false); !t)
      return fail(t.error());

  auto src = source::open(c.src);
  if (!src)
    return fail(src.error());
  cafes::expected<void> done;
  try {
    if (events->parsed())
      done = run_events(**src, ev, std::cout);
    else if (snapshots->parsed())
      done = run_snapshots(**src, sn, std::cout);
    else if (state->parsed())
      done = run_state(**src, st, std::cout);
    else if (partition->parsed())
      done = run_partition(**src, pa, std::cout);
    else
      done = run_dlq(**src, dl, std::cout);
  } catch (const std::exception& e) {
    std::cout.flush();
    std::fprintf(stderr, "cafes-inspect: %s\n", e.what());
    return exit_failed;
  }
  std::cout.flush();
  if (!done)
    return fail(done.error());
  return exit_ok;
}
