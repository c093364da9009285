// The aggregate API: decisions, rejections, emitted events, and the aggregate concept.
#pragma once

#include <any>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "cafes/actors/errc.hpp"
#include "cafes/core/error.hpp"

namespace cafes {

/// The reply of a command that answers nothing but success.
struct done {
  friend bool operator==(done, done) { return true; }
};

/// A rejection: the command is refused with a typed error and writes nothing.
struct rejection {
  cafes::error err;
};

/// Returns a rejection with error code `e` (any error-code enum) and an optional message.
template <class E>
  requires std::is_error_code_enum_v<E>
rejection reject(E e, std::string msg = {}) {
  (void)detail::category_registrar<E>::done; // a rejection routed back from another node keeps its category
  return rejection{cafes::error{e, std::move(msg)}};
}

/// What a command handler decided: a rejection, or 0..n events plus a reply of type R.
template <class R = done>
class [[nodiscard]] decision {
 public:
  using reply_type = R;

  decision(rejection r) : rejection_(std::move(r.err)) {}
  decision(std::vector<std::any> events, R reply) : events_(std::move(events)), reply_(std::move(reply)) {}

  bool rejected() const noexcept { return rejection_.has_value(); }
  const cafes::error& error() const { return *rejection_; }
  const std::vector<std::any>& events() const noexcept { return events_; }
  std::vector<std::any>& events() noexcept { return events_; }
  const R& reply() const { return reply_; }
  R& reply() { return reply_; }

 private:
  std::optional<cafes::error> rejection_;
  std::vector<std::any> events_;
  R reply_{};
};

/// Events to emit; turns into a decision with .reply(value), or into decision<done> as is.
class emitted {
 public:
  explicit emitted(std::vector<std::any> events) : events_(std::move(events)) {}

  /// Returns the decision to emit these events and answer `r` once they are durable.
  template <class R>
  decision<std::decay_t<R>> reply(R&& r) && {
    return decision<std::decay_t<R>>{std::move(events_), std::forward<R>(r)};
  }

  operator decision<done>() && { return decision<done>{std::move(events_), done{}}; }

 private:
  std::vector<std::any> events_;
};

/// Returns the events to emit (0..n) of a decision.
template <class... Es>
emitted emit(Es&&... es) {
  std::vector<std::any> v;
  v.reserve(sizeof...(Es));
  (v.emplace_back(std::forward<Es>(es)), ...);
  return emitted{std::move(v)};
}

/// Returns a decision that emits nothing and answers `r`.
template <class R>
decision<std::decay_t<R>> reply(R&& r) {
  return decision<std::decay_t<R>>{{}, std::forward<R>(r)};
}

namespace detail {

template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

template <class T>
struct is_decision : std::false_type {};
template <class R>
struct is_decision<decision<R>> : std::true_type {};

template <class A, class C>
concept handles = requires(const typename A::state& s, const C& c) {
  { A::handle(s, c) };
} && is_decision<decltype(A::handle(std::declval<const typename A::state&>(), std::declval<const C&>()))>::value;

template <class A, class E>
concept applies = requires(typename A::state& s, const E& e) {
  { A::apply(s, e) };
  { E::type_name } -> std::convertible_to<std::string_view>;
};

template <class A, class V>
struct all_handled;
template <class A, class... Cs>
struct all_handled<A, std::variant<Cs...>> : std::bool_constant<(handles<A, Cs> && ...)> {};

template <class A, class V>
struct all_applied;
template <class A, class... Es>
struct all_applied<A, std::variant<Es...>> : std::bool_constant<(applies<A, Es> && ...)> {};

} // namespace detail

/// An aggregate type: `name`, a default-constructible `state`, the variants `commands` and
/// `events`, a pure `handle(const state&, const C&) -> decision<R>` for every command C, and
/// a pure `apply(state&, const E&)` for every event E, which names itself with `type_name`.
/// Optional: `static constexpr std::uint32_t state_version`, `static constexpr bool
/// pipelining`, and `static constexpr std::uint32_t version` on events.
template <class A>
concept aggregate_type = requires {
  { A::name } -> std::convertible_to<std::string_view>;
  typename A::state;
  typename A::commands;
  typename A::events;
} && std::default_initializable<typename A::state> && detail::is_variant<typename A::commands>::value &&
  detail::is_variant<typename A::events>::value && detail::all_handled<A, typename A::commands>::value &&
  detail::all_applied<A, typename A::events>::value;

/// The reply type of command C to aggregate A.
template <class A, class C>
using reply_t =
  typename decltype(A::handle(std::declval<const typename A::state&>(), std::declval<const C&>()))::reply_type;

/// Returns the schema version of event or state type T (T::version, or 1).
template <class T>
constexpr std::uint32_t version_of() {
  if constexpr (requires { T::version; })
    return T::version;
  else
    return 1;
}

/// Returns whether aggregate A opted in to pipelining (A::pipelining).
template <class A>
constexpr bool pipelining_of() {
  if constexpr (requires { A::pipelining; })
    return A::pipelining;
  else
    return false;
}

/// Returns the schema version of A's state (A::state_version, or 1).
template <class A>
constexpr std::uint32_t state_version_of() {
  if constexpr (requires { A::state_version; })
    return A::state_version;
  else
    return 1;
}

} // namespace cafes
