// The bank's account aggregate: open, deposit, withdraw, with an overdraft rule and
// deduplication by command reference.
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

#include "cafes/actors/aggregate.hpp"

namespace bank {

/// Errors of the bank's rules.
enum class bank_errc {
  account_not_open = 1,
  already_open,
  invalid_amount,
  insufficient_funds,
  invalid_owner,
  invalid_transfer,
  unknown_transfer,
};

const std::error_category& bank_category() noexcept;

inline std::error_code make_error_code(bank_errc e) noexcept { return {static_cast<int>(e), bank_category()}; }

} // namespace bank

template <>
struct std::is_error_code_enum<bank::bank_errc> : std::true_type {};

namespace bank {

/// The largest amount one command may move (keeps sums far from overflow).
inline constexpr std::int64_t max_amount = 1'000'000'000'000;
/// How many recent command references an account remembers to drop duplicates.
inline constexpr std::size_t remembered_refs = 512;

struct opened {
  static constexpr std::string_view type_name = "account.opened";
  std::string owner;
  std::int64_t overdraft_limit = 0;
  MSGPACK_DEFINE_MAP(owner, overdraft_limit);
};

struct deposited {
  static constexpr std::string_view type_name = "account.deposited";
  std::int64_t amount = 0;
  std::string ref;
  MSGPACK_DEFINE_MAP(amount, ref);
};

struct withdrawn {
  static constexpr std::string_view type_name = "account.withdrawn";
  std::int64_t amount = 0;
  std::string ref;
  MSGPACK_DEFINE_MAP(amount, ref);
};

/// Opens the account. Replies with the balance (0).
struct open {
  std::string owner;
  std::int64_t overdraft_limit = 0;
};

/// Adds money. `ref` names the operation: a repeated ref is answered without a second event.
struct deposit {
  std::int64_t amount = 0;
  std::string ref;
};

/// Takes money, down to minus the overdraft limit. `ref` as for deposit.
struct withdraw {
  std::int64_t amount = 0;
  std::string ref;
};

/// Reads the balance.
struct get_balance {};

struct account {
  static constexpr std::string_view name = "account";

  struct state {
    bool open = false;
    std::string owner;
    std::int64_t balance = 0;
    std::int64_t overdraft_limit = 0;
    std::vector<std::string> refs; // the most recent operation references, oldest first
    MSGPACK_DEFINE_MAP(open, owner, balance, overdraft_limit, refs);

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
  };

  using commands = std::variant<open, deposit, withdraw, get_balance>;
  using events = std::variant<opened, deposited, withdrawn>;

  static cafes::decision<std::int64_t> handle(const state& s, const open& c) {
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
  static std::optional<cafes::decision<std::int64_t>> precheck(const state& s, std::int64_t amount,
                                                               const std::string& ref) {
    if (!s.open)
      return cafes::reject(bank_errc::account_not_open);
    if (amount <= 0 || amount > max_amount)
      return cafes::reject(bank_errc::invalid_amount, "an amount must be 1 to 10^12");
    if (s.seen(ref))
      return cafes::reply(s.balance);
    return std::nullopt;
  }

  static cafes::decision<std::int64_t> handle(const state& s, const deposit& c) {
    if (auto early = precheck(s, c.amount, c.ref))
      return std::move(*early);
    return cafes::emit(deposited{c.amount, c.ref}).reply(s.balance + c.amount);
  }

  static cafes::decision<std::int64_t> handle(const state& s, const withdraw& c) {
    if (auto early = precheck(s, c.amount, c.ref))
      return std::move(*early);
    if (s.balance - c.amount < -s.overdraft_limit)
      return cafes::reject(bank_errc::insufficient_funds);
    return cafes::emit(withdrawn{c.amount, c.ref}).reply(s.balance - c.amount);
  }

  static cafes::decision<std::int64_t> handle(const state& s, const get_balance&) {
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
    s.remember(e.ref);
  }
  static void apply(state& s, const withdrawn& e) {
    s.balance -= e.amount;
    s.remember(e.ref);
  }
};

static_assert(cafes::aggregate_type<account>);

} // namespace bank
