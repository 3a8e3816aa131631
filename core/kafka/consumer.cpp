#include "core/kafka/consumer.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <utility>

#include "core/formats/timestamp_text.h"
#include "core/kafka/property_policy.h"

namespace streamrec {

namespace {

using clock_type = std::chrono::steady_clock;

// Between attempts to start partitions whose lookup or offset query failed: often enough to
// recover quickly, rarely enough not to hammer PostgreSQL or a sick broker.
constexpr std::chrono::milliseconds retry_interval{1000};

struct partition_list_deleter {
  void operator()(rd_kafka_topic_partition_list_t* list) const { rd_kafka_topic_partition_list_destroy(list); }
};
using partition_list = std::unique_ptr<rd_kafka_topic_partition_list_t, partition_list_deleter>;

struct conf_deleter {
  void operator()(rd_kafka_conf_t* conf) const { rd_kafka_conf_destroy(conf); }
};

struct metadata_deleter {
  void operator()(const rd_kafka_metadata_t* metadata) const { rd_kafka_metadata_destroy(metadata); }
};

partition_list make_list(const std::string& topic, const std::vector<int32_t>& partitions, int64_t offset) {
  partition_list list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset = offset;
  return list;
}

void insert_sorted(std::vector<int32_t>& set, int32_t value) {
  auto at = std::lower_bound(set.begin(), set.end(), value);
  if (at == set.end() || *at != value) set.insert(at, value);
}

void erase_sorted(std::vector<int32_t>& set, int32_t value) {
  auto at = std::lower_bound(set.begin(), set.end(), value);
  if (at != set.end() && *at == value) set.erase(at);
}

bool contains_sorted(const std::vector<int32_t>& set, int32_t value) {
  return std::binary_search(set.begin(), set.end(), value);
}

bool is_broker_trouble(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
         err == RD_KAFKA_RESP_ERR__RESOLVE || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
         err == RD_KAFKA_RESP_ERR__WAIT_COORD || err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
         err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
         err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
}

bool is_topic_missing(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
         err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION;
}

// Whether a statistics document shows a broker connection that is up. Broker objects list
// "source" right before "state" ("UP", "DOWN", "CONNECT", ...); the internal pseudo-broker is
// always up and does not count.
bool statistics_show_broker_up(const char* json, size_t length) {
  const std::string_view text(json, length);
  static constexpr std::string_view source_key = "\"source\":\"";
  static constexpr std::string_view state_key = "\"state\":\"";
  size_t at = 0;
  while ((at = text.find(source_key, at)) != std::string_view::npos) {
    at += source_key.size();
    const size_t source_end = text.find('"', at);
    if (source_end == std::string_view::npos) break;
    const std::string_view source = text.substr(at, source_end - at);
    const size_t state_at = text.find(state_key, source_end);
    if (state_at == std::string_view::npos) break;
    const size_t value_at = state_at + state_key.size();
    if (source != "internal" && text.compare(value_at, 3, "UP\"") == 0) return true;
    at = value_at;
  }
  return false;
}

}  // namespace

const char* consumer_state_name(consumer_state state) {
  switch (state) {
    case consumer_state::starting:
      return "starting";
    case consumer_state::running:
      return "running";
    case consumer_state::broker_down:
      return "broker_down";
    case consumer_state::topic_missing:
      return "topic_missing";
    case consumer_state::error:
      return "error";
  }
  return "unknown";
}

// --- start_position ---------------------------------------------------------------------------------

start_position::start_position(const std::string& text) {
  std::string word;
  for (char c : text) {
    if (!std::isspace(static_cast<unsigned char>(c)))
      word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (word == "earliest") return;
  if (word == "latest") {
    where = kind::latest;
    return;
  }
  where = kind::timestamp;
  if (!word.empty() && word.size() <= 18 &&
      std::all_of(word.begin(), word.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    timestamp_ms = std::stoll(word);
    return;
  }
  if (const auto micros = parse_iso8601(text)) {
    // Floor, so a start time with sub-millisecond digits still includes its own millisecond.
    timestamp_ms = *micros >= 0 ? *micros / 1000 : -((-*micros + 999) / 1000);
    if (timestamp_ms >= 0) return;
  }
  throw std::invalid_argument(
      "start position must be 'earliest', 'latest' or a timestamp such as "
      "'2024-06-28 13:01:55+00', not '" +
      text + "'");
}

start_position start_position::latest() {
  start_position p;
  p.where = kind::latest;
  return p;
}

// --- consumer_batch ---------------------------------------------------------------------------------

consumer_batch& consumer_batch::operator=(consumer_batch&& other) noexcept {
  if (this != &other) {
    clear();
    messages_ = std::move(other.messages_);
    other.messages_.clear();
  }
  return *this;
}

void consumer_batch::clear() {
  for (rd_kafka_message_t* message : messages_) rd_kafka_message_destroy(message);
  messages_.clear();
}

message_view consumer_batch::view(size_t index) const {
  const rd_kafka_message_t* m = messages_[index];
  message_view v;
  v.topic = rd_kafka_topic_name(m->rkt);
  v.partition = m->partition;
  v.offset = m->offset;
  v.timestamp_ms = rd_kafka_message_timestamp(m, nullptr);
  if (m->key != nullptr) v.key = std::string_view(static_cast<const char*>(m->key), m->key_len);
  if (m->payload != nullptr) v.payload = std::string_view(static_cast<const char*>(m->payload), m->len);
  return v;
}

std::map<int32_t, int64_t> consumer_batch::first_offsets() const {
  std::map<int32_t, int64_t> offsets;
  for (const rd_kafka_message_t* m : messages_) offsets.emplace(m->partition, m->offset);  // keeps the first
  return offsets;
}

std::map<int32_t, int64_t> consumer_batch::next_offsets() const {
  std::map<int32_t, int64_t> offsets;
  for (const rd_kafka_message_t* m : messages_) offsets[m->partition] = m->offset + 1;
  return offsets;
}

// --- consumer ---------------------------------------------------------------------------------------

consumer::consumer(const consumer_config& config, offset_lookup lookup)
    : topic_(config.topic), config_(config), lookup_(std::move(lookup)), group_mode_(config.group_id.has_value()) {
  if (topic_.empty()) throw kafka_error("a Kafka consumer needs a topic", RD_KAFKA_RESP_ERR__INVALID_ARG);
  if (group_mode_ && config.group_id->empty()) {
    throw kafka_error("a Kafka consumer group id must not be empty", RD_KAFKA_RESP_ERR__INVALID_ARG);
  }

  std::unique_ptr<rd_kafka_conf_t, conf_deleter> conf(rd_kafka_conf_new());
  auto set = [&conf](const std::string& name, const std::string& value) {
    char errstr[512];
    if (rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
      // The message reaches last_error and the server log: it names the property, never a value
      // (librdkafka's own message quotes it).
      throw kafka_error("invalid Kafka consumer property \"" + name + "\": " + describe_refused_property(errstr),
                        RD_KAFKA_RESP_ERR__INVALID_ARG);
    }
  };
  const auto& props = config.properties;
  // Defaults the caller may override. A stored offset that fell out of retention restarts at the
  // oldest message still there (librdkafka logs a warning); statistics drive broker-up
  // detection; in group mode the metadata refresh is what notices added partitions.
  set("auto.offset.reset", "earliest");
  set("statistics.interval.ms", "1000");
  // librdkafka 2.0.2 stops fetching once this many messages wait in the queue and looks again
  // only after a 1 s backoff (fetch.queue.backoff.ms came in 2.2), so the queue must hold
  // about a second of what the worker ingests; the default 100000 halves a 300k rows/s worker.
  // Costs roughly 300 bytes per queued message at the limit.
  set("queued.min.messages", "500000");
  if (group_mode_) {
    set("topic.metadata.refresh.interval.ms",
        std::to_string(std::max<int64_t>(1000, config.partition_refresh_interval.count())));
  }
  if (!config.brokers.empty()) set("bootstrap.servers", config.brokers);
  if (!config.client_id.empty()) set("client.id", config.client_id);
  for (const auto& [name, value] : props) set(name, value);
  // PostgreSQL holds the offsets: nothing may commit or advance them behind its back.
  set("enable.auto.commit", "false");
  set("enable.auto.offset.store", "false");
  set("enable.partition.eof", "false");
  if (group_mode_) {
    set("group.id", *config.group_id);
    can_commit_ = true;
  } else if (props.count("group.id") != 0) {
    can_commit_ = true;
  } else {
    // librdkafka only allows assign() with a group id; this one never joins or commits.
    set("group.id", "pg_streamrec-assign-only");
  }
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_error_cb(conf.get(), &consumer::on_error);
  rd_kafka_conf_set_stats_cb(conf.get(), &consumer::on_statistics);
  if (group_mode_) rd_kafka_conf_set_rebalance_cb(conf.get(), &consumer::on_rebalance);

  char errstr[512];
  // rd_kafka_new takes ownership of the configuration only on success.
  handle_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr, sizeof errstr);
  if (handle_ == nullptr) {
    // rd_kafka_new refuses a combination of settings (e.g. a security protocol without its keys).
    throw kafka_error("cannot create Kafka consumer: " + redact_property_values(errstr, config.properties),
                      RD_KAFKA_RESP_ERR__INVALID_ARG);
  }
  (void)conf.release();

  // Every callback (errors and statistics included) is served by the consumer queue, i.e. on
  // the thread that calls poll_batch().
  rd_kafka_poll_set_consumer(handle_);
  queue_ = rd_kafka_queue_get_consumer(handle_);
  topic_handle_ = rd_kafka_topic_new(handle_, topic_.c_str(), nullptr);
  if (topic_handle_ == nullptr) {
    const rd_kafka_resp_err_t err = rd_kafka_last_error();
    rd_kafka_queue_destroy(queue_);
    rd_kafka_destroy(handle_);
    throw kafka_error("cannot create handle for topic " + topic_ + ": " + rd_kafka_err2str(err), err);
  }
  if (group_mode_) {
    partition_list subscription = make_list(topic_, {RD_KAFKA_PARTITION_UA}, RD_KAFKA_OFFSET_INVALID);
    const rd_kafka_resp_err_t err = rd_kafka_subscribe(handle_, subscription.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      rd_kafka_topic_destroy(topic_handle_);
      rd_kafka_queue_destroy(queue_);
      rd_kafka_destroy(handle_);
      throw kafka_error("cannot subscribe to topic " + topic_ + ": " + rd_kafka_err2str(err), err);
    }
  }
}

consumer::~consumer() {
  closing_ = true;
  // Leave the group (a revocation is served by on_rebalance on this thread) and drain what was
  // prefetched, for at most close_timeout: a dead broker must not hang a worker's exit.
  if (rd_kafka_error_t* error = rd_kafka_consumer_close_queue(handle_, queue_)) {
    rd_kafka_error_destroy(error);
  } else {
    const auto deadline = clock_type::now() + config_.close_timeout;
    while (!rd_kafka_consumer_closed(handle_) && clock_type::now() < deadline) {
      if (rd_kafka_message_t* message = rd_kafka_consume_queue(queue_, 50)) rd_kafka_message_destroy(message);
    }
  }
  rd_kafka_topic_destroy(topic_handle_);
  rd_kafka_queue_destroy(queue_);
  rd_kafka_destroy_flags(handle_, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

bool consumer::cooperative() const { return std::strcmp(rd_kafka_rebalance_protocol(handle_), "COOPERATIVE") == 0; }

void consumer::set_state(consumer_state state, std::string message) {
  state_ = state;
  state_message_ = std::move(message);
}

void consumer::set_next_offset(int32_t partition, int64_t offset) {
  if (partition < 0) return;
  if (static_cast<size_t>(partition) >= next_offset_.size()) {
    next_offset_.resize(static_cast<size_t>(partition) + 1, RD_KAFKA_OFFSET_INVALID);
  }
  next_offset_[static_cast<size_t>(partition)] = offset;
}

void consumer::throw_if_failed() {
  if (fatal_) {
    char errstr[512] = "";
    const rd_kafka_resp_err_t err = rd_kafka_fatal_error(handle_, errstr, sizeof errstr);
    throw kafka_error(std::string("fatal Kafka consumer error: ") + rd_kafka_err2name(err) + ": " + errstr, err, true);
  }
  if (callback_exception_) std::rethrow_exception(std::exchange(callback_exception_, nullptr));
}

consumer_batch consumer::poll_batch(size_t max_messages, std::chrono::milliseconds max_wait) {
  throw_if_failed();
  const auto started = clock_type::now();
  const auto deadline = started + max_wait;
  // While the broker is down a metadata request would only block until its timeout; the
  // owned partitions resume by themselves and the check follows once it is back.
  if (!group_mode_ && started >= next_refresh_ && !(state_ == consumer_state::broker_down && !owned_.empty())) {
    refresh_partitions();
  }
  if (!pending_.empty() && started >= next_pending_retry_) retry_pending();

  consumer_batch batch;
  batch.messages_.reserve(max_messages);
  if (received_.size() < max_messages) received_.resize(max_messages);
  rebalanced_ = false;
  revoked_this_poll_.clear();
  while (batch.size() < max_messages) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
    const int timeout_ms = static_cast<int>(std::max<int64_t>(0, left.count()));
    // Serves callbacks too (rebalances, errors, statistics) on this thread.
    const ssize_t got = rd_kafka_consume_batch_queue(queue_, timeout_ms, received_.data(), max_messages - batch.size());
    if (got < 0) {
      const rd_kafka_resp_err_t err = rd_kafka_last_error();
      set_state(consumer_state::error, std::string("cannot consume: ") + rd_kafka_err2str(err));
      break;
    }
    for (ssize_t i = 0; i < got; ++i) {
      rd_kafka_message_t* message = received_[static_cast<size_t>(i)];
      if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        batch.messages_.push_back(message);
      } else {
        handle_message_error(message);
        rd_kafka_message_destroy(message);
      }
    }
    if (rebalanced_ || fatal_ || callback_exception_ || timeout_ms == 0 || clock_type::now() >= deadline) break;
  }
  if (!revoked_this_poll_.empty()) drop_revoked(batch);

  for (const rd_kafka_message_t* m : batch.messages_) set_next_offset(m->partition, m->offset + 1);
  if (!batch.empty() && state_ != consumer_state::running) set_state(consumer_state::running, {});

  if (fatal_) throw_if_failed();
  // A lookup failure is reported once the messages in hand are delivered, so none is lost.
  if (batch.empty()) throw_if_failed();
  return batch;
}

// A rebalance served in the middle of a consume call cannot be placed among the messages that
// call returned, so every message of a partition revoked during this poll goes: those from
// before the revocation belong to a partition no longer (or newly) owned, and those after a
// re-assignment in the same poll are fetched again by seeking back to where it was assigned.
void consumer::drop_revoked(consumer_batch& batch) {
  std::sort(revoked_this_poll_.begin(), revoked_this_poll_.end());
  revoked_this_poll_.erase(std::unique(revoked_this_poll_.begin(), revoked_this_poll_.end()), revoked_this_poll_.end());
  auto& messages = batch.messages_;
  auto kept = messages.begin();
  for (auto it = messages.begin(); it != messages.end(); ++it) {
    if (contains_sorted(revoked_this_poll_, (*it)->partition)) {
      rd_kafka_message_destroy(*it);
    } else {
      *kept++ = *it;
    }
  }
  messages.erase(kept, messages.end());

  std::map<int32_t, int64_t> restart;
  for (int32_t p : revoked_this_poll_) {
    const size_t index = static_cast<size_t>(p);
    if (contains_sorted(owned_, p) && index < next_offset_.size()) restart[p] = next_offset_[index];
  }
  if (!restart.empty()) seek(restart);
}

void consumer::handle_message_error(const rd_kafka_message_t* message) {
  const rd_kafka_resp_err_t err = message->err;
  if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) return;
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    fatal_ = true;
    return;
  }
  std::string text = "topic " + topic_;
  if (message->partition >= 0) text += " [" + std::to_string(message->partition) + "]";
  text += ": ";
  text += rd_kafka_message_errstr(message);
  if (is_topic_missing(err)) {
    set_state(consumer_state::topic_missing, std::move(text));
  } else if (is_broker_trouble(err)) {
    set_state(consumer_state::broker_down, std::move(text));
  } else {
    set_state(consumer_state::error, std::move(text));
  }
}

