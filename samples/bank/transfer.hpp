// The transfer saga's aggregate: each step is persisted before the saga acts on it. After the
// final status, "settled" records that the accounts forgot the transfer's legs.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include <msgpack.hpp>

#include "account.hpp"

namespace bank {

/// Where a transfer stands. completed, compensated and rejected are final.
enum class transfer_status : std::uint8_t { none, started, debited, credit_failed, completed, compensated, rejected };

std::string_view to_string(transfer_status s) noexcept;

} // namespace bank

MSGPACK_ADD_ENUM(bank::transfer_status);

namespace bank {

struct transfer_started {
  static constexpr std::string_view type_name = "transfer.started";
  std::string from, to;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(from, to, amount);
};
struct transfer_debited {
  static constexpr std::string_view type_name = "transfer.debited";
  bool ok = true;
  MSGPACK_DEFINE_MAP(ok);
};
struct transfer_rejected {
  static constexpr std::string_view type_name = "transfer.rejected";
  std::string reason;
  MSGPACK_DEFINE_MAP(reason);
};
struct transfer_credited {
  static constexpr std::string_view type_name = "transfer.credited";
  bool ok = true;
  MSGPACK_DEFINE_MAP(ok);
};
struct transfer_credit_failed {
  static constexpr std::string_view type_name = "transfer.credit_failed";
  std::string reason;
  MSGPACK_DEFINE_MAP(reason);
};
struct transfer_compensated {
  static constexpr std::string_view type_name = "transfer.compensated";
  bool ok = true;
  MSGPACK_DEFINE_MAP(ok);
};
struct transfer_settled {
  static constexpr std::string_view type_name = "transfer.settled";
  bool ok = true;
  MSGPACK_DEFINE_MAP(ok);
};

/// Starts a transfer (idempotent: the same request again answers the current status).
struct start_transfer {
  static constexpr std::string_view type_name = "transfer.start";
  std::string from, to;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(from, to, amount);
};
struct record_debit {
  static constexpr std::string_view type_name = "transfer.record_debit";
};
struct record_rejection {
  static constexpr std::string_view type_name = "transfer.record_rejection";
  std::string reason;
  MSGPACK_DEFINE_MAP(reason);
};
struct record_credit {
  static constexpr std::string_view type_name = "transfer.record_credit";
};
struct record_credit_failure {
  static constexpr std::string_view type_name = "transfer.record_credit_failure";
  std::string reason;
  MSGPACK_DEFINE_MAP(reason);
};
struct record_compensation {
  static constexpr std::string_view type_name = "transfer.record_compensation";
};
/// Records that the accounts forgot the legs of this transfer, which has its final status.
struct record_settlement {
  static constexpr std::string_view type_name = "transfer.record_settlement";
};
struct get_transfer {
  static constexpr std::string_view type_name = "transfer.get";
};

struct transfer {
  static constexpr std::string_view name = "transfer";

  struct state {
    transfer_status status = transfer_status::none;
    std::string from, to, reason;
    std::int64_t amount = 0;
    bool settled = false; ///< the accounts forgot its legs (only after a final status)
    MSGPACK_DEFINE_MAP(status, from, to, amount, reason, settled);

    bool pending() const {
      return status == transfer_status::started || status == transfer_status::debited ||
             status == transfer_status::credit_failed;
    }
    /// Pending, or final with legs the accounts still remember: the saga has work left.
    bool unsettled() const { return status != transfer_status::none && !settled; }
  };

  using commands = std::variant<start_transfer, record_debit, record_rejection, record_credit, record_credit_failure,
                                record_compensation, record_settlement, get_transfer>;
  using events = std::variant<transfer_started, transfer_debited, transfer_rejected, transfer_credited,
                              transfer_credit_failed, transfer_compensated, transfer_settled>;
  /// Every event a handler emits is checked against `events` at compile time.
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>;
  /// The reply of a step: the transfer as it is after the step's event.
  static state after(const state& next) { return next; }

  static decision<state> handle(const state& s, const start_transfer& c) {
    if (s.status != transfer_status::none) {
      if (s.from != c.from || s.to != c.to || s.amount != c.amount)
        return cafes::reject(bank_errc::invalid_transfer, "the transfer id is taken by another transfer");
      return cafes::reply(s);
    }
    if (c.amount <= 0 || c.amount > max_amount)
      return cafes::reject(bank_errc::invalid_amount, "an amount must be 1 to 10^12");
    if (c.from.empty() || c.to.empty() || c.from == c.to)
      return cafes::reject(bank_errc::invalid_transfer, "a transfer needs two different accounts");
    return cafes::emit(transfer_started{c.from, c.to, c.amount}).reply_with(after);
  }

  /// Moves a started saga one step; a repeated step answers without an event.
  template <class Event>
  static decision<state> step(const state& s, transfer_status from, transfer_status to, Event e) {
    if (s.status == to)
      return cafes::reply(s);
    if (s.status != from)
      return cafes::reject(bank_errc::unknown_transfer, std::string{"the transfer is "} + std::string{to_string(s.status)});
    return cafes::emit(std::move(e)).reply_with(after);
  }

  static decision<state> handle(const state& s, const record_debit&) {
    return step(s, transfer_status::started, transfer_status::debited, transfer_debited{});
  }
  static decision<state> handle(const state& s, const record_rejection& c) {
    return step(s, transfer_status::started, transfer_status::rejected, transfer_rejected{c.reason});
  }
  static decision<state> handle(const state& s, const record_credit&) {
    return step(s, transfer_status::debited, transfer_status::completed, transfer_credited{});
  }
  static decision<state> handle(const state& s, const record_credit_failure& c) {
    return step(s, transfer_status::debited, transfer_status::credit_failed, transfer_credit_failed{c.reason});
  }
  static decision<state> handle(const state& s, const record_compensation&) {
    return step(s, transfer_status::credit_failed, transfer_status::compensated, transfer_compensated{});
  }
  static decision<state> handle(const state& s, const record_settlement&) {
    if (s.settled)
      return cafes::reply(s);
    if (s.status == transfer_status::none || s.pending())
      return cafes::reject(bank_errc::unknown_transfer, std::string{"the transfer is "} + std::string{to_string(s.status)});
    return cafes::emit(transfer_settled{}).reply_with(after);
  }
  static decision<state> handle(const state& s, const get_transfer&) {
    if (s.status == transfer_status::none)
      return cafes::reject(bank_errc::unknown_transfer);
    return cafes::reply(s);
  }

  static void apply(state& s, const transfer_started& e) {
    s.status = transfer_status::started;
    s.from = e.from;
    s.to = e.to;
    s.amount = e.amount;
  }
  static void apply(state& s, const transfer_debited&) { s.status = transfer_status::debited; }
  static void apply(state& s, const transfer_rejected& e) {
    s.status = transfer_status::rejected;
    s.reason = e.reason;
  }
  static void apply(state& s, const transfer_credited&) { s.status = transfer_status::completed; }
  static void apply(state& s, const transfer_credit_failed& e) {
    s.status = transfer_status::credit_failed;
    s.reason = e.reason;
  }
  static void apply(state& s, const transfer_compensated&) { s.status = transfer_status::compensated; }
  static void apply(state& s, const transfer_settled&) { s.settled = true; }
};

static_assert(cafes::aggregate_type<transfer>);

} // namespace bank
