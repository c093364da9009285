// A correct aggregate for the compile-failure cases: each case breaks one thing of it.
#pragma once

#include <cafes/actors/testing.hpp>

struct added {
  static constexpr std::string_view type_name = "counter.added";
  std::int64_t n = 0;
  MSGPACK_DEFINE_MAP(n);
};
struct add {
  std::int64_t n = 0;
};