void consumer::handle_error(rd_kafka_resp_err_t err, const char* reason) {
  const std::string text = std::string(rd_kafka_err2name(err)) + ": " + (reason != nullptr ? reason : "");
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    fatal_ = true;
  } else if (is_broker_trouble(err)) {
    set_state(consumer_state::broker_down, text);
  } else if (is_topic_missing(err)) {
    set_state(consumer_state::topic_missing, text);
  } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION || err == RD_KAFKA_RESP_ERR__SSL ||
             err == RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED ||
             err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
             err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED || err == RD_KAFKA_RESP_ERR__INVALID_ARG) {
    set_state(consumer_state::error, text);
  }
  // Anything else is informational and librdkafka recovers by itself.
}

std::vector<int32_t> consumer::refresh_partitions() {
  if (group_mode_) return {};
  const auto now = clock_type::now();
  // Until it succeeds: retry soon while nothing is assigned (topic missing, broker down at
  // start), otherwise at the normal pace.
  next_refresh_ = now + (owned_.empty() ? retry_interval : config_.partition_refresh_interval);
  const rd_kafka_metadata_t* raw = nullptr;
  const rd_kafka_resp_err_t err =
      rd_kafka_metadata(handle_, 0, topic_handle_, &raw, static_cast<int>(config_.metadata_timeout.count()));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    const std::string text = "cannot read metadata of topic " + topic_ + ": " + rd_kafka_err2str(err);
    set_state(is_broker_trouble(err) ? consumer_state::broker_down : consumer_state::error, text);
    return {};
  }
  std::unique_ptr<const rd_kafka_metadata_t, metadata_deleter> metadata(raw);
  const rd_kafka_metadata_topic_t* found = nullptr;
  for (int i = 0; i < metadata->topic_cnt; ++i) {
    if (topic_ == metadata->topics[i].topic) found = &metadata->topics[i];
  }
  if (found == nullptr || is_topic_missing(found->err) || (found->err == 0 && found->partition_cnt == 0)) {
    // Whatever appears from now on was produced after this consumer started: read it all.
    first_look_done_ = true;
    set_state(consumer_state::topic_missing, "topic " + topic_ + " does not exist");
    return {};
  }
  if (found->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    set_state(found->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ? consumer_state::error
                                                                         : consumer_state::topic_missing,
              "topic " + topic_ + ": " + rd_kafka_err2str(found->err));
    return {};
  }
  std::vector<int32_t> fresh;
  for (int i = 0; i < found->partition_cnt; ++i) {
    const int32_t id = found->partitions[i].id;
    const bool wanted = config_.partitions.empty() ||
                        std::find(config_.partitions.begin(), config_.partitions.end(), id) != config_.partitions.end();
    if (wanted && !contains_sorted(owned_, id)) fresh.push_back(id);
  }
  std::sort(fresh.begin(), fresh.end());
  if (state_ == consumer_state::topic_missing)
    set_state(owned_.empty() ? consumer_state::starting : consumer_state::running, {});
  try {
    if (!fresh.empty() && !assign_partitions(fresh)) return {};
  } catch (...) {
    next_refresh_ = {};  // the caller's back-off decides when the lookup is asked again
    throw;
  }
  next_refresh_ = now + config_.partition_refresh_interval;
  return fresh;
}

