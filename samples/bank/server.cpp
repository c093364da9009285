// The bank node's HTTP interface (loopback only) and the client commands.
#include "server.hpp"

#include <atomic>
#include <charconv>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "cafes/runtime/metrics.hpp"
#include "saga.hpp"

namespace bank {

namespace {

http_interface* running_interface = nullptr;

extern "C" void on_signal(int) {
  if (running_interface)
    running_interface->stop();
}

/// Set on the thread that answers a connection beyond the pool's bound.
thread_local bool overloaded_here = false;

/// cpp-httplib's worker pool, bounded: at most workers + queue connections in flight. Beyond,
/// the accepting thread answers the connection itself with 503 overloaded, which takes
/// microseconds (at worst the read timeout, for a client that sends its request slowly) and
/// holds back further accepts meanwhile.
class bounded_pool final : public httplib::TaskQueue {
 public:
  bounded_pool(std::size_t workers, std::size_t queue) : limit_(workers + queue) {
    for (std::size_t i = 0; i < workers; ++i)
      threads_.emplace_back([this] { work(); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock{mtx_};
      if (in_flight_ < limit_) {
        ++in_flight_;
        jobs_.push_back(std::move(fn));
        cv_.notify_one();
        return;
      }
    }
    overloaded_here = true;
    fn();
    overloaded_here = false;
  }

  void shutdown() override {
    {
      std::lock_guard lock{mtx_};
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
      t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock{mtx_};
        cv_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty())
          return;
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
      std::lock_guard lock{mtx_};
      --in_flight_;
    }
  }

  const std::size_t limit_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::size_t in_flight_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

void fail(httplib::Response& res, int status, const std::string& category, const std::string& code,
          const std::string& message) {
  res.status = status;
  nlohmann::json j{{"ok", false}, {"category", category}, {"code", code}, {"error", message}};
  res.set_content(j.dump(), "application/json");
}

void answer(httplib::Response& res, const cafes::error& e) {
  // 422: refused for good (by the bank's rules, or bad parameters); 503: anything else.
  const bool rejected = e == cafes::condition::rejected || e == cafes::errc::invalid_argument;
  fail(res, rejected ? 422 : 503, e.code.category().name(), e.code.message(), e.to_string());
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

nlohmann::json transfer_json(const std::string& id, const transfer::state& t) {
  return {{"transfer", id}, {"status", to_string(t.status)}, {"from", t.from},        {"to", t.to},
          {"amount", t.amount}, {"reason", t.reason},        {"settled", t.settled}};
}

/// Names the errors cpp-httplib answers by itself, so that every error is typed JSON.
std::string library_error_code(int status) {
  switch (status) {
    case 400: return "bad_request";
    case 404: return "not_found";
    case 413: return "payload_too_large";
    case 414: return "uri_too_long";
    default: return "http_" + std::to_string(status);
  }
}

} // namespace

struct http_interface::impl {
  cafes::node& node;
  http_limits limits;
  httplib::Server svr;
  std::atomic<read_side*> reads{nullptr};

  impl(cafes::node& n, http_limits l) : node(n), limits(l) {
    svr.new_task_queue = [w = limits.workers, q = limits.queue] { return new bounded_pool(w, q); };
    svr.set_payload_max_length(limits.max_payload);
    svr.set_read_timeout(limits.read_timeout);
    svr.set_write_timeout(limits.write_timeout);
    svr.set_keep_alive_timeout(limits.keep_alive.count());
    svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (overloaded_here) {
        fail(res, 503, "actors", "overloaded", "the node serves " + std::to_string(limits.workers + limits.queue) +
                                                   " connections at once; try again");
        res.set_header("Connection", "close");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (req.headers.size() > limits.max_headers) {
        fail(res, 431, "http", "too_many_headers",
             "a request has at most " + std::to_string(limits.max_headers) + " header fields");
        return httplib::Server::HandlerResponse::Handled;
      }
      return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty())
        fail(res, res.status, "http", library_error_code(res.status), "the request was refused");
    });
    routes();
  }

