// The aggregate API: decisions, rejections, emitted events, and the aggregate concept.
#pragma once

#include <any>
#include <cstdlib>
#include <cxxabi.h>
#include <functional>
#include <typeinfo>
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
  /// Every done equals every other.
  friend bool operator==(done, done) { return true; }
};

/// A rejection: the command is refused with a typed error and writes nothing.
struct rejection {
  /// The error the command is refused with.
  cafes::error err;
};

/// Returns a rejection with error code `e` (any error-code enum, for example one declared
/// with CAFES_ERROR_ENUM) and an optional message.
template <class E>
  requires error_enum<E>
rejection reject(E e, std::string msg = {}) {
  (void)detail::category_registrar<E>::done; // a rejection routed back from another node keeps its category
  return rejection{cafes::error{e, std::move(msg)}};
}

/// Returns a rejection with the plain code `cafes:rejected` and `msg`: for an aggregate that
/// needs no error enum of its own. The caller tests it with `r.error() ==
/// cafes::condition::rejected` and reads the message.
inline rejection reject(std::string msg) { return rejection{cafes::error{actor_errc::rejected, std::move(msg)}}; }

/// \cond detail
namespace detail {

/// Returns the readable (demangled) name of a C++ type, for errors.
inline std::string readable_name(const std::type_info& t) {
  int status = 0;
  char* s = abi::__cxa_demangle(t.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && s ? s : t.name();
  std::free(s);
  return out;
}

template <class T, class V>
struct in_variant : std::false_type {};
template <class T, class... Ts>
struct in_variant<T, std::variant<Ts...>> : std::bool_constant<(std::is_same_v<T, Ts> || ...)> {};

/// Instantiated once per emitted event type E when a handler's decision names its aggregate's
/// events (decision<R, events>): the compiler's "required from" line names E.
template <class E, class Events>
struct emitted_event_check {
  static_assert(std::is_void_v<Events> || in_variant<E, Events>::value,
                "cafes: a handler emits an event type that is not in its aggregate's `events` variant "
                "(E in emitted_event_check<E, Events> names it)");
  static constexpr bool value = std::is_void_v<Events> || in_variant<E, Events>::value;
};

/// What reply_with learns of its function: the state type it reads and what it returns.
template <class F>
struct reply_fn : reply_fn<decltype(&F::operator())> {};
template <class C, class Ret, class S>
struct reply_fn<Ret (C::*)(S) const> {
  using state = std::remove_cvref_t<S>;
  using result = Ret;
};
template <class C, class Ret, class S>
struct reply_fn<Ret (C::*)(S)> : reply_fn<Ret (C::*)(S) const> {};
template <class Ret, class S>
struct reply_fn<Ret (*)(S)> {
  using state = std::remove_cvref_t<S>;
  using result = Ret;
};

template <class F>
concept unary_fn = requires { &F::operator(); } || std::is_function_v<std::remove_pointer_t<F>>;

/// The parts of a decision before it meets its declared type: events of the static types
/// Es..., and a reply (a value, or a function of the state after the events).
template <class R, class... Es>
struct decided_parts {
  std::vector<std::any> events;
  R reply{};
  std::function<R(const void*)> reply_from; // reply_with: reads the next state
  const std::type_info* state_type = nullptr;
};

} // namespace detail
/// \endcond

/// What a command handler decided: a rejection, or 0..n events plus a reply of type R.
///
/// With `Events`, the aggregate's events variant, every event a handler emits is checked at
/// compile time; declare `template <class R = cafes::done> using decision = cafes::decision<R,
/// events>;` in the aggregate and return `decision<R>`. Without it, an event outside the
/// variant fails the command at run time (invalid_command).
template <class R = done, class Events = void>
class [[nodiscard]] decision {
 public:
  /// The reply's type.
  using reply_type = R;
  /// The aggregate's events variant, or void (then checked at run time).
  using events_type = Events;

  /// Refuses the command (from reject()).
  decision(rejection r) : rejection_(std::move(r.err)) {}
  /// Emits `events` (in order; none for a command that changes nothing) and answers `reply`.
  decision(std::vector<std::any> events, R reply) : events_(std::move(events)), reply_(std::move(reply)) {}

