// The bank's account aggregate: open, deposit, withdraw, with an overdraft rule and
// deduplication by command reference; the legs of transfers, each applied at most once.
#pragma once

#include <algorithm>
#include <optional>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <variant>
#include <vector>

#include <msgpack.hpp>
#include <nlohmann/json.hpp>

#include "cafes/actors/aggregate.hpp"
#include "cafes/persistence/registry.hpp"

namespace bank {

/// Errors of the bank's rules ("bank:insufficient_funds: …"); codes count from 1.
CAFES_ERROR_ENUM(bank_errc, "bank", account_not_open, already_open, invalid_amount, insufficient_funds, invalid_owner,
                 invalid_transfer, unknown_transfer, balance_overflow);

/// The largest amount one command may move (keeps sums far from overflow).
inline constexpr std::int64_t max_amount = 1'000'000'000'000;
/// The largest balance a deposit or a transfer's credit may reach. A refund may go beyond it
/// (it gives back money the account had), but never beyond what an int64 holds.
inline constexpr std::int64_t max_balance = 1'000'000'000'000'000'000;
/// How many settled transfers an account remembers, to drop a leg of one that comes late: in
/// a cluster, two nodes may drive one transfer (a client retried at another node), and the
/// slower driver may send a leg after the faster one settled the transfer.
inline constexpr std::size_t remembered_settled = 1024;
/// How many recent command references of deposits and withdrawals an account remembers to
/// drop duplicates. Transfer legs are not in this window (see pending_leg).
inline constexpr std::size_t remembered_refs = 512;

/// The legs of a transfer on an account: the debit of the sender, the credit of the receiver,
/// and the refund of the sender when the credit failed.
enum class leg_kind : std::uint8_t { debit, credit, refund };

std::string_view to_string(leg_kind l) noexcept;

} // namespace bank

MSGPACK_ADD_ENUM(bank::leg_kind);

namespace bank {

/// A leg an account decided for a transfer that is not settled yet: applied, or refused with
/// a reason. An account keeps every such decision, however many other operations follow, so a
/// repeated leg gets the same answer and is never applied twice, nor applied after it was
/// refused (two drivers of one transfer may send it at different times). The saga settles
/// (forgets) a transfer's legs only after the transfer recorded its final status. The set
/// holds the transfers in flight only.
struct pending_leg {
  std::string transfer;
  leg_kind leg = leg_kind::debit;
  bool refused = false;
  std::string reason; ///< why it was refused: a bank_errc name
  MSGPACK_DEFINE_MAP(transfer, leg, refused, reason);
  friend bool operator==(const pending_leg&, const pending_leg&) = default;
};

/// What an account answers a leg: applied (now or before) with the balance after it, or
/// refused for good with the reason (a bank_errc name).
struct leg_result {
  bool applied = true;
  std::int64_t balance = 0;
  std::string refusal;
  MSGPACK_DEFINE_MAP(applied, balance, refusal);
  friend bool operator==(const leg_result&, const leg_result&) = default;
};

struct opened {
  static constexpr std::string_view type_name = "account.opened";
  std::string owner;
  std::int64_t overdraft_limit = 0;
  MSGPACK_DEFINE_MAP(owner, overdraft_limit);
};

/// Version 2: version 1 called `reference` "ref" (account::upcasters renames it). Journals
/// hold both versions; docs/schema-evolution.md tells the story.
struct deposited {
  static constexpr std::string_view type_name = "account.deposited";
  static constexpr std::uint32_t version = 2;
  std::int64_t amount = 0;
  std::string reference; ///< the deposit command's `ref`
  MSGPACK_DEFINE_MAP(amount, reference);
};

struct withdrawn {
  static constexpr std::string_view type_name = "account.withdrawn";
  std::int64_t amount = 0;
  std::string ref;
  MSGPACK_DEFINE_MAP(amount, ref);
};

struct leg_applied {
  static constexpr std::string_view type_name = "account.leg_applied";
  std::string transfer;
  leg_kind leg = leg_kind::debit;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(transfer, leg, amount);
};

/// A debit or a credit the account refused (not open, insufficient funds, the maximum
/// balance). Moves no money; a repeat of the leg is refused again.
struct leg_refused {
  static constexpr std::string_view type_name = "account.leg_refused";
  std::string transfer;
  leg_kind leg = leg_kind::debit;
  std::string reason;
  MSGPACK_DEFINE_MAP(transfer, leg, reason);
};

struct legs_settled {
  static constexpr std::string_view type_name = "account.legs_settled";
  std::string transfer;
  MSGPACK_DEFINE_MAP(transfer);
};

/// Opens the account. Replies with the balance (0).
struct open {
  static constexpr std::string_view type_name = "account.open";
  std::string owner;
  std::int64_t overdraft_limit = 0;
  MSGPACK_DEFINE_MAP(owner, overdraft_limit);
};

/// Adds money. `ref` names the operation: a repeated ref is answered without a second event.
struct deposit {
  static constexpr std::string_view type_name = "account.deposit";
  std::int64_t amount = 0;
  std::string ref;
  MSGPACK_DEFINE_MAP(amount, ref);
};

/// Takes money, down to minus the overdraft limit. `ref` as for deposit.
struct withdraw {
  static constexpr std::string_view type_name = "account.withdraw";
  std::int64_t amount = 0;
  std::string ref;
  MSGPACK_DEFINE_MAP(amount, ref);
};

/// Applies one leg of transfer `transfer` (sent by the saga only) and answers a leg_result. A
/// debit obeys the overdraft rule and a credit the maximum balance; either is refused on an
/// account that is not open. A refusal is recorded (leg_refused), so the leg's answer never
/// changes. A leg already decided and not settled is answered as before, with no event. A
/// refund needs the transfer's debit on this account, and is rejected, not refused, without.
struct apply_leg {
  static constexpr std::string_view type_name = "account.apply_leg";
  std::string transfer;
  leg_kind leg = leg_kind::debit;
  std::int64_t amount = 0;
  MSGPACK_DEFINE_MAP(transfer, leg, amount);
};

/// Forgets the legs of `transfer`, which recorded its final status. Never rejected.
struct settle_legs {
  static constexpr std::string_view type_name = "account.settle_legs";
  std::string transfer;
  MSGPACK_DEFINE_MAP(transfer);
};

/// Reads the balance.
struct get_balance {
  static constexpr std::string_view type_name = "account.get_balance";
};

struct account {
  static constexpr std::string_view name = "account";