void consumer::retry_pending() {
  const std::vector<int32_t> partitions = pending_;
  try {
    assign_partitions(partitions);  // a lookup exception propagates to the caller from here
  } catch (...) {
    next_pending_retry_ = {};  // the caller's back-off decides when the lookup is asked again
    throw;
  }
}

bool consumer::assign_partitions(const std::vector<int32_t>& partitions) {
  std::map<int32_t, int64_t> offsets;
  // A cooperative rebalance may hand over nothing; librdkafka still waits for the assign call.
  if (lookup_ && !partitions.empty()) {
    for (const auto& [partition, offset] : lookup_(partitions)) {
      if (offset >= 0 && std::binary_search(partitions.begin(), partitions.end(), partition)) {
        offsets[partition] = offset;
      }
    }
  }
  std::vector<int32_t> missing;
  for (int32_t p : partitions) {
    if (offsets.count(p) == 0) missing.push_back(p);
  }
  if (!missing.empty() && !resolve_start_offsets(offsets, missing)) {
    next_pending_retry_ = clock_type::now() + retry_interval;
    return false;
  }

  partition_list list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  for (int32_t p : partitions) rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset = offsets[p];
  rd_kafka_error_t* error = nullptr;
  if (group_mode_ && !cooperative()) {
    // Eager: `partitions` is the whole new assignment.
    const rd_kafka_resp_err_t err = rd_kafka_assign(handle_, list.get());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) error = rd_kafka_error_new(err, "%s", rd_kafka_err2str(err));
  } else {
    error = rd_kafka_incremental_assign(handle_, list.get());
  }
  if (error != nullptr) {
    const std::string text =
        std::string("cannot assign partitions of topic ") + topic_ + ": " + rd_kafka_error_string(error);
    const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    rd_kafka_error_destroy(error);
    throw kafka_error(text, code);
  }
  for (int32_t p : partitions) {
    insert_sorted(owned_, p);
    erase_sorted(pending_, p);
    set_next_offset(p, offsets[p]);
  }
  for (int32_t p : missing) {
    if (offsets[p] >= 0) started_offsets_[p] = offsets[p];
  }
  ++generation_;
  first_look_done_ = true;
  if (state_ == consumer_state::starting || state_ == consumer_state::topic_missing) {
    set_state(consumer_state::running, {});
  }
  return true;
}

