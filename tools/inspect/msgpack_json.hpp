// msgpack to JSON, generically (no application types), and the byte helpers the output needs.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cafes/persistence/errc.hpp"

namespace cafes::inspect {

/// The JSON type of the output. Its objects are sorted by key, so the output is deterministic.
using json = nlohmann::json;

/// Returns `bytes` in base64 (RFC 4648, with padding).
std::string base64(std::string_view bytes);

/// Returns true if `s` is valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
bool valid_utf8(std::string_view s);

/// Sets `j[name]` to `bytes` as a string if they are valid UTF-8, else `j[name + "_base64"]`
/// to their base64: JSON strings are text, and a record's key or header may be any bytes.
void put_bytes(json& j, const std::string& name, std::string_view bytes);

/// Converts one complete msgpack value (nothing may follow it) to JSON:
///
/// - nil, booleans, integers, floats, strings and arrays as themselves (a string that is not
///   UTF-8 as {"str_base64": …});
/// - maps as objects; a string key is the member's name, any other key is stringified (its
///   JSON text: the key 1 is "1");
/// - binary as {"base64": …}, an extension as {"ext": type, "base64": …}.
///
/// Fails with malformed_record if the bytes are not one msgpack value. The decoder's limits
/// follow the input's size, and nesting stops at 64 levels, so hostile input cannot make it
/// allocate much or recurse deeply.
expected<json> msgpack_to_json(std::string_view bytes);

/// Returns the code of `e` without its message, as error::to_string spells it
/// ("cafes:malformed_record").
std::string code_of(const error& e);

} // namespace cafes::inspect