  struct state {
    bool open = false;
    std::string owner;
    std::int64_t balance = 0;
    std::int64_t overdraft_limit = 0;
    std::vector<std::string> refs; // the most recent operation references, oldest first
    std::vector<pending_leg> legs; // legs of unsettled transfers, never evicted
    std::vector<std::string> settled; // the most recently settled transfers, oldest first
    MSGPACK_DEFINE_MAP(open, owner, balance, overdraft_limit, refs, legs, settled);

    bool seen(const std::string& ref) const {
      return !ref.empty() && std::find(refs.begin(), refs.end(), ref) != refs.end();
    }
    void remember(const std::string& ref) {
      if (ref.empty())
        return;
      refs.push_back(ref);
      if (refs.size() > remembered_refs)
        refs.erase(refs.begin());
    }
    const pending_leg* find_leg(const std::string& transfer, leg_kind leg) const {
      auto i = std::find_if(legs.begin(), legs.end(), [&](auto& l) { return l.transfer == transfer && l.leg == leg; });
      return i == legs.end() ? nullptr : &*i;
    }
    bool has_applied(const std::string& transfer, leg_kind leg) const {
      auto l = find_leg(transfer, leg);
      return l && !l->refused;
    }
  };

  /// The upcasters of older event versions (docs/schema-evolution.md).
  static cafes::expected<void> upcasters(cafes::type_registry& r) {
    // account.deposited 1 -> 2: "ref" is now "reference".
    return r.add_upcaster("account.deposited", 1, [](nlohmann::json& j) -> cafes::expected<void> {
      if (!j.contains("ref") || !j["ref"].is_string())
        return cafes::error{cafes::errc::malformed_record, "account.deposited version 1 without a string ref"};
      j["reference"] = std::move(j["ref"]);
      j.erase("ref");
      return {};
    });
  }

  using commands = std::variant<open, deposit, withdraw, apply_leg, settle_legs, get_balance>;
  using events = std::variant<opened, deposited, withdrawn, leg_applied, leg_refused, legs_settled>;
  /// Every event a handler emits is checked against `events` at compile time.
  template <class R = cafes::done>
  using decision = cafes::decision<R, events>;
  /// The reply of a deposit or a withdrawal: the balance after it.
  static std::int64_t balance_after(const state& next) { return next.balance; }

  static decision<std::int64_t> handle(const state& s, const open& c) {
    if (s.open)
      return cafes::reject(bank_errc::already_open);
    if (c.owner.empty() || c.owner.size() > 200)
      return cafes::reject(bank_errc::invalid_owner, "an owner has 1 to 200 characters");
    if (c.overdraft_limit < 0 || c.overdraft_limit > max_amount)
      return cafes::reject(bank_errc::invalid_amount, "the overdraft limit must be 0 to 10^12");
    return cafes::emit(opened{c.owner, c.overdraft_limit}).reply(std::int64_t{0});
  }