bool consumer::resolve_start_offsets(std::map<int32_t, int64_t>& offsets, const std::vector<int32_t>& missing) {
  const int timeout_ms = static_cast<int>(config_.metadata_timeout.count());
  std::vector<int32_t> unresolved = missing;
  if (group_mode_) {
    // A partition this database never stored may have been consumed by another member of the
    // group (another database): continue where the group committed, if it did.
    partition_list committed = make_list(topic_, unresolved, RD_KAFKA_OFFSET_INVALID);
    const rd_kafka_resp_err_t err = rd_kafka_committed(handle_, committed.get(), timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      set_state(is_broker_trouble(err) ? consumer_state::broker_down : consumer_state::error,
                "cannot read committed offsets of group " + *config_.group_id + ": " + rd_kafka_err2str(err));
      return false;
    }
    unresolved.clear();
    for (int i = 0; i < committed->cnt; ++i) {
      const rd_kafka_topic_partition_t& elem = committed->elems[i];
      if (elem.err == RD_KAFKA_RESP_ERR_NO_ERROR && elem.offset >= 0) {
        offsets[elem.partition] = elem.offset;
      } else {
        unresolved.push_back(elem.partition);
      }
    }
  }
  if (unresolved.empty()) return true;

  // Partitions that appear after the first assignment (or after the topic was seen missing)
  // hold only messages produced since this consumer started: they start at their beginning,
  // whatever the configured start.
  const start_position start = first_look_done_ ? start_position::earliest() : config_.start;
  // Resolve to concrete offsets (ListOffsets; -2 and -1 ask for the beginning and the end) so
  // lag and take_started_offsets() know where every partition starts.
  int64_t query = RD_KAFKA_OFFSET_BEGINNING;
  if (start.where == start_position::kind::latest) query = RD_KAFKA_OFFSET_END;
  if (start.where == start_position::kind::timestamp) query = start.timestamp_ms;
  for (int round = 0; round < 2 && !unresolved.empty(); ++round) {
    partition_list list = make_list(topic_, unresolved, query);
    const rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(handle_, list.get(), timeout_ms);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      set_state(is_broker_trouble(err) ? consumer_state::broker_down : consumer_state::error,
                "cannot look up start offsets of topic " + topic_ + ": " + rd_kafka_err2str(err));
      return false;
    }
    unresolved.clear();
    for (int i = 0; i < list->cnt; ++i) {
      const rd_kafka_topic_partition_t& elem = list->elems[i];
      if (elem.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        set_state(is_broker_trouble(elem.err) ? consumer_state::broker_down : consumer_state::error,
                  "cannot look up start offset of topic " + topic_ + " [" + std::to_string(elem.partition) +
                      "]: " + rd_kafka_err2str(elem.err));
        return false;
      }
      if (elem.offset >= 0) {
        offsets[elem.partition] = elem.offset;
      } else {
        unresolved.push_back(elem.partition);  // no message at or after the timestamp: the end
      }
    }
    query = RD_KAFKA_OFFSET_END;
  }
  for (int32_t p : unresolved) offsets[p] = RD_KAFKA_OFFSET_END;  // the broker gave no offset
  return true;
}

