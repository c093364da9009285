// Small parsing helpers of the persistence layer's codecs (private).
#pragma once

#include <charconv>
#include <string_view>

namespace cafes::detail {

/// Parses a whole decimal integer; false on anything else (a sign only for signed types).
template <class Int>
bool parse_int(std::string_view s, Int& out) {
  if (s.empty())
    return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && p == s.data() + s.size();
}

} // namespace cafes::detail
