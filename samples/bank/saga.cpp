// The transfer saga and the bank's error category.
#include "saga.hpp"

namespace bank {

namespace {

class bank_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "bank"; }
  std::string message(int v) const override {
    switch (static_cast<bank_errc>(v)) {
      case bank_errc::account_not_open: return "account_not_open";
      case bank_errc::already_open: return "already_open";
      case bank_errc::invalid_amount: return "invalid_amount";
      case bank_errc::insufficient_funds: return "insufficient_funds";
      case bank_errc::invalid_owner: return "invalid_owner";
      case bank_errc::invalid_transfer: return "invalid_transfer";
      case bank_errc::unknown_transfer: return "unknown_transfer";
    }
    return "unknown(" + std::to_string(v) + ")";
  }
};

} // namespace

const std::error_category& bank_category() noexcept {
  static const bank_category_impl cat;
  return cat;
}

std::string_view to_string(transfer_status s) noexcept {
  switch (s) {
    case transfer_status::none: return "none";
    case transfer_status::started: return "started";
    case transfer_status::debited: return "debited";
    case transfer_status::credit_failed: return "credit_failed";
    case transfer_status::completed: return "completed";
    case transfer_status::compensated: return "compensated";
    case transfer_status::rejected: return "rejected";
  }
  return "?";
}

bool is_rejection(const cafes::error& e) {
  return e.code.category() == bank_category() || e.code == cafes::errc::invalid_aggregate_id ||
         e.code == cafes::errc::reserved_aggregate_id;
}

cafes::expected<void> host_bank(cafes::node& node, std::int32_t partitions, std::uint64_t snapshot_every,
                                std::uint64_t max_replay, std::int16_t replication,
                                std::int16_t min_insync_replicas) {
  cafes::host_options opts;
  opts.replication = replication;
  opts.min_insync_replicas = min_insync_replicas;
  opts.max_replay = max_replay;
  opts.partitions = partitions;
  opts.snapshot_every = snapshot_every;
  if (auto ok = node.host<account>(opts); !ok)
    return ok;
  return node.host<transfer>(opts);
}

cafes::expected<transfer_status> drive(cafes::node& node, const std::string& id) {
  for (int steps = 0; steps < 8; ++steps) {
    auto t = node.ask<transfer>(id, get_transfer{});
    if (!t)
      return std::move(t).error();
    cafes::expected<transfer::state> next = *t;
    switch (t->status) {
      case transfer_status::started: {
        auto r = node.ask<account>(t->from, withdraw{t->amount, id + ":debit"}, id + ":debit");
        if (r)
          next = node.ask<transfer>(id, record_debit{});
        else if (is_rejection(r.error()))
          next = node.ask<transfer>(id, record_rejection{r.error().code.message()});
        else
          return std::move(r).error();
        break;
      }
      case transfer_status::debited: {
        auto r = node.ask<account>(t->to, deposit{t->amount, id + ":credit"}, id + ":credit");
        if (r)
          next = node.ask<transfer>(id, record_credit{});
        else if (is_rejection(r.error()))
          next = node.ask<transfer>(id, record_credit_failure{r.error().code.message()});
        else
          return std::move(r).error();
        break;
      }
      case transfer_status::credit_failed: {
        // The refund must succeed: the debited account is open (the debit went through).
        auto r = node.ask<account>(t->from, deposit{t->amount, id + ":refund"}, id + ":refund");
        if (!r)
          return std::move(r).error();
        next = node.ask<transfer>(id, record_compensation{});
        break;
      }
      default:
        return t->status;
    }
    if (!next)
      return std::move(next).error();
  }
  return cafes::error{bank_errc::invalid_transfer, "transfer " + id + " did not settle"};
}

cafes::expected<transfer_status> run_transfer(cafes::node& node, const std::string& id, const std::string& from,
                                              const std::string& to, std::int64_t amount) {
  auto started = node.ask<transfer>(id, start_transfer{from, to, amount}, id + ":start");
  if (!started)
    return std::move(started).error();
  return drive(node, id);
}

cafes::expected<std::size_t> resume_transfers(cafes::node& node) {
  auto ids = node.query<transfer>([](const transfer::state& s) { return s.pending(); });
  if (!ids)
    return std::move(ids).error();
  std::size_t done = 0;
  for (auto& id : *ids) {
    auto r = drive(node, id);
    if (!r)
      return std::move(r).error();
    ++done;
  }
  return done;
}

} // namespace bank
