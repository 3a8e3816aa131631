// The key -> partition rule of the Java clients (murmur2), against Kafka's own test vectors and
// against librdkafka's murmur2 partitioner, which the sinks use.
#include <gtest/gtest.h>

#include <librdkafka/rdkafka.h>

#include <cstdint>
#include <string>

#include "core/kafka/partitioner.h"

namespace streamrec {
namespace {

TEST(KafkaPartitioner, Murmur2MatchesKafkasTestVectors) {
  // org.apache.kafka.common.utils.UtilsTest#testMurmur2 (signed 32-bit results).
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("21")), -973932308);
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("foobar")), -790332482);
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("a-little-bit-long-string")), -985981536);
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("a-little-bit-longer-string")), -1486304829);
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")), -58897971);
  EXPECT_EQ(static_cast<std::int32_t>(kafka_murmur2("abc")), 479470107);
}

TEST(KafkaPartitioner, PartitionsMatchLibrdkafkasMurmur2Partitioner) {
  for (int count : {1, 2, 3, 6, 7, 64, 1000}) {
    for (int i = 0; i < 500; i++) {
      const std::string key = (i % 3 == 0   ? "user-"
                               : i % 3 == 1 ? "item-"
                                            : "") +
                              std::to_string(i * 7919) + std::string(static_cast<std::size_t>(i % 5), '\xe9');
      const std::int32_t expected =
          rd_kafka_msg_partitioner_murmur2(nullptr, key.data(), key.size(), count, nullptr, nullptr);
      ASSERT_EQ(kafka_key_partition(key, count), expected) << key << " among " << count;
      ASSERT_GE(expected, 0);
      ASSERT_LT(expected, count);
    }
  }
  EXPECT_EQ(kafka_key_partition("", 6), rd_kafka_msg_partitioner_murmur2(nullptr, "", 0, 6, nullptr, nullptr));
}

}  // namespace
}  // namespace streamrec
