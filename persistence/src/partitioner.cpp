// Kafka's murmur2 partitioner, bit for bit as the Java client computes it.
#include "cafes/persistence/partitioner.hpp"

namespace cafes {

std::int32_t murmur2(std::string_view key) noexcept {
  // Unsigned arithmetic gives the same bits as Java's wrapping int arithmetic.
  constexpr std::uint32_t seed = 0x9747b28c;
  constexpr std::uint32_t m = 0x5bd1e995;
  constexpr int r = 24;
  auto* data = reinterpret_cast<const unsigned char*>(key.data());
  const auto len = static_cast<std::uint32_t>(key.size());
  std::uint32_t h = seed ^ len;
  const std::uint32_t len4 = len / 4;
  for (std::uint32_t i = 0; i < len4; ++i) {
    const auto* p = data + i * 4;
    std::uint32_t k = std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) |
                      (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const auto* tail = data + (len & ~3u);
  switch (len % 4) {
    case 3: h ^= std::uint32_t{tail[2]} << 16; [[fallthrough]];
    case 2: h ^= std::uint32_t{tail[1]} << 8; [[fallthrough]];
    case 1:
      h ^= std::uint32_t{tail[0]};
      h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return static_cast<std::int32_t>(h);
}

partition_id partition_for(std::string_view key, std::int32_t partitions) noexcept {
  auto positive = static_cast<std::uint32_t>(murmur2(key)) & 0x7fffffffu;
  return partition_id{static_cast<std::int32_t>(positive % static_cast<std::uint32_t>(partitions))};
}

} // namespace cafes
