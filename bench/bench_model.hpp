// The aggregates the benchmarks drive: a counter with ~100-byte events, plain and pipelined.
#pragma once

#include <string>
#include <variant>

#include <msgpack.hpp>

#include "cafes/actors/aggregate.hpp"

namespace bench {

struct bumped {
  static constexpr std::string_view type_name = "bench.bumped";
  std::string data; // ~90 bytes: the event is about 100 bytes of msgpack
  MSGPACK_DEFINE_MAP(data);
};

// Commands and replies have codecs, so that a node can forward them (the routed benchmark).
struct bump {
  static constexpr std::string_view type_name = "bench.bump";
  std::string data;
  MSGPACK_DEFINE_MAP(data);
};

/// Reads the counter: activates the aggregate without writing an event.
struct touch {
  static constexpr std::string_view type_name = "bench.touch";
};

template <bool Pipelined>
struct basic_counter {
  static constexpr std::string_view name = Pipelined ? "pcounter" : "counter";
  static constexpr bool pipelining = Pipelined;
  struct state {
    std::uint64_t n = 0;
    MSGPACK_DEFINE_MAP(n);
  };
  using commands = std::variant<bump, touch>;
  using events = std::variant<bumped>;
  static cafes::decision<std::uint64_t> handle(const state& s, const bump& c) {
    return cafes::emit(bumped{c.data}).reply(s.n + 1);
  }
  static cafes::decision<std::uint64_t> handle(const state& s, const touch&) { return cafes::reply(s.n); }
  static void apply(state& s, const bumped&) { ++s.n; }
};

using counter = basic_counter<false>;
using pcounter = basic_counter<true>;

inline std::string payload() { return std::string(90, 'x'); }

} // namespace bench