  /// The checks a deposit and a withdrawal share: an open account, a valid amount, and a
  /// reference not seen before (a repeat is answered with the balance and no event).
  static std::optional<decision<std::int64_t>> precheck(const state& s, std::int64_t amount,
                                                               const std::string& ref) {
    if (!s.open)
      return cafes::reject(bank_errc::account_not_open);
    if (amount <= 0 || amount > max_amount)
      return cafes::reject(bank_errc::invalid_amount, "an amount must be 1 to 10^12");
    if (s.seen(ref))
      return cafes::reply(s.balance);
    return std::nullopt;
  }

  static decision<std::int64_t> handle(const state& s, const deposit& c) {
    if (auto early = precheck(s, c.amount, c.ref))
      return std::move(*early);
    if (c.amount > max_balance - s.balance)
      return cafes::reject(bank_errc::balance_overflow, "the balance would exceed 10^18");
    return cafes::emit(deposited{c.amount, c.ref}).reply_with(balance_after);
  }

  static decision<std::int64_t> handle(const state& s, const withdraw& c) {
    if (auto early = precheck(s, c.amount, c.ref))
      return std::move(*early);
    if (s.balance - c.amount < -s.overdraft_limit)
      return cafes::reject(bank_errc::insufficient_funds);
    return cafes::emit(withdrawn{c.amount, c.ref}).reply_with(balance_after);
  }

  static decision<leg_result> handle(const state& s, const apply_leg& c) {
    if (c.amount <= 0 || c.amount > max_amount)
      return cafes::reject(bank_errc::invalid_amount, "an amount must be 1 to 10^12");
    if (c.transfer.empty())
      return cafes::reject(bank_errc::invalid_transfer, "a leg names its transfer");
    if (auto l = s.find_leg(c.transfer, c.leg))
      return cafes::reply(leg_result{!l->refused, s.balance, l->reason});
    // A settled transfer decided every leg it needed: a leg of it now is a late repeat.
    if (std::find(s.settled.begin(), s.settled.end(), c.transfer) != s.settled.end())
      return cafes::reply(leg_result{true, s.balance, {}});
    auto refuse = [&](bank_errc why) {
      std::string reason{make_error_code(why).message()};
      return cafes::emit(leg_refused{c.transfer, c.leg, reason}).reply(leg_result{false, s.balance, reason});
    };
    switch (c.leg) {
      case leg_kind::debit:
        if (!s.open)
          return refuse(bank_errc::account_not_open);
        if (s.balance - c.amount < -s.overdraft_limit)
          return refuse(bank_errc::insufficient_funds);
        break;
      case leg_kind::credit:
        if (!s.open)
          return refuse(bank_errc::account_not_open);
        if (c.amount > max_balance - s.balance)
          return refuse(bank_errc::balance_overflow);
        break;
      case leg_kind::refund:
        if (!s.has_applied(c.transfer, leg_kind::debit))
          return cafes::reject(bank_errc::invalid_transfer, "no debit of this transfer to refund");
        if (std::int64_t next = 0; __builtin_add_overflow(s.balance, c.amount, &next))
          return cafes::reject(bank_errc::balance_overflow, "the balance would overflow");
        break;
    }
    return cafes::emit(leg_applied{c.transfer, c.leg, c.amount}).reply_with([](const state& next) {
      return leg_result{true, next.balance, {}};
    });
  }

  static decision<> handle(const state& s, const settle_legs& c) {
    for (auto& l : s.legs)
      if (l.transfer == c.transfer)
        return cafes::emit(legs_settled{c.transfer});
    return cafes::reply(cafes::done{});
  }

  static decision<std::int64_t> handle(const state& s, const get_balance&) {
    if (!s.open)
      return cafes::reject(bank_errc::account_not_open);
    return cafes::reply(s.balance);
  }

  static void apply(state& s, const opened& e) {
    s.open = true;
    s.owner = e.owner;
    s.overdraft_limit = e.overdraft_limit;
  }
  static void apply(state& s, const deposited& e) {
    s.balance += e.amount;
    s.remember(e.reference);
  }
  static void apply(state& s, const withdrawn& e) {
    s.balance -= e.amount;
    s.remember(e.ref);
  }
  static void apply(state& s, const leg_applied& e) {
    s.balance += e.leg == leg_kind::debit ? -e.amount : e.amount;
    s.legs.push_back({e.transfer, e.leg, false, {}});
  }
  static void apply(state& s, const leg_refused& e) { s.legs.push_back({e.transfer, e.leg, true, e.reason}); }
  static void apply(state& s, const legs_settled& e) {
    std::erase_if(s.legs, [&](const pending_leg& l) { return l.transfer == e.transfer; });
    s.settled.push_back(e.transfer);
    if (s.settled.size() > remembered_settled)
      s.settled.erase(s.settled.begin());
  }
};

static_assert(cafes::aggregate_type<account>);

} // namespace bank