std::map<int32_t, int64_t> consumer::take_started_offsets() { return std::exchange(started_offsets_, {}); }

void consumer::revoke(const std::vector<int32_t>& partitions) {
  for (int32_t p : partitions) {
    erase_sorted(owned_, p);
    erase_sorted(pending_, p);
    started_offsets_.erase(p);
    set_next_offset(p, RD_KAFKA_OFFSET_INVALID);
    revoked_unreported_.push_back(p);
    revoked_this_poll_.push_back(p);
  }
  ++generation_;
}

std::vector<int32_t> consumer::take_revoked_partitions() {
  std::vector<int32_t> revoked = std::exchange(revoked_unreported_, {});
  std::sort(revoked.begin(), revoked.end());
  revoked.erase(std::unique(revoked.begin(), revoked.end()), revoked.end());
  return revoked;
}

void consumer::handle_rebalance(rd_kafka_resp_err_t err, const rd_kafka_topic_partition_list_t* partitions) {
  rebalanced_ = true;
  std::vector<int32_t> ours;
  for (int i = 0; partitions != nullptr && i < partitions->cnt; ++i) {
    if (topic_ == partitions->elems[i].topic) ours.push_back(partitions->elems[i].partition);
  }
  std::sort(ours.begin(), ours.end());
  const bool incremental = cooperative();

  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && !closing_) {
    // Eager hands over the whole new assignment; cooperative only what is added.
    if (incremental) {
      for (int32_t p : ours) insert_sorted(pending_, p);
    } else {
      pending_ = ours;
    }
    const std::vector<int32_t> assignment = incremental ? ours : pending_;
    assign_partitions(assignment);  // the lookup may throw: kept for poll_batch
    return;
  }

  // Revocation (or an error, or an assignment while closing): give the partitions up first,
  // so librdkafka is never left waiting whatever happens after.
  rd_kafka_error_t* error = nullptr;
  if (incremental) {
    error = rd_kafka_incremental_unassign(handle_, partitions);
  } else {
    rd_kafka_assign(handle_, nullptr);
  }
  if (error != nullptr) rd_kafka_error_destroy(error);
  if (incremental && err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    revoke(ours);
  } else {
    const std::vector<int32_t> all = owned_;  // revoke() edits owned_
    revoke(all);
    pending_.clear();
  }
  if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS && err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
    set_state(consumer_state::error, std::string("rebalance failed: ") + rd_kafka_err2str(err));
  }
}

