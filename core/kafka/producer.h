// RAII Kafka producer over librdkafka, shared by the sink worker, benchmarks and the data
// generator.
//
// librdkafka owns its threads; the callbacks registered here only count and remember the first
// failure (under a mutex), and the owner reads those on its own thread (delivered(), failed(),
// take_delivery_error()). That keeps the rule that only a worker's main thread talks to
// PostgreSQL trivially true for anything built on this class.
#pragma once

#include "core/postgres_free.h"

#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/kafka/kafka_error.h"

namespace streamrec {

class producer {
 public:
  using properties = std::map<std::string, std::string>;

  // `extra` holds librdkafka properties (linger.ms, enable.idempotence, security.protocol,
  // sasl.*, ...); they override the bootstrap string when they name bootstrap.servers.
  // Throws kafka_error naming the property librdkafka rejected.
  explicit producer(const std::string& bootstrap_servers, const properties& extra = {});
  // Flushes for at most close_timeout, then purges what is left (counted as failed).
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  // Enqueues one message; key and value are copied, so the caller may reuse its buffers at once.
  // No key (nullopt) means a NULL key, and a value without data (std::string_view()) a NULL value
  // (a tombstone); timestamp_ms 0 lets librdkafka stamp the current time.
  // `tag` comes back with the message's delivery report (see set_delivery_listener).
  // When the local queue is full it serves delivery reports and retries for up to
  // queue_full_timeout, then throws kafka_error(RD_KAFKA_RESP_ERR__QUEUE_FULL). Other errors
  // (unknown partition, message too large, fatal producer state) throw immediately.
  void produce(std::string_view topic, std::optional<std::string_view> key, std::string_view value,
               int32_t partition = RD_KAFKA_PARTITION_UA, int64_t timestamp_ms = 0, uint64_t tag = 0);

  // One message for produce_batch(); key and value are copied.
  struct batch_message {
    std::optional<std::string_view> key;
    std::string_view value;
    uint64_t tag = 0;
  };
  // A message produce_batch() could not enqueue: its index and why (e.g. message too large).
  struct refused_message {
    size_t index;
    rd_kafka_resp_err_t err;
  };
  // Enqueues messages in order, each to the partition the configured partitioner picks, all
  // stamped with the current time: one clock read and one topic lock for the lot instead of one
  // per message. Returns the messages refused one by one; waits for queue space and throws like
  // produce() otherwise.
  std::vector<refused_message> produce_batch(std::string_view topic, const std::vector<batch_message>& messages);

  // Called once per message from poll(), flush() or a produce() that waits for queue space, on
  // the caller's thread: the message's tag and its outcome. It lets a caller acknowledge its own
  // records message by message while more are in flight. The listener only records.
  using delivery_listener = std::function<void(uint64_t tag, rd_kafka_resp_err_t err)>;
  void set_delivery_listener(delivery_listener listener) { listener_ = std::move(listener); }

  // A file descriptor that becomes readable when delivery reports or events wait to be served,
  // so a caller can sleep in its own event loop (a PostgreSQL latch) instead of polling. Call
  // clear_wakeup() before poll(): what arrives after that makes the descriptor readable again.
  int wakeup_fd();
  void clear_wakeup();

  // Serves delivery reports and error events; returns how many were served.
  int poll(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));

  // Waits until every queued message is acknowledged or failed. Returns false on timeout
  // (messages still in flight); delivery failures show in failed() / take_delivery_error().
  bool flush(std::chrono::milliseconds timeout);

  uint64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  uint64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  // Messages produced but not yet acknowledged or failed (librdkafka's out queue).
  int in_flight() const { return rd_kafka_outq_len(handle_); }

  // The first delivery failure since the previous call, e.g.
  // "topic clicks [3]: Local: Message timed out", or nullopt.
  std::optional<std::string> take_delivery_error();
  // The most recent client-level error event (e.g. all brokers down), or empty. These are often
  // transient: librdkafka keeps retrying by itself.
  std::string last_client_error() const;
  // Throws kafka_error(fatal) if the producer hit a fatal error (idempotence broken).
  void throw_if_fatal();

  void set_queue_full_timeout(std::chrono::milliseconds timeout) { queue_full_timeout_ = timeout; }
  void set_close_timeout(std::chrono::milliseconds timeout) { close_timeout_ = timeout; }

  rd_kafka_t* handle() { return handle_; }

 private:
  static void on_delivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  rd_kafka_topic_t* topic_handle(std::string_view topic);

  rd_kafka_t* handle_ = nullptr;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;
  // One-entry cache in front of topics_: producers usually write one topic in a row.
  std::string last_topic_name_;
  rd_kafka_topic_t* last_topic_ = nullptr;
  uint32_t produced_since_poll_ = 0;
  std::vector<rd_kafka_message_t> batch_;  // produce_batch's scratch

  std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  mutable std::mutex error_mutex_;
  std::optional<std::string> first_delivery_error_;
  std::string last_client_error_;

  delivery_listener listener_;
  rd_kafka_queue_t* main_queue_ = nullptr;  // with its io event, once wakeup_fd() was asked for
  int wakeup_pipe_[2] = {-1, -1};

  std::chrono::milliseconds queue_full_timeout_{10000};
  std::chrono::milliseconds close_timeout_{10000};
};

}  // namespace streamrec
