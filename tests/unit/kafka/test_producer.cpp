// The producer wrapper against librdkafka's in-process mock cluster (positive path, read back
// with a real consumer) and against a closed port (failures surfaced to the caller).
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
// rdkafka_mock.h requires rdkafka.h first.
#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <string>

#include "core/kafka/producer.h"

namespace streamrec {
namespace {

struct consumed {
  std::string key;
  bool has_key = false;
  std::string value;
  int64_t timestamp_ms = 0;
  int32_t partition = 0;
};

std::vector<consumed> consume_all(const std::string& bootstrap, const std::string& topic, int partitions,
                                  size_t expected) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap.c_str(), errstr, sizeof errstr);
  rd_kafka_conf_set(conf, "group.id", "test-reader", errstr, sizeof errstr);
  rd_kafka_t* consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  EXPECT_NE(consumer, nullptr) << errstr;
  rd_kafka_poll_set_consumer(consumer);
  rd_kafka_topic_partition_list_t* assignment = rd_kafka_topic_partition_list_new(partitions);
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(assignment, topic.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  rd_kafka_assign(consumer, assignment);
  rd_kafka_topic_partition_list_destroy(assignment);

  std::vector<consumed> messages;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (messages.size() < expected && std::chrono::steady_clock::now() < deadline) {
    rd_kafka_message_t* message = rd_kafka_consumer_poll(consumer, 100);
    if (message == nullptr) continue;
    if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      consumed c;
      c.has_key = message->key != nullptr;
      if (c.has_key) c.key.assign(static_cast<const char*>(message->key), message->key_len);
      c.value.assign(static_cast<const char*>(message->payload), message->len);
      c.timestamp_ms = rd_kafka_message_timestamp(message, nullptr);
      c.partition = message->partition;
      messages.push_back(std::move(c));
    }
    rd_kafka_message_destroy(message);
  }
  rd_kafka_consumer_close(consumer);
  rd_kafka_destroy(consumer);
  return messages;
}

std::string closed_port_bootstrap() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  socklen_t length = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  ::close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(address.sin_port));
}

TEST(Producer, DeliversKeysValuesAndTimestampsToMockCluster) {
  producer p("", {{"test.mock.num.brokers", "1"}, {"linger.ms", "5"}});
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(p.handle());
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "clicks", 2, 1), RD_KAFKA_RESP_ERR_NO_ERROR);

  std::string value;
  for (int i = 0; i < 200; ++i) {
    value = "value-" + std::to_string(i);
    const std::string key = "user-" + std::to_string(i % 7);
    if (i == 0) {
      p.produce("clicks", std::nullopt, value, 0, 1719579715000);
    } else {
      p.produce("clicks", key, value, RD_KAFKA_PARTITION_UA, 1719579715000 + i);
    }
    value.assign("overwritten");  // the producer copied the payload
  }
  ASSERT_TRUE(p.flush(std::chrono::seconds(10)));
  EXPECT_EQ(p.delivered(), 200u);
  EXPECT_EQ(p.failed(), 0u);
  EXPECT_EQ(p.in_flight(), 0);
  EXPECT_FALSE(p.take_delivery_error().has_value());

  const auto messages = consume_all(rd_kafka_mock_cluster_bootstraps(cluster), "clicks", 2, 200);
  ASSERT_EQ(messages.size(), 200u);
  std::map<std::string, int32_t> partition_of_key;
  int unkeyed = 0;
  for (const consumed& m : messages) {
    ASSERT_EQ(m.value.rfind("value-", 0), 0u) << m.value;
    const int i = std::stoi(m.value.substr(6));
    EXPECT_EQ(m.timestamp_ms, 1719579715000 + i);
    if (!m.has_key) {
      ++unkeyed;
      EXPECT_EQ(i, 0);
      EXPECT_EQ(m.partition, 0);
      continue;
    }
    EXPECT_EQ(m.key, "user-" + std::to_string(i % 7));
    // Same key, same partition.
    const auto [it, inserted] = partition_of_key.emplace(m.key, m.partition);
    EXPECT_EQ(it->second, m.partition) << m.key;
  }
  EXPECT_EQ(unkeyed, 1);
}

// The sink worker acknowledges batches while later ones are in flight: each report carries the
// tag given to produce(), and the wakeup descriptor lets it sleep until reports arrive.
TEST(Producer, DeliveryReportsCarryTagsAndWakeTheCaller) {
  producer p("", {{"test.mock.num.brokers", "1"}, {"linger.ms", "1"}});
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(p.handle());
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "tagged", 3, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::map<uint64_t, int> acknowledged;
  p.set_delivery_listener([&acknowledged](uint64_t tag, rd_kafka_resp_err_t err) {
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) acknowledged[tag]++;
  });
  const int fd = p.wakeup_fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(p.wakeup_fd(), fd);
  for (int i = 0; i < 30; ++i) p.produce("tagged", "k" + std::to_string(i), "v", RD_KAFKA_PARTITION_UA, 0, 1 + i / 10);

  size_t reports = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (reports < 30 && std::chrono::steady_clock::now() < deadline) {
    pollfd wait{fd, POLLIN, 0};
    ASSERT_GE(::poll(&wait, 1, 100), 0);
    p.clear_wakeup();
    p.poll();
    reports = 0;
    for (const auto& [tag, count] : acknowledged) reports += static_cast<size_t>(count);
  }
  EXPECT_EQ(acknowledged, (std::map<uint64_t, int>{{1, 10}, {2, 10}, {3, 10}}));
}

