// The murmur2 partitioner agrees with the Java client and with librdkafka.
#include <random>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

#include "cafes/persistence/partitioner.hpp"

using namespace cafes;

TEST_CASE("murmur2 matches the Java client's Utils.murmur2", "[partitioner]") {
  // Values from Kafka's own UtilsTest and from librdkafka's Java-generated table.
  struct vec {
    const char* key;
    std::int32_t hash;
  };
  const vec vectors[] = {
    {"21", -973932308},
    {"foobar", -790332482},
    {"a-little-bit-long-string", -985981536},
    {"a-little-bit-longer-string", -1486304829},
    {"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
    {"abc", 479470107},
    {"1", -1993445489},
    {"12", 126087238},
    {"123", -267702483},
    {"1234", -1614185708},
    {"12345", -1188365604},
    {"kafka", static_cast<std::int32_t>(0xd067cf64u)},
  };
  for (auto& v : vectors) {
    INFO("key " << v.key);
    CHECK(murmur2(v.key) == v.hash);
  }
}

TEST_CASE("partition_for is toPositive(murmur2) mod partitions", "[partitioner]") {
  // toPositive(-973932308) = 1173551340; 1173551340 % 12 = 0 ; % 7 = 5 (computed by hand).
  CHECK(partition_for("21", 12) == partition_id{static_cast<std::int32_t>((static_cast<std::uint32_t>(-973932308) & 0x7fffffffu) % 12)});
  CHECK(partition_for("abc", 1) == partition_id{0});
  CHECK(partition_for("abc", 10) == partition_id{479470107 % 10});
  CHECK(partition_for("", 3).value() >= 0);
}

TEST_CASE("partition_for agrees with librdkafka's murmur2 partitioner on random keys", "[partitioner]") {
  char err[256];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof err);
  REQUIRE(rk);
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, "t", nullptr);
  std::mt19937 rng{42};
  std::uniform_int_distribution<int> len{0, 64}, byte{0, 255}, parts{1, 1000};
  for (int i = 0; i < 20000; ++i) {
    std::string key(static_cast<std::size_t>(len(rng)), '\0');
    for (auto& c : key)
      c = static_cast<char>(byte(rng));
    if (key.empty())
      key = "k"; // librdkafka treats an empty key like a null key (random partition)
    int n = parts(rng);
    auto want = rd_kafka_msg_partitioner_murmur2(rkt, key.data(), key.size(), n, nullptr, nullptr);
    REQUIRE(partition_for(key, n).value() == want);
  }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
}
