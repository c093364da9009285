// The actors error category.
#include "cafes/actors/errc.hpp"

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cafes/persistence/errc.hpp"

namespace cafes {

namespace {

class actors_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cafes.actors"; }
  std::string message(int v) const override {
    switch (static_cast<actor_errc>(v)) {
      case actor_errc::ok: return "ok";
      case actor_errc::unknown_aggregate_type: return "unknown_aggregate_type";
      case actor_errc::invalid_command: return "invalid_command";
      case actor_errc::overloaded: return "overloaded";
      case actor_errc::persist_failed: return "persist_failed";
      case actor_errc::recovery_failed: return "recovery_failed";
      case actor_errc::timeout: return "timeout";
      case actor_errc::shutting_down: return "shutting_down";
      case actor_errc::not_owner: return "not_owner";
      case actor_errc::handler_failed: return "handler_failed";
      case actor_errc::not_encodable: return "not_encodable";
      case actor_errc::unreachable: return "unreachable";
      case actor_errc::frame_too_large: return "frame_too_large";
      case actor_errc::rejected: return "rejected";
      case actor_errc::no_history: return "no_history";
      case actor_errc::out_of_history: return "out_of_history";
    }
    return "unknown(" + std::to_string(v) + ")";
  }
};

} // namespace

const std::error_category& actors_category() noexcept {
  static const actors_category_impl cat;
  return cat;
}

namespace {

bool is_own(const std::error_category& c) { return c == actors_category() || c == persistence_category(); }

bool meets(const std::error_code& e, condition c) {
  if (!e)
    return false;
  switch (c) {
    case condition::rejected:
      return !is_own(e.category()) || e == actor_errc::rejected || e == errc::invalid_aggregate_id ||
             e == errc::reserved_aggregate_id;
    case condition::retryable:
      return meets(e, condition::overloaded);
    case condition::unknown_outcome:
      // A reply too large to send back (frame_too_large) comes after the command was applied;
      // an unreachable node may have lost the frame in flight; a fenced write (not_owner) may
      // have landed, and is then the new owner's.
      return e == actor_errc::persist_failed || e == actor_errc::timeout || e == actor_errc::shutting_down ||
             e == actor_errc::not_owner || e == actor_errc::unreachable || e == actor_errc::frame_too_large;
    case condition::overloaded: return e == actor_errc::overloaded || e == errc::overloaded;
    case condition::timeout: return e == actor_errc::timeout || e == errc::timeout;
  }
  return false;
}

class condition_category_impl final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cafes"; }
  std::string message(int v) const override {
    switch (static_cast<condition>(v)) {
      case condition::rejected: return "rejected";
      case condition::retryable: return "retryable";
      case condition::unknown_outcome: return "unknown_outcome";
      case condition::overloaded: return "overloaded";
      case condition::timeout: return "timeout";
    }
    return "unknown(" + std::to_string(v) + ")";
  }
  // Decides for every category, the applications' own included: a rejection carries the
  // category of the aggregate's error enum, which cafes does not know.
  bool equivalent(const std::error_code& e, int c) const noexcept override {
    return meets(e, static_cast<condition>(c));
  }
};

} // namespace

const std::error_category& condition_category() noexcept {
  static const condition_category_impl cat;
  return cat;
}

namespace {

struct category_table {
  std::mutex mtx;
  std::map<std::string, const std::error_category*, std::less<>> by_name;
  std::vector<detail::category_getter> pending; // registered at start-up, resolved at lookup
  category_table() {
    for (auto* c : {&actors_category(), &persistence_category(), &std::generic_category(), &std::system_category()})
      by_name.emplace(c->name(), c);
  }
};

category_table& categories() {
  static category_table t;
  return t;
}

} // namespace

void register_error_category(const std::error_category& c) {
  auto& t = categories();
  std::lock_guard guard{t.mtx};
  t.by_name.emplace(c.name(), &c); // the first category of a name keeps it
}

void detail::register_error_category(category_getter g) {
  auto& t = categories();
  std::lock_guard guard{t.mtx};
  t.pending.push_back(g);
}

const std::error_category* find_error_category(std::string_view name) {
  auto& t = categories();
  std::lock_guard guard{t.mtx};
  for (auto g : t.pending) {
    const auto& c = g();
    t.by_name.emplace(c.name(), &c);
  }
  t.pending.clear();
  auto i = t.by_name.find(name);
  return i == t.by_name.end() ? nullptr : i->second;
}

} // namespace cafes