TEST(Producer, BatchKeepsOrderAndRefusesOnlyTheMessageTooLarge) {
  producer p("", {{"test.mock.num.brokers", "1"}, {"linger.ms", "1"}, {"message.max.bytes", "1000"}});
  rd_kafka_mock_cluster_t* cluster = rd_kafka_handle_mock_cluster(p.handle());
  ASSERT_NE(cluster, nullptr);
  ASSERT_EQ(rd_kafka_mock_topic_create(cluster, "batched", 1, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  std::vector<std::string> values;
  for (int i = 0; i < 100; ++i) values.push_back(i == 42 ? std::string(5000, 'x') : "value-" + std::to_string(i));
  std::vector<producer::batch_message> batch;
  for (const std::string& v : values) batch.push_back({std::string_view("key"), v, 7});
  size_t tagged = 0;
  p.set_delivery_listener([&tagged](uint64_t tag, rd_kafka_resp_err_t err) {
    if (tag == 7 && err == RD_KAFKA_RESP_ERR_NO_ERROR) tagged++;
  });
  const std::vector<producer::refused_message> refused = p.produce_batch("batched", batch);
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].index, 42u);
  EXPECT_EQ(refused[0].err, RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
  ASSERT_TRUE(p.flush(std::chrono::seconds(10)));
  EXPECT_EQ(tagged, 99u);
  const auto messages = consume_all(rd_kafka_mock_cluster_bootstraps(cluster), "batched", 1, 99);
  ASSERT_EQ(messages.size(), 99u);
  for (size_t i = 0; i < messages.size(); ++i) {
    EXPECT_EQ(messages[i].key, "key");
    EXPECT_EQ(messages[i].value, "value-" + std::to_string(i < 42 ? i : i + 1));
  }
}

TEST(Producer, InvalidPropertyThrowsAtConstruction) {
  try {
    producer p("127.0.0.1:9092", {{"no.such.property", "1"}});
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_NE(std::string(e.what()).find("no.such.property"), std::string::npos) << e.what();
  }
  EXPECT_THROW(producer("127.0.0.1:9092", {{"acks", "banana"}}), kafka_error);
  // The value never shows (librdkafka's own message quotes it).
  try {
    producer p("127.0.0.1:9092", {{"compression.type", "s3cr3t-value"}});
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_NE(std::string(e.what()).find("compression.type"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos) << e.what();
  }
  try {
    producer p("127.0.0.1:9092", {{"security.protocol", "sasl_plaintext"}, {"sasl.mechanism", "NOPE-S3CR3T"}});
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_EQ(std::string(e.what()).find("S3CR3T"), std::string::npos) << e.what();
  }
}

TEST(Producer, DeliveryFailuresAreCountedAndReported) {
  // log_level 0: the expected connection failures need not fill the test log.
  producer p(closed_port_bootstrap(), {{"message.timeout.ms", "300"}, {"log_level", "0"}});
  p.produce("nowhere", std::string_view("k"), "v");
  p.produce("nowhere", std::nullopt, "v2");
  EXPECT_TRUE(p.flush(std::chrono::seconds(10)));  // nothing left in flight: both failed
  EXPECT_EQ(p.delivered(), 0u);
  EXPECT_EQ(p.failed(), 2u);
  const auto error = p.take_delivery_error();
  ASSERT_TRUE(error.has_value());
  EXPECT_NE(error->find("nowhere"), std::string::npos) << *error;
  EXPECT_NE(error->find("timed out"), std::string::npos) << *error;
  EXPECT_FALSE(p.take_delivery_error().has_value());  // reported once
}

TEST(Producer, FullQueueBlocksBrieflyThenThrows) {
  producer p(closed_port_bootstrap(),
             {{"queue.buffering.max.messages", "5"}, {"message.timeout.ms", "60000"}, {"log_level", "0"}});
  p.set_queue_full_timeout(std::chrono::milliseconds(300));
  p.set_close_timeout(std::chrono::milliseconds(100));
  for (int i = 0; i < 5; ++i) p.produce("t", std::nullopt, "x");
  const auto started = std::chrono::steady_clock::now();
  try {
    p.produce("t", std::nullopt, "one too many");
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_EQ(e.code(), RD_KAFKA_RESP_ERR__QUEUE_FULL);
    EXPECT_FALSE(e.fatal());
  }
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::seconds(3));
  // Destruction is bounded by the close timeout and purges the rest as failed.
}

}  // namespace
}  // namespace streamrec