  void routes() {
    svr.Post("/accounts/open", [this](const httplib::Request& req, httplib::Response& res) {
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
      svr.Post(path, [this, is_deposit](const httplib::Request& req, httplib::Response& res) {
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
    svr.Get("/accounts/balance", [this](const httplib::Request& req, httplib::Response& res) {
      auto id = text(req, "id");
      if (!id)
        return answer(res, id.error());
      reply_balance(res, node.ask<account>(*id, get_balance{}));
    });
    svr.Post("/transfers", [this](const httplib::Request& req, httplib::Response& res) { post_transfer(req, res); });
    svr.Get("/transfers", [this](const httplib::Request& req, httplib::Response& res) {
      auto id = text(req, "id");
      if (!id)
        return answer(res, id.error());
      auto t = node.ask<transfer>(*id, get_transfer{});
      if (!t)
        return answer(res, t.error());
      answer(res, transfer_json(*id, *t));
    });
    // Liveness: the process answers. Restarting it would not help a node that is not ready.
    svr.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      answer(res, nlohmann::json{{"alive", true}, {"healthy", node.healthy()}, {"durable", node.durable()}});
    });
    // Readiness: every owned partition recovered, no journal fatal, in the group; else 503.
    svr.Get("/ready", [this](const httplib::Request&, httplib::Response& res) {
      auto r = node.readiness();
      if (!r.ready)
        res.status = 503;
      auto j = nlohmann::json{{"ready", r.ready}};
      if (!r.ready)
        j["reason"] = r.reason;
      answer(res, j);
    });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(node.metrics()->text(), "text/plain; version=0.0.4; charset=utf-8");
    });
    svr.Get("/stats", [this](const httplib::Request&, httplib::Response& res) { stats(res); });
    // Dead letters re-driven once their cause is fixed, and the read side rebuilt from the start.
    svr.Post("/read-side/redrive", [this](const httplib::Request&, httplib::Response& res) {
      auto* r = reads.load();
      if (!r)
        return answer(res, cafes::error{cafes::errc::invalid_argument, "this node runs no read side"});
      auto rep = r->redrive(std::chrono::minutes{5});
      if (!rep)
        return answer(res, rep.error());
      answer(res, nlohmann::json{{"redrive", *rep}});
    });
    svr.Post("/read-side/reset", [this](const httplib::Request&, httplib::Response& res) {
      auto* r = reads.load();
      if (!r)
        return answer(res, cafes::error{cafes::errc::invalid_argument, "this node runs no read side"});
      if (auto ok = r->reset(std::chrono::minutes{1}); !ok)
        return answer(res, ok.error());
      answer(res, nlohmann::json{{"reset", true}});
    });
    // The SQLite read model: balances and the most recent transfers (?recent=N, 1 to 1000).
    svr.Get("/report", [this](const httplib::Request& req, httplib::Response& res) {
      auto* r = reads.load();
      if (!r)
        return answer(res, cafes::error{cafes::errc::invalid_argument, "this node runs no read side"});
      int recent = 20;
      if (req.has_param("recent")) {
        auto n = number(req, "recent");
        if (!n)
          return answer(res, n.error());
        if (*n < 1 || *n > 1000)
          return answer(res, cafes::error{cafes::errc::invalid_argument, "recent must be 1 to 1000"});
        recent = static_cast<int>(*n);
      }
      auto rep = r->report(recent);
      if (!rep)
        return answer(res, rep.error());
      answer(res, *rep);
    });
  }

  // The transfer manager drives the transfer; this thread waits at most transfer_wait.
  void post_transfer(const httplib::Request& req, httplib::Response& res) {
    auto from = text(req, "from");
    auto to = text(req, "to");
    auto amount = number(req, "amount");
    auto id = text(req, "id");
    if (!from || !to || !amount || !id)
      return answer(res, !from ? from.error() : !to ? to.error() : !amount ? amount.error() : id.error());
    auto done = std::make_shared<std::promise<cafes::expected<transfer::state>>>();
    auto outcome = done->get_future();
    drive_async(node, *id, start_transfer{*from, *to, *amount},
                [done](cafes::expected<transfer::state> r) { done->set_value(std::move(r)); });
    if (outcome.wait_for(limits.transfer_wait) != std::future_status::ready) {
      res.status = 202;
      return answer(res, nlohmann::json{{"transfer", *id}, {"status", "pending"}});
    }
    auto r = outcome.get();
    if (!r)
      return answer(res, r.error());
    answer(res, transfer_json(*id, *r));
  }

  void stats(httplib::Response& res) {
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
                 {"retakes", s->retakes.load()},
                 {"handler_failures", s->handler_failures.load()},
                 {"aggregate_restarts", s->aggregate_restarts.load()},
                 {"aggregates_stopped", s->aggregates_stopped.load()},
                 {"resident", s->resident.load()}};
      // The partitions this node owns: epoch, phase, checkpoint, end offset, aggregates.
      auto owned = nlohmann::json::array();
      if (auto o = node.partitions(name))
        for (auto& p : *o)
          owned.push_back({{"partition", p.partition},
                           {"owner", node.config().node_name},
                           {"epoch", p.epoch},
                           {"state", cafes::to_string(p.phase)},
                           {"ready", p.phase == cafes::partition_phase::ready},
                           {"checkpoint", p.checkpoint},
                           {"end", p.end},
                           {"resident", p.resident},
                           {"cached", p.cached},
                           {"stopped", p.stopped}});
      j[name]["owned"] = std::move(owned);
      if (auto* r = reads.load())
        j["read_side"] = r->status();
      // The partitions it keeps warm for a takeover (hot standby), and what that saved.
      j[name]["standby"] = node.standbys(name).value_or(std::vector<std::int32_t>{});
      j[name]["standby_events"] = s->standby_events.load();
      j[name]["promotions"] = s->promotions.load();
    }
    if (auto m = transfer_manager_stats(node))
      j["transfer_manager"] = {{"drives", m->drives}, {"joined", m->joined}, {"running", m->running}};
    answer(res, j);
  }
};