void consumer::rewind(const std::map<int32_t, int64_t>& next_offsets) {
  std::vector<int32_t> partitions;
  for (const auto& [p, offset] : next_offsets) {
    if (offset >= 0 && contains_sorted(owned_, p)) partitions.push_back(p);
  }
  if (partitions.empty()) return;
  std::map<int32_t, int64_t> targets;
  for (int32_t p : partitions) targets[p] = next_offsets.at(p);
  seek(targets);
  for (int32_t p : partitions) set_next_offset(p, next_offsets.at(p));
}

void consumer::seek(const std::map<int32_t, int64_t>& offsets) {
  // Waiting makes librdkafka drop what it prefetched from the old position before we return.
  // Its wait for the seeks' replies can give up before the timeout (seen on a loaded machine,
  // long before it): a seek is idempotent, so it is asked again until the timeout has passed.
  const auto deadline = std::chrono::steady_clock::now() + config_.metadata_timeout;
  partition_list list;
  for (;;) {
    list.reset(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
    for (const auto& [p, offset] : offsets)
      rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset = offset;
    const auto remaining =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    rd_kafka_error_t* error =
        rd_kafka_seek_partitions(handle_, list.get(), static_cast<int>(std::max<int64_t>(remaining.count(), 1)));
    if (error == nullptr) break;
    const rd_kafka_resp_err_t code = rd_kafka_error_code(error);
    if (code == RD_KAFKA_RESP_ERR__TIMED_OUT && std::chrono::steady_clock::now() < deadline) {
      rd_kafka_error_destroy(error);
      continue;
    }
    const std::string text = std::string("cannot rewind topic ") + topic_ + ": " + rd_kafka_error_string(error);
    rd_kafka_error_destroy(error);
    throw kafka_error(text, code);
  }
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& elem = list->elems[i];
    if (elem.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      throw kafka_error(
          "cannot rewind topic " + topic_ + " [" + std::to_string(elem.partition) + "]: " + rd_kafka_err2str(elem.err),
          elem.err);
    }
  }
}

