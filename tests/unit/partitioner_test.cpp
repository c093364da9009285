// The murmur2 partitioner agrees with the Java client and with librdkafka.
#include <random>

#include <catch2/catch.hpp>
#include <librdkafka/rdkafka.h>

#include "cafes/persistence/logger.hpp"
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
  // Worked out once from the hashes above (toPositive clears the sign bit) and written down as
  // literals: "21" -> 1173551340, "abc" -> 479470107, "foobar" -> 1357151166, "" -> 275646681
  // (the Java client's murmur2 of an empty array).
  struct vec {
    const char* key;
    std::int32_t partitions;
    std::int32_t want;
  };
  const vec vectors[] = {
    {"21", 12, 0}, {"21", 7, 3}, {"abc", 1, 0}, {"abc", 10, 7}, {"abc", 12, 3},
    {"foobar", 12, 6}, {"foobar", 7, 0}, {"", 3, 0}, {"", 12, 9},
  };
  for (auto& v : vectors) {
    INFO("key '" << v.key << "', " << v.partitions << " partitions");
    CHECK(partition_for(v.key, v.partitions) == partition_id{v.want});
  }
}

TEST_CASE("partition_for agrees with librdkafka's murmur2 partitioner on random keys", "[partitioner]") {
  char err[256];
  auto* conf = rd_kafka_conf_new();
  cafes::route_kafka_logs(conf); // its notice of no bootstrap servers goes through cafes.kafka
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
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
