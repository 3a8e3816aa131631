// RAII Kafka consumer over librdkafka for source workers: PostgreSQL, not Kafka, owns the
// offsets.
//
// The source worker stores the next offset of every partition in the same transaction as the
// rows, so this consumer never commits or stores offsets by itself (enable.auto.commit and
// enable.auto.offset.store are forced off). Where a partition starts is asked from the caller
// through offset_lookup whenever the partition is assigned; partitions it has no offset for
// start at config.start (in group mode: at the group's committed Kafka offset first).
//
// Threading: one thread uses a consumer. librdkafka's callbacks (rebalance, errors,
// statistics, commit results) are served on that thread inside poll_batch(),
// refresh_partitions() and the destructor, so the offset lookup runs on the caller's thread and
// may call PostgreSQL. A callback never lets an exception into librdkafka's C frames: it is
// caught, kept, and rethrown from poll_batch().
//
// Between two poll_batch() calls the set of owned partitions cannot change: a batch only holds
// messages of partitions owned when it was returned, so the caller may store their next offsets.
#pragma once

#include "core/postgres_free.h"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/formats/decoder.h"
#include "core/kafka/kafka_error.h"

namespace streamrec {

enum class consumer_state {
  starting,       // nothing assigned yet
  running,        // assigned, and the last thing heard was good
  broker_down,    // all brokers (or the connection to one) lost; librdkafka keeps retrying
  topic_missing,  // the topic does not exist (yet), or was deleted
  error,          // anything else the caller should show (authentication, authorization, ...)
};
const char* consumer_state_name(consumer_state state);

// Where a partition without a stored offset starts.
struct start_position {
  enum class kind { earliest, latest, timestamp };
  kind where = kind::earliest;
  int64_t timestamp_ms = 0;  // kind::timestamp: the first message at or after this time

  start_position() = default;
  // "earliest", "latest", an ISO 8601 timestamp ("2024-06-28 13:01:55+02") or epoch
  // milliseconds. Implicit so a catalog option string converts directly; throws
  // std::invalid_argument naming the bad text.
  start_position(const std::string& text);                                 // NOLINT(google-explicit-constructor)
  start_position(const char* text) : start_position(std::string(text)) {}  // NOLINT

  static start_position earliest() { return {}; }
  static start_position latest();
};

struct consumer_config {
  std::string brokers;  // bootstrap.servers; a "bootstrap.servers" property overrides it
  std::string topic;
  // Set: join this consumer group (subscribe; partitions are shared among its members).
  // Unset: consume every partition of the topic, including ones added later.
  std::optional<std::string> group_id;
  // Without a group: only these partitions (empty: all). Several sources can split a topic's
  // partitions between them without a group's rebalances.
  std::vector<int32_t> partitions;
  // librdkafka properties passed through (security.protocol, sasl.*, ssl.*, fetch.*, ...).
  std::map<std::string, std::string> properties;
  start_position start;
  std::string client_id;  // empty: librdkafka's default

  // Without a group: how often metadata is checked for new partitions (every second while
  // nothing is assigned). Each check is one blocking metadata request of at most
  // metadata_timeout; offsetsForTimes and committed-offset queries use the same bound.
  std::chrono::milliseconds partition_refresh_interval{10000};
  std::chrono::milliseconds metadata_timeout{2000};
  // The destructor waits this long for the consumer to leave its group.
  std::chrono::milliseconds close_timeout{5000};
};

// A batch of data messages, owning them (librdkafka's buffers stay valid until the batch goes).
// Movable, not copyable. Every batch must be destroyed before its consumer.
class consumer_batch {
 public:
  consumer_batch() = default;
  ~consumer_batch() { clear(); }
  consumer_batch(consumer_batch&& other) noexcept : messages_(std::move(other.messages_)) { other.messages_.clear(); }
  consumer_batch& operator=(consumer_batch&& other) noexcept;
  consumer_batch(const consumer_batch&) = delete;
  consumer_batch& operator=(const consumer_batch&) = delete;

  size_t size() const { return messages_.size(); }
  bool empty() const { return messages_.empty(); }
  // Borrowed views, valid while the batch lives. Messages of a partition are in offset order.
  message_view view(size_t index) const;
  const rd_kafka_message_t* raw(size_t index) const { return messages_[index]; }

  // Per partition: the first offset in the batch, which rewind() takes to deliver it again ...
  std::map<int32_t, int64_t> first_offsets() const;
  // ... and the offset after the last one, which the caller stores when the batch committed.
  std::map<int32_t, int64_t> next_offsets() const;

  void clear();

 private:
  friend class consumer;
  std::vector<rd_kafka_message_t*> messages_;
};

class consumer {
 public:
  // Given partitions being assigned, returns the stored next offset of those it knows.
  // Runs on the caller's thread, inside poll_batch() or refresh_partitions(). If it throws,
  // the partitions stay unassigned, the exception comes out of poll_batch(), and the next
  // poll_batch() asks again.
  using offset_lookup = std::function<std::map<int32_t, int64_t>(const std::vector<int32_t>& partitions)>;