std::map<int32_t, int64_t> consumer::lag() const {
  std::map<int32_t, int64_t> result;
  for (int32_t p : owned_) {
    const size_t index = static_cast<size_t>(p);
    const int64_t next = index < next_offset_.size() ? next_offset_[index] : RD_KAFKA_OFFSET_INVALID;
    int64_t low = RD_KAFKA_OFFSET_INVALID;
    int64_t high = RD_KAFKA_OFFSET_INVALID;
    // Cached by librdkafka from the last fetch response: no broker round trip.
    if (rd_kafka_get_watermark_offsets(handle_, topic_.c_str(), p, &low, &high) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        high < 0) {
      continue;
    }
    if (next >= 0) {
      result[p] = std::max<int64_t>(0, high - next);
    } else if (next == RD_KAFKA_OFFSET_END) {
      result[p] = 0;
    } else if (next == RD_KAFKA_OFFSET_BEGINNING && low >= 0) {
      result[p] = std::max<int64_t>(0, high - low);
    }
  }
  return result;
}

int64_t consumer::total_lag() const {
  int64_t total = 0;
  for (const auto& entry : lag()) total += entry.second;
  return total;
}

bool consumer::commit_to_kafka(const std::map<int32_t, int64_t>& next_offsets) {
  if (!can_commit_) return false;
  partition_list list(rd_kafka_topic_partition_list_new(static_cast<int>(next_offsets.size())));
  for (const auto& [p, offset] : next_offsets) {
    if (offset >= 0 && contains_sorted(owned_, p)) {
      rd_kafka_topic_partition_list_add(list.get(), topic_.c_str(), p)->offset = offset;
    }
  }
  if (list->cnt == 0) return false;
  const rd_kafka_resp_err_t err = rd_kafka_commit(handle_, list.get(), 1 /* async */);
  return err == RD_KAFKA_RESP_ERR_NO_ERROR;
}

