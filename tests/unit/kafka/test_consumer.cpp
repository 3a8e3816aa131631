// The source workers' consumer against librdkafka's in-process mock cluster: stored offsets,
// start positions, rewind, partitions that appear later, consumer groups, broker outages and
// exceptions from the offset lookup.
//
// Facts about the 2.0.2 mock these tests rely on: the first join of a group waits 3 s
// (group.initial.rebalance.delay), a join into a running group waits session.timeout.ms - 1 s,
// ListOffsets by timestamp always answers -1 ("no such message"), Metadata auto-creates any
// topic asked about, and partitions cannot be added to an existing topic (no CreatePartitions).
#include <librdkafka/rdkafka.h>
// rdkafka_mock.h requires rdkafka.h first.
#include <librdkafka/rdkafka_mock.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/kafka/consumer.h"
#include "core/kafka/producer.h"

namespace streamrec {
namespace {

using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

// A mock cluster of its own per test, so topics, groups and broker states never leak.
class mock_kafka {
 public:
  explicit mock_kafka(int brokers = 1) {
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (host_ == nullptr) throw std::runtime_error(errstr);
    cluster_ = rd_kafka_mock_cluster_new(host_, brokers);
    if (cluster_ == nullptr) throw std::runtime_error("cannot create mock cluster");
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  }
  ~mock_kafka() {
    writer_.reset();
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  mock_kafka(const mock_kafka&) = delete;
  mock_kafka& operator=(const mock_kafka&) = delete;

  const std::string& bootstraps() const { return bootstraps_; }
  rd_kafka_mock_cluster_t* cluster() { return cluster_; }

  void create_topic(const std::string& topic, int partitions) {
    ASSERT_EQ(rd_kafka_mock_topic_create(cluster_, topic.c_str(), partitions, 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  }

  // Values are "p<partition>-<index>"; on a fresh partition the index is the offset.
  void produce(const std::string& topic, int32_t partition, int first, int count, int64_t timestamp_ms = 0) {
    if (!writer_) writer_ = std::make_unique<producer>(bootstraps_, producer::properties{{"linger.ms", "2"}});
    for (int i = first; i < first + count; ++i) {
      writer_->produce(topic, std::nullopt, "p" + std::to_string(partition) + "-" + std::to_string(i), partition,
                       timestamp_ms);
    }
  }
  void flush() {
    ASSERT_TRUE(writer_->flush(std::chrono::seconds(10)));
    ASSERT_EQ(writer_->failed(), 0u);
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstraps_;
  std::unique_ptr<producer> writer_;
};

// One cluster for the tests that do not break it: destroying a mock cluster can take a second
// (its thread notices only at its next poll timeout).
mock_kafka& shared_kafka() {
  static mock_kafka kafka;
  return kafka;
}

struct seen {
  int32_t partition;
  int64_t offset;
  std::string value;
};

// Stands in for streamrec.source_offsets: what the lookup answers, and what it was asked.
struct offset_store {
  std::map<int32_t, int64_t> offsets;
  std::vector<std::vector<int32_t>> calls;
  int failures_left = 0;

  consumer::offset_lookup lookup() {
    return [this](const std::vector<int32_t>& partitions) {
      calls.push_back(partitions);
      if (failures_left > 0) {
        --failures_left;
        throw std::runtime_error("database unavailable");
      }
      std::map<int32_t, int64_t> found;
      for (int32_t p : partitions) {
        if (offsets.count(p) != 0) found[p] = offsets[p];
      }
      return found;
    };
  }
  // What a source worker does after its transaction committed.
  void commit(const consumer_batch& batch) {
    for (const auto& [p, next] : batch.next_offsets()) offsets[p] = next;
  }
};

consumer_config config_for(const mock_kafka& kafka, const std::string& topic) {
  consumer_config config;
  config.brokers = kafka.bootstraps();
  config.topic = topic;
  // The mock answers an empty fetch only after fetch.wait.max.ms: keep tests snappy.
  config.properties = {{"fetch.wait.max.ms", "20"}};
  return config;
}

void append(const consumer_batch& batch, std::vector<seen>& out) {
  for (size_t i = 0; i < batch.size(); ++i) {
    const message_view m = batch.view(i);
    out.push_back({m.partition, m.offset, m.payload ? std::string(*m.payload) : std::string("<null>")});
  }
}

// Polls until `expected` messages arrived (then a little longer, to catch extras) or the
// deadline passed.
std::vector<seen> collect(consumer& c, size_t expected, offset_store* store = nullptr,
                          milliseconds timeout = milliseconds(8000)) {
  std::vector<seen> out;
  const auto deadline = clock_type::now() + timeout;
  while (out.size() < expected && clock_type::now() < deadline) {
    consumer_batch batch = c.poll_batch(1000, milliseconds(50));
    append(batch, out);
    if (store != nullptr) store->commit(batch);
  }
  consumer_batch extra = c.poll_batch(1000, milliseconds(150));
  append(extra, out);
  if (store != nullptr) store->commit(extra);
  return out;
}

// Every partition in `ranges` holds exactly offsets [first, end), each seen once and in order,
// with the value produced for it; nothing else was seen.
void expect_exactly(const std::vector<seen>& messages, const std::map<int32_t, std::pair<int64_t, int64_t>>& ranges) {
  std::map<int32_t, std::vector<const seen*>> by_partition;
  for (const seen& m : messages) by_partition[m.partition].push_back(&m);
  for (const auto& [p, range] : ranges) {
    const auto& got = by_partition[p];
    ASSERT_EQ(static_cast<int64_t>(got.size()), range.second - range.first) << "partition " << p;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t offset = range.first + static_cast<int64_t>(i);
      ASSERT_EQ(got[i]->offset, offset) << "partition " << p;
      ASSERT_EQ(got[i]->value, "p" + std::to_string(p) + "-" + std::to_string(offset));
    }
  }
  for (const auto& [p, got] : by_partition) {
    EXPECT_TRUE(ranges.count(p) != 0 || got.empty()) << "unexpected messages from partition " << p;
  }
}

template <typename Predicate>
bool poll_until(consumer& c, Predicate done, milliseconds timeout, std::vector<seen>* out = nullptr) {
  const auto deadline = clock_type::now() + timeout;
  while (!done()) {
    if (clock_type::now() >= deadline) return false;
    consumer_batch batch = c.poll_batch(100, milliseconds(50));
    if (out != nullptr) append(batch, *out);
  }
  return true;
}

TEST(ConsumerStartPosition, ParsesWordsTimestampsAndMilliseconds) {
  EXPECT_EQ(start_position("earliest").where, start_position::kind::earliest);
  EXPECT_EQ(start_position(" Latest ").where, start_position::kind::latest);
  const start_position millis("1719579715000");
  EXPECT_EQ(millis.where, start_position::kind::timestamp);
  EXPECT_EQ(millis.timestamp_ms, 1719579715000);
  EXPECT_EQ(start_position("2024-06-28 13:01:55.250+02").timestamp_ms, 1719572515250);
  EXPECT_EQ(start_position("2024-06-28T11:01:55Z").timestamp_ms, 1719572515000);
  EXPECT_THROW(start_position("yesterday"), std::invalid_argument);
  EXPECT_THROW(start_position(""), std::invalid_argument);
}

TEST(Consumer, InvalidPropertyThrowsLibrdkafkasMessage) {
  consumer_config config;
  config.brokers = "127.0.0.1:9";
  config.topic = "t";
  config.properties = {{"no.such.property", "1"}};
  try {
    consumer c(config, nullptr);
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_NE(std::string(e.what()).find("no.such.property"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no such property"), std::string::npos) << e.what();
  }
  // The value never shows, secret-looking name or not (librdkafka's own message quotes it).
  config.properties = {{"security.protocol", "carrier-pigeon-s3cr3t"}};
  try {
    consumer c(config, nullptr);
    FAIL() << "expected kafka_error";
  } catch (const kafka_error& e) {
    EXPECT_NE(std::string(e.what()).find("security.protocol"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("s3cr3t"), std::string::npos) << e.what();
  }
}

TEST(Consumer, ConsumesAllPartitionsFromStoredOffsetsAndTracksLag) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("clicks", 3);
  for (int32_t p = 0; p < 3; ++p) kafka.produce("clicks", p, 0, 100);
  kafka.flush();

  offset_store store;
  store.offsets = {{0, 40}, {2, 0}};  // partition 1 was never stored: the start position applies
  consumer c(config_for(kafka, "clicks"), store.lookup());
  EXPECT_EQ(c.state(), consumer_state::starting);
  const auto messages = collect(c, 260);
  expect_exactly(messages, {{0, {40, 100}}, {1, {0, 100}}, {2, {0, 100}}});
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0], (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(c.owned_partitions(), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(c.state(), consumer_state::running) << c.state_message();
  EXPECT_EQ(c.take_started_offsets(), (std::map<int32_t, int64_t>{{1, 0}}));
  EXPECT_EQ(c.total_lag(), 0);

  // Lag comes from the watermarks of librdkafka's own fetches: no need to hand messages out.
  kafka.produce("clicks", 1, 100, 10);
  kafka.flush();
  const auto deadline = clock_type::now() + std::chrono::seconds(5);
  while (c.total_lag() != 10 && clock_type::now() < deadline) std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(c.lag(), (std::map<int32_t, int64_t>{{0, 0}, {1, 10}, {2, 0}}));
  expect_exactly(collect(c, 10), {{1, {100, 110}}});
  EXPECT_EQ(c.total_lag(), 0);
}

TEST(Consumer, BatchesAreBoundedOwningAndMovable) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("bounded", 1);
  kafka.produce("bounded", 0, 0, 30);
  kafka.flush();
  consumer c(config_for(kafka, "bounded"), nullptr);
  consumer_batch batch;
  const auto deadline = clock_type::now() + std::chrono::seconds(5);
  while (batch.empty() && clock_type::now() < deadline) batch = c.poll_batch(7, milliseconds(100));
  ASSERT_EQ(batch.size(), 7u);  // a full batch returns at once
  consumer_batch moved = std::move(batch);
  EXPECT_TRUE(batch.empty());  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  ASSERT_EQ(moved.size(), 7u);
  const message_view first = moved.view(0);
  EXPECT_EQ(first.topic, "bounded");
  EXPECT_FALSE(first.key.has_value());
  EXPECT_GT(first.timestamp_ms, 0);
  EXPECT_EQ(moved.first_offsets(), (std::map<int32_t, int64_t>{{0, 0}}));
  EXPECT_EQ(moved.next_offsets(), (std::map<int32_t, int64_t>{{0, 7}}));

  // Waiting is bounded by max_wait when fewer messages exist.
  const auto started = clock_type::now();
  std::vector<seen> rest;
  append(c.poll_batch(1000, milliseconds(300)), rest);
  EXPECT_EQ(rest.size(), 23u);
  EXPECT_LT(clock_type::now() - started, milliseconds(2000));
}

TEST(Consumer, LatestAndTimestampStartSkipOlderMessages) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("events", 2);
  // Stamped in 2020, i.e. before the timestamp start below.
  for (int32_t p = 0; p < 2; ++p) kafka.produce("events", p, 0, 20, 1600000000000);
  kafka.flush();

  for (const char* start : {"latest", "2023-01-01T00:00:00Z"}) {
    SCOPED_TRACE(start);
    consumer_config config = config_for(kafka, "events");
    config.start = start;
    consumer c(config, nullptr);
    EXPECT_TRUE(collect(c, 0).empty());
    EXPECT_EQ(c.take_started_offsets(), (std::map<int32_t, int64_t>{{0, 20}, {1, 20}}));
  }
  // Newer messages after those starting points are delivered.
  consumer_config config = config_for(kafka, "events");
  config.start = start_position::latest();
  consumer c(config, nullptr);
  EXPECT_TRUE(collect(c, 0).empty());
  for (int32_t p = 0; p < 2; ++p) kafka.produce("events", p, 20, 5);
  kafka.flush();
  expect_exactly(collect(c, 10), {{0, {20, 25}}, {1, {20, 25}}});
}

TEST(Consumer, RewindDeliversARolledBackBatchAgain) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("orders", 2);
  for (int32_t p = 0; p < 2; ++p) kafka.produce("orders", p, 0, 100);
  kafka.flush();
  consumer c(config_for(kafka, "orders"), nullptr);

  auto next_batch = [&c](size_t max) {
    consumer_batch batch;
    const auto deadline = clock_type::now() + std::chrono::seconds(5);
    while (batch.empty() && clock_type::now() < deadline) batch = c.poll_batch(max, milliseconds(50));
    return batch;
  };
  std::vector<seen> delivered;
  append(next_batch(30), delivered);  // committed
  consumer_batch rolled_back = next_batch(50);
  ASSERT_FALSE(rolled_back.empty());
  std::vector<seen> lost;
  append(rolled_back, lost);
  const auto restart = rolled_back.first_offsets();
  rolled_back.clear();
  c.rewind(restart);

  const auto rest = collect(c, 200 - delivered.size());
  for (const seen& m : lost) {
    EXPECT_TRUE(std::any_of(rest.begin(), rest.end(),
                            [&m](const seen& r) { return r.partition == m.partition && r.offset == m.offset; }))
        << "partition " << m.partition << " offset " << m.offset << " was not delivered again";
  }
  delivered.insert(delivered.end(), rest.begin(), rest.end());
  expect_exactly(delivered, {{0, {0, 100}}, {1, {0, 100}}});
  EXPECT_EQ(c.total_lag(), 0);
  c.rewind({{0, 95}, {7, 0}});  // partitions not owned are skipped
  expect_exactly(collect(c, 5), {{0, {95, 100}}});
}

TEST(Consumer, LookupExceptionIsRethrownAndRetried) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("retried", 2);
  for (int32_t p = 0; p < 2; ++p) kafka.produce("retried", p, 0, 10);
  kafka.flush();
  offset_store store;
  store.failures_left = 1;
  store.offsets = {{1, 4}};
  consumer c(config_for(kafka, "retried"), store.lookup());
  try {
    c.poll_batch(100, milliseconds(10));
    FAIL() << "expected the lookup's exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "database unavailable");
  }
  EXPECT_TRUE(c.owned_partitions().empty());
  expect_exactly(collect(c, 16), {{0, {0, 10}}, {1, {4, 10}}});
  EXPECT_EQ(store.calls.size(), 2u);
}

// The mock cannot add partitions to a topic, so "partitions appear later" is tested from zero:
// a topic reported missing, then present with its four partitions. (The 2.0.2 mock answers
// Metadata only up to v2, which has no AllowAutoTopicCreation flag, so it creates every topic a
// client asks about; a topic error is how it can look absent.)
TEST(Consumer, MissingTopicIsReportedAndItsPartitionsAreAssignedWhenItAppears) {
  mock_kafka& kafka = shared_kafka();
  rd_kafka_mock_topic_set_error(kafka.cluster(), "later", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
  offset_store store;
  consumer_config config = config_for(kafka, "later");
  config.start = start_position::latest();  // applies to partitions present at the first look only
  consumer c(config, store.lookup());
  ASSERT_TRUE(poll_until(
      c, [&] { return c.state() == consumer_state::topic_missing; }, milliseconds(5000)))
      << consumer_state_name(c.state()) << ": " << c.state_message();
  EXPECT_NE(c.state_message().find("later"), std::string::npos) << c.state_message();
  EXPECT_TRUE(c.owned_partitions().empty());

  rd_kafka_mock_topic_set_error(kafka.cluster(), "later", RD_KAFKA_RESP_ERR_NO_ERROR);
  for (int32_t p = 0; p < 2; ++p) kafka.produce("later", p, 0, 10);
  kafka.flush();
  // New partitions start at their beginning: everything in them was produced after the start.
  expect_exactly(collect(c, 20), {{0, {0, 10}}, {1, {0, 10}}});
  EXPECT_EQ(c.owned_partitions(), (std::vector<int32_t>{0, 1, 2, 3}));
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0], (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(c.state(), consumer_state::running);
  EXPECT_TRUE(c.refresh_partitions().empty());  // nothing new
}

TEST(Consumer, BrokerDownIsReportedAndConsumptionResumesExactly) {
  mock_kafka kafka;
  kafka.create_topic("payments", 2);
  for (int32_t p = 0; p < 2; ++p) kafka.produce("payments", p, 0, 50);
  kafka.flush();
  consumer_config config = config_for(kafka, "payments");
  config.properties["log_level"] = "0";  // the outage below is expected
  config.close_timeout = milliseconds(1000);
  auto c = std::make_unique<consumer>(config, nullptr);
  std::vector<seen> delivered = collect(*c, 100);
  ASSERT_EQ(delivered.size(), 100u);

  ASSERT_EQ(rd_kafka_mock_broker_set_down(kafka.cluster(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(poll_until(
      *c, [&] { return c->state() == consumer_state::broker_down; }, milliseconds(8000), &delivered))
      << consumer_state_name(c->state());
  EXPECT_FALSE(c->state_message().empty());

  // Recovery shows before any message flows (librdkafka's statistics see the broker up) ...
  ASSERT_EQ(rd_kafka_mock_broker_set_up(kafka.cluster(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_TRUE(poll_until(
      *c, [&] { return c->state() == consumer_state::running; }, milliseconds(5000), &delivered))
      << consumer_state_name(c->state()) << ": " << c->state_message();
  EXPECT_TRUE(c->state_message().empty());
  // ... and consumption continues exactly where it stopped.
  for (int32_t p = 0; p < 2; ++p) kafka.produce("payments", p, 50, 25);
  const auto rest = collect(*c, 150 - delivered.size());
  delivered.insert(delivered.end(), rest.begin(), rest.end());
  kafka.flush();
  expect_exactly(delivered, {{0, {0, 75}}, {1, {0, 75}}});
  EXPECT_EQ(c->state(), consumer_state::running) << c->state_message();

  // Closing while the broker is gone is bounded.
  ASSERT_EQ(rd_kafka_mock_broker_set_down(kafka.cluster(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  const auto started = clock_type::now();
  c.reset();
  EXPECT_LT(clock_type::now() - started, milliseconds(3000));
}

TEST(ConsumerGroup, AssignmentAsksTheLookupThenTheGroupAndRethrowsLookupFailures) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("views", 2);
  for (int32_t p = 0; p < 2; ++p) kafka.produce("views", p, 0, 50);
  kafka.flush();
  {
    // Another database of the group left committed offsets in Kafka (a group the mock has not
    // seen joined accepts commits without a member).
    consumer_config config = config_for(kafka, "views");
    config.properties["group.id"] = "views-group";
    consumer previous(config, nullptr);
    ASSERT_TRUE(poll_until(
        previous, [&] { return previous.owned_partitions().size() == 2; }, milliseconds(5000)));
    ASSERT_TRUE(previous.commit_to_kafka({{0, 30}, {1, 5}}));
    const auto deadline = clock_type::now() + std::chrono::seconds(5);
    rd_kafka_topic_partition_list_t* committed = rd_kafka_topic_partition_list_new(2);
    rd_kafka_topic_partition_list_add(committed, "views", 0);
    rd_kafka_topic_partition_list_add(committed, "views", 1);
    while (clock_type::now() < deadline) {
      previous.poll_batch(0, milliseconds(0));
      ASSERT_EQ(rd_kafka_committed(previous.handle(), committed, 2000), RD_KAFKA_RESP_ERR_NO_ERROR);
      if (committed->elems[1].offset == 5) break;
      std::this_thread::sleep_for(milliseconds(20));
    }
    EXPECT_EQ(committed->elems[0].offset, 30);
    EXPECT_EQ(committed->elems[1].offset, 5);
    rd_kafka_topic_partition_list_destroy(committed);
  }

  offset_store store;
  store.failures_left = 1;
  store.offsets = {{0, 10}};  // PostgreSQL wins over the group's 30; partition 1 takes the group's 5
  consumer_config config = config_for(kafka, "views");
  config.group_id = "views-group";
  // Incremental assignment here; the rebalance test below runs the default (eager) protocol.
  config.properties["partition.assignment.strategy"] = "cooperative-sticky";
  consumer c(config, store.lookup());
  bool thrown = false;
  const auto deadline = clock_type::now() + std::chrono::seconds(10);
  while (!thrown && clock_type::now() < deadline) {
    try {
      EXPECT_TRUE(c.poll_batch(100, milliseconds(50)).empty());
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "database unavailable");
      thrown = true;
    }
  }
  ASSERT_TRUE(thrown) << "the rebalance never asked the lookup";
  ASSERT_EQ(store.calls.size(), 1u);
  EXPECT_EQ(store.calls[0], (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(c.owned_partitions().empty());

  expect_exactly(collect(c, 85, &store), {{0, {10, 50}}, {1, {5, 50}}});
  EXPECT_EQ(store.calls.size(), 2u);
  EXPECT_EQ(c.owned_partitions(), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(c.take_started_offsets(), (std::map<int32_t, int64_t>{{1, 5}}));
  EXPECT_EQ(c.state(), consumer_state::running) << c.state_message();
  EXPECT_TRUE(c.commit_to_kafka(store.offsets));
}

TEST(ConsumerGroup, RebalanceRevokesAndTheNewOwnerContinuesFromTheStore) {
  mock_kafka& kafka = shared_kafka();
  kafka.create_topic("carts", 4);
  for (int32_t p = 0; p < 4; ++p) kafka.produce("carts", p, 0, 200);
  kafka.flush();
  offset_store store;  // one store shared by both members, as if they wrote one database
  consumer_config config = config_for(kafka, "carts");
  config.group_id = "carts-group";
  // When a member joins a running group the mock waits session.timeout.ms - 1 s for the others
  // to rejoin; the session must still outlast the 3 s first join.
  config.properties["session.timeout.ms"] = "3500";
  config.properties["heartbeat.interval.ms"] = "200";
  std::vector<seen> delivered;
  auto poll_into = [&](consumer& c) {
    consumer_batch batch = c.poll_batch(5, milliseconds(20));
    append(batch, delivered);
    store.commit(batch);
    // Only partitions the member owns may be in its batch.
    for (const auto& [p, next] : batch.next_offsets()) {
      EXPECT_TRUE(std::binary_search(c.owned_partitions().begin(), c.owned_partitions().end(), p));
    }
  };

  consumer a(config, store.lookup());
  const auto deadline = clock_type::now() + std::chrono::seconds(30);
  while (delivered.size() < 40 && clock_type::now() < deadline) poll_into(a);
  ASSERT_EQ(a.owned_partitions(), (std::vector<int32_t>{0, 1, 2, 3}));
  const uint64_t generation = a.assignment_generation();

  // Each phase has its own deadline: on a loaded machine (the sanitizer build beside a test
  // cluster) the first join alone can take most of ten seconds, and the rebalance waits for the
  // session timeout on top.
  consumer b(config, store.lookup());
  const auto rebalance_deadline = clock_type::now() + std::chrono::seconds(30);
  while (clock_type::now() < rebalance_deadline &&
         (a.owned_partitions().size() != 2 || b.owned_partitions().size() != 2)) {
    poll_into(a);
    poll_into(b);
  }
  ASSERT_EQ(a.owned_partitions().size(), 2u);
  ASSERT_EQ(b.owned_partitions().size(), 2u);
  EXPECT_GT(a.assignment_generation(), generation);
  EXPECT_FALSE(a.take_revoked_partitions().empty());
  EXPECT_TRUE(a.take_revoked_partitions().empty());  // reported once

  const auto drain_deadline = clock_type::now() + std::chrono::seconds(30);
  while (delivered.size() < 800 && clock_type::now() < drain_deadline) {
    poll_into(a);
    poll_into(b);
  }
  // Sorted per partition, every message exactly once across both members.
  std::stable_sort(delivered.begin(), delivered.end(), [](const seen& x, const seen& y) {
    return std::tie(x.partition, x.offset) < std::tie(y.partition, y.offset);
  });
  expect_exactly(delivered, {{0, {0, 200}}, {1, {0, 200}}, {2, {0, 200}}, {3, {0, 200}}});
}

}  // namespace
}  // namespace streamrec
