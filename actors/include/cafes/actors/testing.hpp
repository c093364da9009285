// given/when/then: tests an aggregate's pure logic with no Kafka and no actors.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cafes/actors/aggregate.hpp"
#include "cafes/actors/ops.hpp"

namespace cafes::testing {

/// The outcome of one command: the rejection or the events and reply, and the state after.
template <aggregate_type A, class R>
struct outcome {
  std::optional<cafes::error> rejection;
  std::vector<typename A::events> events;
  R reply{};
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

/// A history of events applied to an empty state; when() runs one command against it.
template <aggregate_type A>
class scenario {
 public:
  explicit scenario(std::vector<typename A::events> history) {
    for (auto& e : history)
      std::visit([&](const auto& x) { A::apply(state_, x); }, e);
  }

  const typename A::state& state() const noexcept { return state_; }

  /// Runs command `c` against the state and applies what it emitted to a copy of the state.
  template <class C>
  outcome<A, reply_t<A, C>> when(const C& c) const {
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
      if (!hit)
        out.rejection = cafes::error{actor_errc::invalid_command, "emitted an event not in A::events"};
    }
    out.reply = std::move(d.reply());
    return out;
  }

 private:
  typename A::state state_{};
};

/// Starts a scenario with the given past events.
template <aggregate_type A, class... Es>
scenario<A> given(Es&&... history) {
  return scenario<A>{std::vector<typename A::events>{typename A::events{std::forward<Es>(history)}...}};
}

} // namespace cafes::testing
