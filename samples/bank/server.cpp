// The bank node's HTTP interface (loopback only) and the client commands.
#include "server.hpp"

#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "saga.hpp"

namespace bank {

namespace {

httplib::Server* running_server = nullptr;

extern "C" void on_signal(int) {
  if (running_server)
    running_server->stop();
}

void answer(httplib::Response& res, const cafes::error& e) {
  const bool rejected = is_rejection(e) || e.code == cafes::errc::invalid_argument;
  res.status = rejected ? 422 : 503;
  nlohmann::json j{{"ok", false},
                   {"category", e.code.category().name()},
                   {"code", e.code.message()},
                   {"error", e.to_string()}};
  res.set_content(j.dump(), "application/json");
}

void answer(httplib::Response& res, nlohmann::json j) {
  j["ok"] = true;
  res.set_content(j.dump(), "application/json");
}

cafes::expected<std::string> text(const httplib::Request& req, const char* name) {
  if (!req.has_param(name))
    return cafes::error{cafes::errc::invalid_argument, std::string{"missing parameter '"} + name + "'"};
  return req.get_param_value(name);
}

cafes::expected<std::int64_t> number(const httplib::Request& req, const char* name) {
  auto t = text(req, name);
  if (!t)
    return std::move(t).error();
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(t->data(), t->data() + t->size(), v);
  if (ec != std::errc{} || p != t->data() + t->size())
    return cafes::error{cafes::errc::invalid_argument, std::string{"parameter '"} + name + "' is not an integer"};
  return v;
}

template <class R>
void reply_balance(httplib::Response& res, const cafes::expected<R>& r) {
  if (r)
    answer(res, nlohmann::json{{"balance", *r}});
  else
    answer(res, r.error());
}

} // namespace

int run_server(const cafes::node_config& cfg, const server_options& o) {
  auto started = cafes::node::start(cfg);
  if (!started) {
    std::fprintf(stderr, "bank node: %s\n", started.error().to_string().c_str());
    return 2;
  }
  auto& node = **started;
  if (auto ok = host_bank(node, o.partitions, o.snapshot_every, o.max_replay); !ok) {
    std::fprintf(stderr, "bank node: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  if (auto ok = node.wait_ready(std::chrono::seconds{120}); !ok) {
    std::fprintf(stderr, "bank node: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  if (auto n = resume_transfers(node); n && *n > 0)
    std::fprintf(stderr, "bank node: resumed %zu pending transfers\n", *n);

  httplib::Server svr;
  svr.Post("/accounts/open", [&](const httplib::Request& req, httplib::Response& res) {
    auto id = text(req, "id");
    auto owner = text(req, "owner");
    std::int64_t overdraft = 0;
    if (req.has_param("overdraft")) {
      auto v = number(req, "overdraft");
      if (!v)
        return answer(res, v.error());
      overdraft = *v;
    }
    if (!id || !owner)
      return answer(res, (!id ? id : owner).error());
    reply_balance(res, node.ask<account>(*id, open{*owner, overdraft}, *id + ":open"));
  });
  for (auto* path : {"/accounts/deposit", "/accounts/withdraw"}) {
    const bool is_deposit = std::string_view{path} == "/accounts/deposit";
    svr.Post(path, [&node, is_deposit](const httplib::Request& req, httplib::Response& res) {
      auto id = text(req, "id");
      auto amount = number(req, "amount");
      if (!id || !amount)
        return answer(res, (!id ? id.error() : amount.error()));
      auto ref = req.has_param("ref") ? req.get_param_value("ref") : std::string{};
      if (is_deposit)
        reply_balance(res, node.ask<account>(*id, deposit{*amount, ref}, ref));
      else
        reply_balance(res, node.ask<account>(*id, withdraw{*amount, ref}, ref));
    });
  }
  svr.Get("/accounts/balance", [&](const httplib::Request& req, httplib::Response& res) {
    auto id = text(req, "id");
    if (!id)
      return answer(res, id.error());
    reply_balance(res, node.ask<account>(*id, get_balance{}));
  });
  svr.Post("/transfers", [&](const httplib::Request& req, httplib::Response& res) {
    auto from = text(req, "from");
    auto to = text(req, "to");
    auto amount = number(req, "amount");
    auto id = text(req, "id");
    if (!from || !to || !amount || !id)
      return answer(res, !from ? from.error() : !to ? to.error() : !amount ? amount.error() : id.error());
    auto r = run_transfer(node, *id, *from, *to, *amount);
    if (!r)
      return answer(res, r.error());
    answer(res, nlohmann::json{{"transfer", *id}, {"status", to_string(*r)}});
  });
  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    const bool ready = node.healthy();
    if (!ready)
      res.status = 503;
    answer(res, nlohmann::json{{"ready", ready}, {"durable", node.durable()}});
  });
  svr.Get("/stats", [&](const httplib::Request&, httplib::Response& res) {
    nlohmann::json j;
    for (auto* name : {"account", "transfer"}) {
      auto s = node.stats(name);
      j[name] = {{"aggregates_recovered", s->aggregates_recovered.load()},
                 {"events_replayed", s->events_replayed.load()},
                 {"snapshots_read", s->snapshots_read.load()},
                 {"snapshots_written", s->snapshots_written.load()},
                 {"corrupt_snapshots", s->corrupt_snapshots.load()},
                 {"events_persisted", s->events_persisted.load()},
                 {"batches", s->batches.load()},
                 {"batch_max", s->batch_max.load()},
                 {"sequence_errors", s->sequence_errors.load()},
                 {"partitions_failed", s->partitions_failed.load()},
                 {"resident", s->resident.load()}};
    }
    answer(res, j);
  });

  int port = o.port == 0 ? svr.bind_to_any_port("127.0.0.1") : (svr.bind_to_port("127.0.0.1", o.port) ? o.port : -1);
  if (port <= 0) {
    std::fprintf(stderr, "bank node: cannot listen on 127.0.0.1:%u\n", o.port);
    return 2;
  }
  if (!o.port_file.empty()) {
    auto tmp = o.port_file + ".tmp";
    std::ofstream{tmp} << port << "\n";
    std::rename(tmp.c_str(), o.port_file.c_str());
  }
  std::printf("bank node listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  running_server = &svr;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  svr.listen_after_bind();
  running_server = nullptr;
  node.stop();
  return 0;
}

int run_client(const client_request& r) {
  auto colon = r.node.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "bank: --node must be host:port\n");
    return 2;
  }
  httplib::Client cli{r.node.substr(0, colon), std::stoi(r.node.substr(colon + 1))};
  cli.set_read_timeout(std::chrono::seconds{60});
  httplib::Params p;
  std::string path;
  const bool get = r.command == "balance";
  if (r.command == "open") {
    path = "/accounts/open";
    p = {{"id", r.id}, {"owner", r.owner}, {"overdraft", std::to_string(r.amount)}};
  } else if (r.command == "deposit" || r.command == "withdraw") {
    path = "/accounts/" + r.command;
    p = {{"id", r.id}, {"amount", std::to_string(r.amount)}, {"ref", r.ref}};
  } else if (r.command == "transfer") {
    path = "/transfers";
    auto id = r.id.empty() ? "tx-" + std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) : r.id;
    p = {{"from", r.from}, {"to", r.to}, {"amount", std::to_string(r.amount)}, {"id", id}};
  } else {
    path = "/accounts/balance";
    p = {{"id", r.id}};
  }
  auto res = get ? cli.Get(path, p, httplib::Headers{}) : cli.Post(path + "?" + httplib::detail::params_to_query_str(p));
  if (!res) {
    std::fprintf(stderr, "bank: cannot reach the node at %s\n", r.node.c_str());
    return 2;
  }
  std::printf("%s\n", res->body.c_str());
  return res->status == 200 ? 0 : res->status == 422 ? 1 : 2;
}

} // namespace bank
