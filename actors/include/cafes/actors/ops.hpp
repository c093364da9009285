// The type-erased view of one aggregate type, so that the actors are not templates.
#pragma once

#include <any>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <cxxabi.h>

#include "cafes/actors/aggregate.hpp"
#include "cafes/persistence/envelope.hpp"
#include "cafes/persistence/registry.hpp"

namespace cafes {

/// What a handler decided, with the reply and the events type-erased.
struct decided {
  /// The error, if the handler refused the command.
  std::optional<cafes::error> rejection;
  /// The events to emit, in order.
  std::vector<std::any> events;
  /// The reply.
  std::any reply;
  /// Set by reply_with: computes the reply from the state after the events (replaces `reply`).
  std::function<expected<std::any>(const std::any& next)> reply_from;
};

/// Whether T has a msgpack codec. cafes assumes one for every type but a plain struct (an
/// aggregate class), which needs MSGPACK_DEFINE_MAP(fields...). Specialize it to true for a
/// plain struct with a codec of another kind (a msgpack adaptor specialization).
template <class T>
struct has_msgpack_codec
    : std::bool_constant<!std::is_class_v<T> || !std::is_aggregate_v<T> ||
                         requires(const T& t, msgpack::packer<msgpack::sbuffer>& pk) { t.msgpack_pack(pk); }> {};

/// Everything the runtime needs to know about one aggregate type.
class aggregate_ops {
 public:
  virtual ~aggregate_ops() = default;
  /// Returns the aggregate type's name (A::name).
  virtual std::string_view name() const noexcept = 0;
  /// Returns whether the aggregate opted in to pipelining (A::pipelining).
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
  /// Encodes a state for a snapshot (name, version, msgpack bytes).
  virtual expected<encoded_value> encode_state(const std::any& state) const = 0;
  /// Decodes a snapshot's state stored as (type, version), upcasting older versions.
  virtual expected<std::any> decode_state(std::string_view type, std::uint32_t version,
                                          std::string_view bytes) const = 0;
  /// Returns the registry of the aggregate's event and state types.
  virtual const type_registry& registry() const noexcept = 0;
  /// Encodes a command for another node: its type_name and msgpack bytes (version 1). Fails
  /// with not_encodable (naming the C++ type) if the command type has no type_name, and with
  /// invalid_command if it is none of the aggregate's commands.
  virtual expected<encoded_value> encode_command(const std::any& command) const = 0;
  /// Decodes a command encoded by encode_command. Fails with invalid_command for a name that
  /// is no routable command of the aggregate, malformed_record or type_mismatch for bad bytes.
  virtual expected<std::any> decode_command(std::string_view name, std::string_view bytes) const = 0;
  /// Encodes the reply of the command named `command` (a reply is known by its command).
  virtual expected<std::string> encode_reply(std::string_view command, const std::any& reply) const = 0;
  /// Decodes the reply of the command named `command`.
  virtual expected<std::any> decode_reply(std::string_view command, std::string_view bytes) const = 0;
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

/// A command that can be routed to another node: it names itself with `type_name` and is
/// msgpack-convertible (MSGPACK_DEFINE_MAP; a struct without fields needs nothing).
template <class C>
concept routable_command = requires {
  { C::type_name } -> std::convertible_to<std::string_view>;
};

/// Whether T encodes as an empty msgpack map without a codec of its own (cafes::done, empty commands).
template <class T>
constexpr bool empty_value = std::is_empty_v<T> && !requires(const T& t, msgpack::packer<msgpack::sbuffer>& pk) {
  t.msgpack_pack(pk);
};

/// Returns the msgpack bytes of `v`.
template <class T>
std::string pack_value(const T& v) {
  msgpack::sbuffer buf;
  if constexpr (empty_value<T>)
    msgpack::packer<msgpack::sbuffer>{buf}.pack_map(0);
  else
    msgpack::pack(buf, v);
  return std::string{buf.data(), buf.size()};
}

/// Decodes msgpack bytes from another node into T. Bad bytes are a typed error, never a throw:
/// every container is bounded by the input's size.
template <class T>
expected<T> unpack_value(const std::string& what, std::string_view bytes) {
  try {
    const auto n = bytes.size();
    msgpack::unpack_limit limit(n, n, n, n, n, 64);
    std::size_t off = 0;
    auto oh = msgpack::unpack(bytes.data(), n, off, nullptr, nullptr, limit);
    if (off != n)
      return cafes::error{errc::malformed_record, what + ": bytes after the msgpack value"};
    T v{};
    if constexpr (empty_value<T>) {
      if (oh.get().type != msgpack::type::MAP)
        return cafes::error{errc::type_mismatch, what + ": not a msgpack map"};
    } else {
      oh.get().convert(v);
    }
    return v;
  } catch (const msgpack::type_error&) {
    return cafes::error{errc::type_mismatch, what + ": the value does not match the C++ type"};
  } catch (const msgpack::insufficient_bytes&) {
    return cafes::error{errc::malformed_record, what + ": truncated msgpack value"};
  } catch (const std::exception& ex) {
    return cafes::error{errc::malformed_record, what + ": " + ex.what()};
  }
}

/// Returns the readable name of C++ type T (for errors).
template <class T>
std::string cpp_name() {
  return readable_name(typeid(T));
}

/// Checks that the state or event T of aggregate A has a msgpack codec (T names it).
template <class A, class T>
struct codec_check {
  static_assert(has_msgpack_codec<T>::value, "cafes: an event or state type has no msgpack codec: add "
                                             "MSGPACK_DEFINE_MAP(its fields...) to it (T in codec_check<A, T> names it)");
  static constexpr bool value = has_msgpack_codec<T>::value;
};

template <class A, class V>
struct codecs_check;
template <class A, class... Es>
struct codecs_check<A, std::variant<Es...>> {
  static constexpr bool value = (codec_check<A, Es>::value && ...) && codec_check<A, typename A::state>::value;
};

/// Checks everything about aggregate A that cafes can check at compile time.
template <class A>
constexpr bool check_all() {
  if constexpr (check_aggregate<A>())
    return codecs_check<A, typename A::events>::value;
  else
    return false;
}

template <class A>
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
    [this]<class... Cs>(std::variant<Cs...>*) {
      (add_command<Cs>(), ...);
    }(static_cast<typename A::commands*>(nullptr));
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
      if (d.replies_from_state())
        out.reply_from = [d = std::move(d)](const std::any& next) -> expected<std::any> {
          auto r = d.reply_after(std::any_cast<const state&>(next));
          if (!r)
            return std::move(r).error();
          return std::any{std::move(*r)};
        };
      else
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