void http_interface::serve(read_side* r) { impl_->reads = r; }

http_interface::http_interface(cafes::node& node, http_limits limits)
    : impl_(std::make_unique<impl>(node, limits)) {}

http_interface::~http_interface() = default;

cafes::expected<int> http_interface::bind(std::uint16_t port) {
  auto& svr = impl_->svr;
  int bound = port == 0 ? svr.bind_to_any_port("127.0.0.1") : (svr.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound <= 0)
    return cafes::error{cafes::errc::invalid_argument, "cannot listen on 127.0.0.1:" + std::to_string(port)};
  return bound;
}

void http_interface::listen() { impl_->svr.listen_after_bind(); }

void http_interface::stop() { impl_->svr.stop(); }

/// Cluster mode: resumes the unsettled transfers of each transfer partition the node takes
/// over, on a thread of its own (the group's thread must not wait for the drives). Requests
/// that come while it runs are folded into one more run.
class transfer_resumer {
 public:
  explicit transfer_resumer(cafes::node& node) : node_(node), thread_([this] { run(); }) {
    node_.on_ownership_change([this](std::string_view type, std::int32_t, bool owned) {
      if (owned && type == transfer::name)
        request();
    });
  }
  ~transfer_resumer() {
    node_.on_ownership_change(nullptr);
    {
      std::lock_guard g{mtx_};
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  void request() {
    {
      std::lock_guard g{mtx_};
      wanted_ = true;
    }
    cv_.notify_one();
  }
  void run() {
    std::unique_lock lock{mtx_};
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || wanted_; });
      if (stop_)
        return;
      wanted_ = false;
      lock.unlock();
      if (auto n = resume_transfers(node_); n && *n > 0)
        std::fprintf(stderr, "bank node: resumed %zu unsettled transfers\n", *n);
      else if (!n)
        std::fprintf(stderr, "bank node: resuming transfers: %s\n", n.error().to_string().c_str());
      lock.lock();
    }
  }

  cafes::node& node_;
  std::mutex mtx_;
  std::condition_variable cv_;
  bool wanted_ = false;
  bool stop_ = false;
  std::thread thread_;
};

int run_server(const cafes::node_config& cfg, const server_options& o) {
  auto started = cafes::node::start(cfg);
  if (!started) {
    std::fprintf(stderr, "bank node: %s\n", started.error().to_string().c_str());
    return 2;
  }
  auto& node = **started;
  cafes::host_options host;
  host.partitions = o.partitions;
  host.snapshot_every = o.snapshot_every;
  host.max_replay = o.max_replay;
  host.replication = o.replication;
  host.min_insync_replicas = o.min_insync_replicas;
  host.standby_replicas = o.standby_replicas;
  if (auto ok = host_bank(node, host); !ok) {
    std::fprintf(stderr, "bank node: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  std::optional<transfer_resumer> resumer;
  if (cfg.cluster)
    resumer.emplace(node);
  if (auto ok = node.wait_ready(std::chrono::seconds{120}); !ok) {
    std::fprintf(stderr, "bank node: %s\n", ok.error().to_string().c_str());
    return 2;
  }
  if (auto n = resume_transfers(node); n && *n > 0)
    std::fprintf(stderr, "bank node: resumed %zu unsettled transfers\n", *n);
  else if (!n)
    std::fprintf(stderr, "bank node: resuming transfers: %s\n", n.error().to_string().c_str());

  // The read side: on Kafka storage, unless turned off.
  std::unique_ptr<read_side> reads;
  if (o.read_side && cfg.storage == cafes::storage_kind::kafka) {
    auto r = read_side::start(node, o.read);
    if (!r) {
      std::fprintf(stderr, "bank node: read side: %s\n", r.error().to_string().c_str());
      return 2;
    }
    reads = std::move(*r);
  }

  http_interface http{node, o.http};
  http.serve(reads.get());
  auto port = http.bind(o.port);
  if (!port) {
    std::fprintf(stderr, "bank node: %s\n", port.error().to_string().c_str());
    return 2;
  }
  if (!o.port_file.empty()) {
    auto tmp = o.port_file + ".tmp";
    std::ofstream{tmp} << *port << "\n";
    std::rename(tmp.c_str(), o.port_file.c_str());
  }
  std::printf("bank node listening on 127.0.0.1:%d\n", *port);
  std::fflush(stdout);
  running_interface = &http;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  http.listen();
  running_interface = nullptr;
  http.serve(nullptr);
  reads.reset();
  resumer.reset();
  // Drains what is still in flight (a transfer's legs, say), then stops.
  if (auto stopped = node.shutdown(std::chrono::seconds{10}); !stopped)
    std::fprintf(stderr, "bank node: %s\n", stopped.error().to_string().c_str());
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
  } else if (r.command == "redrive" || r.command == "rebuild") {
    path = r.command == "redrive" ? "/read-side/redrive" : "/read-side/reset";
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
  return res->status == 200 || res->status == 202 ? 0 : res->status == 422 ? 1 : 2;
}

} // namespace bank