// --- librdkafka callbacks: served on the caller's thread, never throw into C ----------------------

void consumer::on_rebalance(rd_kafka_t* /*rk*/, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions,
                            void* opaque) {
  // No rd_kafka_yield() here: in librdkafka 2.0.2 a yield from a callback served by
  // rd_kafka_consume_batch_queue() makes it drop (and leak) the next message it dequeues.
  auto* self = static_cast<consumer*>(opaque);
  try {
    self->handle_rebalance(err, partitions);
  } catch (...) {
    if (!self->callback_exception_) self->callback_exception_ = std::current_exception();
  }
}

void consumer::on_error(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  auto* self = static_cast<consumer*>(opaque);
  try {
    self->handle_error(static_cast<rd_kafka_resp_err_t>(err), reason);
  } catch (...) {
    if (!self->callback_exception_) self->callback_exception_ = std::current_exception();
  }
}

int consumer::on_statistics(rd_kafka_t* /*rk*/, char* json, size_t json_len, void* opaque) {
  auto* self = static_cast<consumer*>(opaque);
  try {
    if (self->state_ == consumer_state::broker_down && statistics_show_broker_up(json, json_len)) {
      self->set_state(self->owned_.empty() ? consumer_state::starting : consumer_state::running, {});
    }
  } catch (...) {
    if (!self->callback_exception_) self->callback_exception_ = std::current_exception();
  }
  return 0;  // librdkafka frees the document
}

}  // namespace streamrec