  // Throws kafka_error with librdkafka's message for an invalid property. Does not block: the
  // first poll_batch() connects and assigns.
  consumer(const consumer_config& config, offset_lookup lookup);
  // Leaves the group (bounded by close_timeout) and releases the handle.
  ~consumer();
  consumer(const consumer&) = delete;
  consumer& operator=(const consumer&) = delete;

  // Up to max_messages data messages, waiting at most max_wait for them (a full batch returns
  // at once). Broker, topic and transport trouble is not thrown: state() says what is wrong
  // and librdkafka keeps retrying. Throws kafka_error for a fatal client error (recreate the
  // consumer) and rethrows what the offset lookup threw. A batch ends at a rebalance.
  consumer_batch poll_batch(size_t max_messages, std::chrono::milliseconds max_wait);

  // Moves owned partitions back to the given next offsets (typically batch.first_offsets()
  // after the transaction rolled back), so the same messages come again. Partitions not owned
  // any more are skipped. Throws kafka_error if librdkafka cannot seek; recreating the consumer
  // is then the safe way on.
  void rewind(const std::map<int32_t, int64_t>& next_offsets);

  // Without a group: checks metadata and assigns partitions not yet assigned; returns them.
  // poll_batch() calls it every partition_refresh_interval. With a group it does nothing:
  // librdkafka rebalances when partitions are added.
  std::vector<int32_t> refresh_partitions();

  // Sorted. Changes only inside poll_batch() / refresh_partitions().
  const std::vector<int32_t>& owned_partitions() const { return owned_; }
  // Bumped on every assignment or revocation.
  uint64_t assignment_generation() const { return generation_; }
  // Partitions revoked since the previous call. Their messages have already been dropped from
  // batches; the caller must not store offsets for them any more.
  std::vector<int32_t> take_revoked_partitions();

  // Partitions that started without a stored offset (at the start position, or in group mode
  // at the group's committed offset) and the concrete offset they started at, since the last
  // call. Storing them with the next transaction makes a restart continue there instead of
  // applying the start position again (which matters for "latest" and timestamps).
  std::map<int32_t, int64_t> take_started_offsets();

  // Per owned partition with a known high watermark: messages not yet handed out. Computed
  // from librdkafka's cached watermarks (updated by every fetch response), no broker request.
  std::map<int32_t, int64_t> lag() const;
  int64_t total_lag() const;

  consumer_state state() const { return state_; }
  // What is wrong (empty while running without trouble).
  const std::string& state_message() const { return state_message_; }

  // After the batch committed in PostgreSQL: lets Kafka tooling see this consumer's progress.
  // Asynchronous, best effort; PostgreSQL stays the source of truth. Group mode, or a
  // "group.id" property without a group; otherwise does nothing and returns false.
  bool commit_to_kafka(const std::map<int32_t, int64_t>& next_offsets);

  const std::string& topic() const { return topic_; }
  rd_kafka_t* handle() { return handle_; }

 private:
  static void on_rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                           void* opaque);
  static void on_error(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static int on_statistics(rd_kafka_t* rk, char* json, size_t json_len, void* opaque);

  void handle_rebalance(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* partitions);
  void handle_error(rd_kafka_resp_err_t err, const char* reason);
  void handle_message_error(const rd_kafka_message_t* message);
  void revoke(const std::vector<int32_t>& partitions);
  // Looks up, resolves and assigns; false (partitions left pending) when a broker query failed.
  bool assign_partitions(const std::vector<int32_t>& partitions);
  bool resolve_start_offsets(std::map<int32_t, int64_t>& offsets, const std::vector<int32_t>& missing);
  void retry_pending();
  void drop_revoked(consumer_batch& batch);
  void seek(const std::map<int32_t, int64_t>& offsets);
  void throw_if_failed();
  void set_state(consumer_state state, std::string message);
  bool cooperative() const;
  void set_next_offset(int32_t partition, int64_t offset);

  std::string topic_;
  consumer_config config_;
  offset_lookup lookup_;
  bool group_mode_ = false;
  bool can_commit_ = false;

  rd_kafka_t* handle_ = nullptr;
  rd_kafka_queue_t* queue_ = nullptr;         // the consumer queue; every callback is served from it
  rd_kafka_topic_t* topic_handle_ = nullptr;  // for metadata requests

  std::vector<rd_kafka_message_t*> received_;  // consume buffer, reused across polls
  std::vector<int32_t> owned_;
  std::vector<int32_t> pending_;  // assigned by the group but not yet started (lookup failed)
  std::vector<int32_t> revoked_unreported_;
  std::vector<int32_t> revoked_this_poll_;
  // Indexed by partition: the next offset to hand out, or a logical RD_KAFKA_OFFSET_* while
  // librdkafka resolves it (BEGINNING / END), or RD_KAFKA_OFFSET_INVALID when unknown.
  std::vector<int64_t> next_offset_;
  uint64_t generation_ = 0;
  std::map<int32_t, int64_t> started_offsets_;
  bool first_look_done_ = false;  // start applies only to partitions there at the first look
  bool rebalanced_ = false;
  bool closing_ = false;

  std::exception_ptr callback_exception_;
  bool fatal_ = false;
  consumer_state state_ = consumer_state::starting;
  std::string state_message_;

  std::chrono::steady_clock::time_point next_refresh_{};
  std::chrono::steady_clock::time_point next_pending_retry_{};
};

}  // namespace streamrec
