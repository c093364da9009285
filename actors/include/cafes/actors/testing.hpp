// given/when/then: tests an aggregate's pure logic with no Kafka and no actors.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cafes/actors/aggregate.hpp"
#include "cafes/actors/ops.hpp"

namespace cafes::testing {

/// The outcome of one command: the rejection or the events and reply, and the state after.
template <class A, class R>
struct outcome {
  /// The error, if the command was refused (nothing emitted then).
  std::optional<cafes::error> rejection;
  /// The events the command emitted, in order.
  std::vector<typename A::events> events;
  /// The command's reply.
  R reply{};
  /// The state after the events (the state before, on a rejection).
  typename A::state state;

  /// Returns true if the command was rejected with error code `e`.
  template <class E>
  bool rejected_with(E e) const {
    return rejection && rejection->code == make_error_code(e);
  }

  /// Returns true if exactly these events were emitted (compared by their msgpack encoding).
  template <class... Es>
  bool emitted(const Es&... es) const {
    if (rejection || events.size() != sizeof...(Es))
      return false;
    static const auto ops = make_ops<A>();
    std::size_t i = 0;
    bool same = true;
    auto one = [&](const auto& want) {
      auto a = ops->encode_event(std::any{want});
      std::any got;
      std::visit([&](const auto& e) { got = e; }, events[i++]);
      auto b = ops->encode_event(got);
      same = same && a && b && a->type == b->type && a->bytes == b->bytes;
    };
    (one(es), ...);
    return same;
  }
};

/// A history of events applied to an empty state; when() runs one command against it. It
/// accepts exactly what a node accepts: the same compile-time checks, the same run-time errors.
template <class A>
class scenario {
  // Runs the checks, whose own static_asserts report a mistake (once, with its message).
  static constexpr bool checked_ = detail::check_all<A>();
  static_assert(checked_ || true);

 public:
  /// Applies `history` to an empty state.
  explicit scenario(std::vector<typename A::events> history) {
    for (auto& e : history)
      std::visit([&](const auto& x) { A::apply(state_, x); }, e);
  }

  /// Returns the state after the history.
  const typename A::state& state() const noexcept { return state_; }

  /// Runs command `c` against the state and applies what it emitted to a copy of the state.
  template <class C>
  auto when(const C& c) const {
    if constexpr (detail::command_of_check<A, C>::value) // else: a "cafes:" message, not a failed overload
      return run(c);
  }

 private:
  template <class C>
  outcome<A, reply_t<A, C>> run(const C& c) const {
    outcome<A, reply_t<A, C>> out;
    out.state = state_;
    auto d = A::handle(state_, c);
    if (d.rejected()) {
      out.rejection = d.error();
      return out;
    }
    for (auto& any_event : d.events()) {
      bool hit = detail::visit_any<typename A::events>(any_event, [&](const auto& e) {
        out.events.emplace_back(e);
        A::apply(out.state, e);
      });
      if (!hit) { // as a node answers it: nothing is written
        out.rejection = cafes::error{actor_errc::invalid_command, "a handler of '" + std::string{A::name} +
                                                                   "' emitted an event that is not in its events"};
        out.events.clear();
        out.state = state_;
        return out;
      }
    }
    auto r = d.reply_after(out.state); // reply_with: from the state after the events
    if (!r) {
      out.rejection = std::move(r).error();
      out.events.clear();
      out.state = state_;
      return out;
    }
    out.reply = std::move(*r);
    return out;
  }

  typename A::state state_{};
};

/// Starts a scenario with the given past events.
template <class A, class... Es>
scenario<A> given(Es&&... history) {
  return scenario<A>{std::vector<typename A::events>{typename A::events{std::forward<Es>(history)}...}};
}

} // namespace cafes::testing
