// The type-erased view of one aggregate type, so that the actors are not templates.
#pragma once

#include <any>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cafes/actors/aggregate.hpp"
#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/registry.hpp"

namespace cafes {

/// What a handler decided, with the reply and the events type-erased.
struct decided {
  std::optional<cafes::error> rejection;
  std::vector<std::any> events;
  std::any reply;
};

/// Everything the runtime needs to know about one aggregate type.
class aggregate_ops {
 public:
  virtual ~aggregate_ops() = default;
  virtual std::string_view name() const noexcept = 0;
  virtual bool pipelining() const noexcept = 0;
  /// Returns an empty state.
  virtual std::any initial_state() const = 0;
  /// Runs the handler; invalid_command if `command` is none of the aggregate's commands.
  virtual decided decide(const std::any& state, const std::any& command) const = 0;
  /// Applies one typed event to the state.
  virtual void apply(std::any& state, const std::any& event) const = 0;
  /// Encodes a typed event (name, version, msgpack bytes).
  virtual expected<encoded_value> encode_event(const std::any& event) const = 0;
  /// Decodes a journaled event into its typed form, upcasting older versions.
  virtual expected<std::any> decode_event(const event_envelope& e) const = 0;
  virtual expected<encoded_value> encode_state(const std::any& state) const = 0;
  virtual expected<std::any> decode_state(std::string_view type, std::uint32_t version,
                                          std::string_view bytes) const = 0;
  virtual const type_registry& registry() const noexcept = 0;
};

namespace detail {

template <class V, class F>
bool visit_any(const std::any& a, F&& f) {
  return [&]<class... Ts>(std::variant<Ts...>*) {
    bool hit = false;
    auto try_one = [&]<class T>(T*) {
      if (!hit)
        if (auto* p = std::any_cast<T>(&a)) {
          f(*p);
          hit = true;
        }
    };
    (try_one(static_cast<Ts*>(nullptr)), ...);
    if (!hit)
      if (auto* v = std::any_cast<V>(&a)) {
        std::visit(f, *v);
        hit = true;
      }
    return hit;
  }(static_cast<V*>(nullptr));
}

template <aggregate_type A>
class ops_impl final : public aggregate_ops {
 public:
  using state = typename A::state;

  ops_impl() {
    [this]<class... Es>(std::variant<Es...>*) {
      (check(registry_.template add<Es>(std::string{Es::type_name}, version_of<Es>())), ...);
    }(static_cast<typename A::events*>(nullptr));
    check(registry_.template add<state>(state_type_name(), state_version_of<A>()));
    if constexpr (requires(type_registry& r) {
                    { A::upcasters(r) } -> std::same_as<expected<void>>;
                  })
      check(A::upcasters(registry_));
    else if constexpr (requires(type_registry& r) { A::upcasters(r); })
      A::upcasters(registry_);
  }

  static std::string state_type_name() { return std::string{A::name} + ".state"; }

  std::string_view name() const noexcept override { return A::name; }
  bool pipelining() const noexcept override { return pipelining_of<A>(); }
  std::any initial_state() const override { return state{}; }

  decided decide(const std::any& s, const std::any& command) const override {
    decided out;
    const auto& st = std::any_cast<const state&>(s);
    bool hit = visit_any<typename A::commands>(command, [&](const auto& c) {
      auto d = A::handle(st, c);
      if (d.rejected()) {
        out.rejection = d.error();
        return;
      }
      out.events = std::move(d.events());
      out.reply = std::move(d.reply());
    });
    if (!hit)
      out.rejection = cafes::error{actor_errc::invalid_command,
                                   "the command is not a command of aggregate '" + std::string{A::name} + "'"};
    return out;
  }

  void apply(std::any& s, const std::any& event) const override {
    auto& st = std::any_cast<state&>(s);
    visit_any<typename A::events>(event, [&](const auto& e) { A::apply(st, e); });
  }

  expected<encoded_value> encode_event(const std::any& event) const override {
    std::optional<expected<encoded_value>> out;
    visit_any<typename A::events>(event, [&](const auto& e) { out = registry_.encode(e); });
    if (!out)
      return cafes::error{actor_errc::invalid_command,
                          "a handler of '" + std::string{A::name} + "' emitted an event that is not in its events"};
    return std::move(*out);
  }

  expected<std::any> decode_event(const event_envelope& e) const override {
    // The state type is registered too (for snapshots), but it is no event: an event record
    // that names it would be decoded and then ignored by apply while its seq is consumed.
    if (e.type == state_type_name())
      return cafes::error{errc::unknown_type, "event of aggregate '" + e.id.str() + "' seq " +
                                                  std::to_string(e.seq.value()) + " names the state type '" + e.type +
                                                  "', not an event type of '" + std::string{A::name} + "'"};
    return registry_.decode_any(e.type, e.schema_version, e.payload);
  }

  expected<encoded_value> encode_state(const std::any& s) const override {
    return registry_.encode(std::any_cast<const state&>(s));
  }

  expected<std::any> decode_state(std::string_view type, std::uint32_t version, std::string_view bytes) const override {
    if (type != state_type_name())
      return cafes::error{errc::type_mismatch, "snapshot of type '" + std::string{type} + "' is not a '" +
                                                   state_type_name() + "'"};
    return registry_.decode_any(type, version, bytes);
  }

  const type_registry& registry() const noexcept override { return registry_; }

 private:
  static void check(const expected<void>& r) {
    if (!r)
      throw bad_expected_access(r.error()); // a wrong aggregate definition: fail at start-up
  }
  type_registry registry_;
};

} // namespace detail

/// Returns the type-erased operations of aggregate type A.
template <aggregate_type A>
std::shared_ptr<const aggregate_ops> make_ops() {
  return std::make_shared<detail::ops_impl<A>>();
}

} // namespace cafes