  /// From emit(…).reply(…), emit(…).reply_with(…), reply(…): checks the emitted types.
  template <class R2, class... Es>
    requires std::is_constructible_v<R, R2&&>
  decision(detail::decided_parts<R2, Es...>&& p) : events_(std::move(p.events)), reply_(std::move(p.reply)) {
    [[maybe_unused]] constexpr bool checked = (detail::emitted_event_check<Es, Events>::value && ...);
    if (p.reply_from) {
      if constexpr (std::is_same_v<R, R2>)
        reply_from_ = std::move(p.reply_from);
      else
        reply_from_ = [f = std::move(p.reply_from)](const void* s) -> R { return R(f(s)); };
      state_type_ = p.state_type;
    }
  }

  /// Returns true if the command is refused.
  bool rejected() const noexcept { return rejection_.has_value(); }
  /// Returns the rejection's error; only when rejected().
  const cafes::error& error() const { return *rejection_; }
  /// Returns the events to emit, type-erased, in order.
  const std::vector<std::any>& events() const noexcept { return events_; }
  /// Returns the events to emit, type-erased, in order.
  std::vector<std::any>& events() noexcept { return events_; }
  /// The reply; for reply_with, a default R until reply_after() computes it.
  const R& reply() const { return reply_; }
  /// The reply; for reply_with, a default R until reply_after() computes it.
  R& reply() { return reply_; }

  /// Whether the reply is computed from the state after the events (reply_with).
  bool replies_from_state() const noexcept { return static_cast<bool>(reply_from_); }

  /// Returns the reply given `next`, the state after the events: reply_with's function of it,
  /// or the plain reply. Fails with handler_failed if the function reads another type than S.
  template <class S>
  expected<R> reply_after(const S& next) const {
    if (!reply_from_)
      return reply_;
    if (*state_type_ != typeid(S))
      return cafes::error{actor_errc::handler_failed, "reply_with's function reads a " +
                                                        detail::readable_name(*state_type_) + ", not the state " +
                                                        detail::readable_name(typeid(S))};
    return reply_from_(&next);
  }

 private:
  std::optional<cafes::error> rejection_;
  std::vector<std::any> events_;
  R reply_{};
  std::function<R(const void*)> reply_from_;
  const std::type_info* state_type_ = nullptr;
};

/// Events to emit, of types Es...; turns into a decision with .reply(value) or
/// .reply_with(function of the next state), or into a decision<done> as is.
template <class... Es>
class emitted {
 public:
  /// Holds `events`; emit() builds it.
  explicit emitted(std::vector<std::any> events) : events_(std::move(events)) {}

  /// Returns the decision to emit these events and answer `r` once they are durable.
  template <class R>
  detail::decided_parts<std::decay_t<R>, Es...> reply(R&& r) && {
    return {std::move(events_), std::forward<R>(r), {}, nullptr};
  }

  /// Returns the decision to emit these events and answer `f(next)` once they are durable,
  /// where `next` is the state after them: `emit(e).reply_with([](const state& next) { return
  /// next.total; })`. `f` takes the aggregate's state by const reference (not `auto`).
  template <class F>
  auto reply_with(F f) && {
    static_assert(detail::unary_fn<F>, "cafes: reply_with takes a function of the aggregate's state, "
                                       "[](const state& next) { ... }, not a generic lambda");
    using S = typename detail::reply_fn<F>::state;
    using R = std::decay_t<typename detail::reply_fn<F>::result>;
    static_assert(!std::is_void_v<R>, "cafes: reply_with's function must return the reply");
    return detail::decided_parts<R, Es...>{
      std::move(events_), R{}, [f = std::move(f)](const void* s) -> R { return f(*static_cast<const S*>(s)); },
      &typeid(S)};
  }

  /// Becomes the decision to emit these events and answer cafes::done, for a handler whose
  /// reply is done; any other reply type must be given with reply() or reply_with().
  template <class R, class Events>
  operator decision<R, Events>() && {
    static_assert(std::is_same_v<R, done>, "cafes: a handler whose reply is not cafes::done must "
                                           "give it: emit(...).reply(value) or .reply_with(fn)");
    return decision<R, Events>{detail::decided_parts<done, Es...>{std::move(events_), done{}, {}, nullptr}};
  }

