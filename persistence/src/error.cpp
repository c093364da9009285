// Formatting of cafes::error.
#include "cafes/core/error.hpp"

namespace cafes {

std::string error::to_string() const {
  std::string s = code.category().name();
  s += ':';
  s += code.message();
  if (!message.empty()) {
    s += ": ";
    s += message;
  }
  return s;
}

} // namespace cafes