  expected<encoded_value> encode_command(const std::any& command) const override {
    std::optional<expected<encoded_value>> out;
    visit_any<typename A::commands>(command, [&]<class C>(const C& c) {
      if constexpr (routable_command<C>)
        out = encoded_value{std::string{C::type_name}, 1, pack_value(c)};
      else
        out = cafes::error{actor_errc::not_encodable,
                           "command " + cpp_name<C>() + " of aggregate '" + std::string{A::name} +
                             "' has no type_name and msgpack codec, so it cannot go to the node that owns its "
                             "partition (docs/getting-started.md)"};
    });
    if (!out)
      return cafes::error{actor_errc::invalid_command,
                          "the command is not a command of aggregate '" + std::string{A::name} + "'"};
    return std::move(*out);
  }

  expected<std::any> decode_command(std::string_view name, std::string_view bytes) const override {
    auto i = commands_.find(name);
    if (i == commands_.end())
      return cafes::error{actor_errc::invalid_command, "aggregate '" + std::string{A::name} +
                                                         "' has no routable command '" + std::string{name} + "'"};
    return i->second.decode(bytes);
  }

  expected<std::string> encode_reply(std::string_view command, const std::any& reply) const override {
    auto i = commands_.find(command);
    if (i == commands_.end())
      return cafes::error{actor_errc::invalid_command, "aggregate '" + std::string{A::name} +
                                                         "' has no routable command '" + std::string{command} + "'"};
    return i->second.encode_reply(reply);
  }

  expected<std::any> decode_reply(std::string_view command, std::string_view bytes) const override {
    auto i = commands_.find(command);
    if (i == commands_.end())
      return cafes::error{actor_errc::invalid_command, "aggregate '" + std::string{A::name} +
                                                         "' has no routable command '" + std::string{command} + "'"};
    return i->second.decode_reply(bytes);
  }

 private:
  struct command_codec {
    std::function<expected<std::any>(std::string_view)> decode;
    std::function<expected<std::string>(const std::any&)> encode_reply;
    std::function<expected<std::any>(std::string_view)> decode_reply;
  };

  template <class C>
  void add_command() {
    if constexpr (routable_command<C>) {
      using R = reply_t<A, C>;
      const std::string name{C::type_name};
      command_codec cc;
      cc.decode = [name](std::string_view bytes) -> expected<std::any> {
        auto c = unpack_value<C>("command '" + name + "'", bytes);
        if (!c)
          return std::move(c).error();
        return std::any{std::move(*c)};
      };
      cc.encode_reply = [name](const std::any& r) -> expected<std::string> {
        if (auto* v = std::any_cast<R>(&r))
          return pack_value(*v);
        return cafes::error{errc::type_mismatch, "the reply to '" + name + "' is not a " + cpp_name<R>()};
      };
      cc.decode_reply = [name](std::string_view bytes) -> expected<std::any> {
        auto r = unpack_value<R>("reply to '" + name + "'", bytes);
        if (!r)
          return std::move(r).error();
        return std::any{std::move(*r)};
      };
      if (name.empty())
        check(cafes::error{errc::invalid_argument, "command " + cpp_name<C>() + " has an empty type_name"});
      if (!commands_.emplace(name, std::move(cc)).second)
        check(cafes::error{errc::duplicate_type, "aggregate '" + std::string{A::name} + "' has two commands named '" +
                                                   name + "'"});
    }
  }

  std::map<std::string, command_codec, std::less<>> commands_;

  static void check(const expected<void>& r) {
    if (!r)
      throw bad_expected_access(r.error()); // a wrong aggregate definition: fail at start-up
  }
  type_registry registry_;
};

} // namespace detail

/// Returns the type-erased operations of aggregate type A. A mistake in A's definition fails
/// the build with a "cafes:" message (detail::check_all).
template <class A>
std::shared_ptr<const aggregate_ops> make_ops() {
  if constexpr (detail::check_all<A>())
    return std::make_shared<detail::ops_impl<A>>();
  else
    return nullptr;
}

} // namespace cafes
