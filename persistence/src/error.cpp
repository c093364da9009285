// Formatting of cafes::error.
#include "cafes/core/error.hpp"

#include <string_view>

namespace cafes {

std::string error::to_string() const {
  // The layers' categories keep distinct names on the wire ("cafes.actors", …); a user reads
  // one name for all of them.
  std::string_view cat = code.category().name();
  std::string s{cat.starts_with("cafes.") ? std::string_view{"cafes"} : cat};
  s += ':';
  s += code.message();
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

namespace detail {

named_category::named_category(const char* name, const char* codes) : name_(name) {
  std::string_view rest{codes};
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto one = rest.substr(0, comma);
    while (!one.empty() && (one.front() == ' ' || one.front() == '\n' || one.front() == '\t'))
      one.remove_prefix(1);
    while (!one.empty() && (one.back() == ' ' || one.back() == '\n' || one.back() == '\t'))
      one.remove_suffix(1);
    codes_.emplace_back(one);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
}

std::string named_category::message(int v) const {
  if (v == 0)
    return "ok";
  if (v > 0 && static_cast<std::size_t>(v) <= codes_.size())
    return codes_[static_cast<std::size_t>(v) - 1];
  return "unknown(" + std::to_string(v) + ")";
}

} // namespace detail

} // namespace cafes
