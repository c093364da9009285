// msgpack to JSON, generically (no application types), and the byte helpers the output needs.
#include "msgpack_json.hpp"

#include <msgpack.hpp>

namespace cafes::inspect {

std::string base64(std::string_view bytes) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const auto n = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                   static_cast<unsigned char>(bytes[i + 2]);
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += alphabet[(n >> 6) & 63];
    out += alphabet[n & 63];
  }
  if (const auto rest = bytes.size() - i; rest > 0) {
    auto n = static_cast<unsigned char>(bytes[i]) << 16;
    if (rest == 2)
      n |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += alphabet[(n >> 18) & 63];
    out += alphabet[(n >> 12) & 63];
    out += rest == 2 ? alphabet[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size())
      return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    static constexpr std::uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += len;
  }
  return true;
}

void put_bytes(json& j, const std::string& name, std::string_view bytes) {
  if (valid_utf8(bytes))
    j[name] = std::string{bytes};
  else
    j[name + "_base64"] = base64(bytes);
}

namespace {

json to_json(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return nullptr;
    case msgpack::type::BOOLEAN:
      return o.via.boolean;
    case msgpack::type::POSITIVE_INTEGER:
      return o.via.u64;
    case msgpack::type::NEGATIVE_INTEGER:
      return o.via.i64;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return o.via.f64; // NaN and infinities print as null (JSON has neither)
    case msgpack::type::STR: {
      const std::string_view s{o.via.str.ptr, o.via.str.size};
      if (valid_utf8(s))
        return std::string{s};
      return json{{"str_base64", base64(s)}};
    }
    case msgpack::type::BIN:
      return json{{"base64", base64({o.via.bin.ptr, o.via.bin.size})}};
    case msgpack::type::EXT:
      return json{{"ext", o.via.ext.type()}, {"base64", base64({o.via.ext.data(), o.via.ext.size})}};
    case msgpack::type::ARRAY: {
      auto a = json::array();
      for (std::uint32_t i = 0; i < o.via.array.size; ++i)
        a.push_back(to_json(o.via.array.ptr[i]));
      return a;
    }
    case msgpack::type::MAP: {
      auto m = json::object();
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        const auto& kv = o.via.map.ptr[i];
        std::string name;
        if (kv.key.type == msgpack::type::STR && valid_utf8({kv.key.via.str.ptr, kv.key.via.str.size}))
          name.assign(kv.key.via.str.ptr, kv.key.via.str.size);
        else
          name = to_json(kv.key).dump();
        m[name] = to_json(kv.val); // a repeated key: the last one wins
      }
      return m;
    }
  }
  return nullptr;
}

} // namespace

expected<json> msgpack_to_json(std::string_view bytes) {
  if (bytes.empty())
    return error{errc::malformed_record, "no msgpack value: the bytes are empty"};
  try {
    const auto n = bytes.size();
    msgpack::unpack_limit limit(n, n, n, n, n, 64);
    std::size_t used = 0;
    auto oh = msgpack::unpack(bytes.data(), n, used, nullptr, nullptr, limit);
    if (used != n)
      return error{errc::malformed_record,
                   std::to_string(n - used) + " bytes follow the msgpack value of " + std::to_string(used) + " bytes"};
    return to_json(oh.get());
  } catch (const std::exception& e) {
    return error{errc::malformed_record, std::string{"not msgpack: "} + e.what()};
  }
}

std::string code_of(const error& e) { return error{e.code}.to_string(); }

} // namespace cafes::inspect