 private:
  std::vector<std::any> events_;
};

/// Returns the events to emit (0..n) of a decision.
template <class... Es>
emitted<std::decay_t<Es>...> emit(Es&&... es) {
  std::vector<std::any> v;
  v.reserve(sizeof...(Es));
  (v.emplace_back(std::forward<Es>(es)), ...);
  return emitted<std::decay_t<Es>...>{std::move(v)};
}

/// Returns a decision that emits nothing and answers `r`.
template <class R>
detail::decided_parts<std::decay_t<R>> reply(R&& r) {
  return {{}, std::forward<R>(r), {}, nullptr};
}

namespace detail {

template <class T>
struct is_variant : std::false_type {};
template <class... Ts>
struct is_variant<std::variant<Ts...>> : std::true_type {};

template <class T>
struct is_decision : std::false_type {};
template <class R, class V>
struct is_decision<decision<R, V>> : std::true_type {};

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
///
/// cafes' own templates (node::host, node::ask, testing::given) check each of these with a
/// static_assert whose message starts with "cafes:" and whose context names the type at fault.
template <class A>
concept aggregate_type = requires {
  { A::name } -> std::convertible_to<std::string_view>;
  typename A::state;
  typename A::commands;
  typename A::events;
} && std::default_initializable<typename A::state> && detail::is_variant<typename A::commands>::value &&
  detail::is_variant<typename A::events>::value && detail::all_handled<A, typename A::commands>::value &&
  detail::all_applied<A, typename A::events>::value;

namespace detail {

template <class A, class C>
constexpr bool decision_events_match() {
  if constexpr (handles<A, C>) {
    using V = typename decltype(A::handle(std::declval<const typename A::state&>(),
                                          std::declval<const C&>()))::events_type;
    return std::is_void_v<V> || std::is_same_v<V, typename A::events>;
  } else {
    return true;
  }
}

/// Checks one command C of aggregate A (C names the command in the compiler's context line).
template <class A, class C>
struct command_check {
  static_assert(handles<A, C>, "cafes: a command in the aggregate's `commands` has no "
                               "`static decision<R> handle(const state&, const C&)` (C in command_check<A, C> names it)");
  static_assert(decision_events_match<A, C>(), "cafes: a handler returns decision<R, V> whose V is not its "
                                                "aggregate's `events` (C in command_check<A, C> names the command)");
  static constexpr bool value = handles<A, C> && decision_events_match<A, C>();
};

/// Checks one event E of aggregate A (E names the event in the compiler's context line).
template <class A, class E>
struct event_check {
  static_assert(requires { { E::type_name } -> std::convertible_to<std::string_view>; },
                "cafes: an event in the aggregate's `events` has no `static constexpr std::string_view type_name` "
                "(E in event_check<A, E> names it)");
  static_assert(requires(typename A::state& s, const E& e) { A::apply(s, e); },
                "cafes: the aggregate has no `static void apply(state&, const E&)` for an event in its `events` "
                "(E in event_check<A, E> names it)");
  static constexpr bool value = requires(typename A::state& s, const E& e) {
    { E::type_name } -> std::convertible_to<std::string_view>;
    A::apply(s, e);
  };
};

template <class A, class Cs, class Es>
struct members_check;
template <class A, class... Cs, class... Es>
struct members_check<A, std::variant<Cs...>, std::variant<Es...>> {
  static constexpr bool value = (command_check<A, Cs>::value && ...) && (event_check<A, Es>::value && ...);
};

/// Checks aggregate A member by member, so that a mistake reads as one plain message.
template <class A>
constexpr bool check_aggregate() {
  if constexpr (!requires { { A::name } -> std::convertible_to<std::string_view>; }) {
    static_assert(sizeof(A) == 0, "cafes: an aggregate needs `static constexpr std::string_view name`");
    return false;
  } else if constexpr (!requires { typename A::state; } || !requires { typename A::commands; } ||
                       !requires { typename A::events; }) {
    static_assert(sizeof(A) == 0, "cafes: an aggregate needs the types `state`, `commands` and `events`");
    return false;
  } else if constexpr (!is_variant<typename A::commands>::value || !is_variant<typename A::events>::value) {
    static_assert(sizeof(A) == 0, "cafes: an aggregate's `commands` and `events` are std::variant<...>");
    return false;
  } else {
    static_assert(std::default_initializable<typename A::state>, "cafes: an aggregate's `state` must be "
                                                                 "default-constructible (the state of a new aggregate)");
    return members_check<A, typename A::commands, typename A::events>::value;
  }
}

/// Checks that C is a command of aggregate A: one of `commands`, or the variant itself.
template <class A, class C>
struct command_of_check {
  static_assert(in_variant<C, typename A::commands>::value || std::is_same_v<C, typename A::commands>,
                "cafes: this command type is not in the aggregate's `commands` variant, so a node would refuse it "
                "(C in command_of_check<A, C> names it)");
  static constexpr bool value = in_variant<C, typename A::commands>::value || std::is_same_v<C, typename A::commands>;
};

} // namespace detail

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
