#include "core/kafka/producer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/kafka/property_policy.h"

namespace streamrec {

namespace {

// Serving delivery reports this often keeps librdkafka's report queue short without paying for
// a poll call per message.
constexpr uint32_t poll_every_messages = 512;

void set_property(rd_kafka_conf_t* conf, const std::string& name, const std::string& value) {
  char errstr[512];
  if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    // The message reaches last_error and the server log: it names the property, never a value
    // (librdkafka's own message quotes it).
    throw kafka_error("invalid Kafka producer property \"" + name + "\": " + describe_refused_property(errstr),
                      RD_KAFKA_RESP_ERR__INVALID_ARG);
  }
}

}  // namespace

producer::producer(const std::string& bootstrap_servers, const properties& extra) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  if (!bootstrap_servers.empty()) set_property(conf, "bootstrap.servers", bootstrap_servers);
  for (const auto& [name, value] : extra) set_property(conf, name, value);
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, &producer::on_delivery);
  rd_kafka_conf_set_error_cb(conf, &producer::on_error);

  char errstr[512];
  handle_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (handle_ == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes ownership only on success
    throw kafka_error("cannot create Kafka producer: " + redact_property_values(errstr, extra),
                      RD_KAFKA_RESP_ERR__INVALID_ARG);
  }
}

producer::~producer() {
  if (handle_ == nullptr) return;
  listener_ = nullptr;  // its owner may be half destroyed already
  rd_kafka_flush(handle_, static_cast<int>(close_timeout_.count()));
  // Whatever did not make it in time is purged so destroy does not block on it; the purge
  // produces failed delivery reports, which the poll below counts.
  rd_kafka_purge(handle_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_, 0);
  for (auto& entry : topics_) rd_kafka_topic_destroy(entry.second);
  if (main_queue_ != nullptr) {
    rd_kafka_queue_io_event_enable(main_queue_, -1, nullptr, 0);
    rd_kafka_queue_destroy(main_queue_);
  }
  rd_kafka_destroy(handle_);
  for (int fd : wakeup_pipe_)
    if (fd >= 0) ::close(fd);
}

rd_kafka_topic_t* producer::topic_handle(std::string_view topic) {
  if (last_topic_ != nullptr && topic == last_topic_name_) return last_topic_;
  std::string name(topic);
  auto found = topics_.find(name);
  if (found == topics_.end()) {
    rd_kafka_topic_t* created = rd_kafka_topic_new(handle_, name.c_str(), nullptr);
    if (created == nullptr) {
      const rd_kafka_resp_err_t err = rd_kafka_last_error();
      throw kafka_error("cannot create handle for topic " + name + ": " + rd_kafka_err2str(err), err);
    }
    found = topics_.emplace(name, created).first;
  }
  last_topic_name_ = std::move(name);
  last_topic_ = found->second;
  return last_topic_;
}

void producer::produce(std::string_view topic, std::optional<std::string_view> key, std::string_view value,
                       int32_t partition, int64_t timestamp_ms, uint64_t tag) {
  rd_kafka_topic_t* rkt = topic_handle(topic);
  // librdkafka's V_* macros cast their arguments unparenthesized: pass plain variables.
  void* key_data = key ? const_cast<char*>(key->data()) : nullptr;
  const size_t key_size = key ? key->size() : 0;
  void* value_data = const_cast<char*>(value.data());
  const size_t value_size = value.size();
  const auto deadline = std::chrono::steady_clock::now() + queue_full_timeout_;
  while (true) {
    const rd_kafka_resp_err_t err =
        rd_kafka_producev(handle_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key_data, key_size),
                          RD_KAFKA_V_VALUE(value_data, value_size), RD_KAFKA_V_TIMESTAMP(timestamp_ms),
                          // librdkafka's opaque pointer carries the message's integer tag.
                          // NOLINTNEXTLINE(performance-no-int-to-ptr)
                          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(tag))), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) break;
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // Back-pressure: the broker is slower than we produce. Serving delivery reports frees
      // queue slots; give it a moment and try again, but not forever.
      if (std::chrono::steady_clock::now() >= deadline) {
        throw kafka_error("Kafka producer queue still full after " + std::to_string(queue_full_timeout_.count()) +
                              " ms (topic " + std::string(topic) + "): is the broker reachable? " + last_client_error(),
                          err);
      }
      rd_kafka_poll(handle_, 100);
      produced_since_poll_ = 0;
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) throw_if_fatal();
    throw kafka_error("cannot produce to topic " + std::string(topic) + ": " + rd_kafka_err2str(err), err);
  }
  if (++produced_since_poll_ >= poll_every_messages) {
    produced_since_poll_ = 0;
    rd_kafka_poll(handle_, 0);
  }
}

std::vector<producer::refused_message> producer::produce_batch(std::string_view topic,
                                                               const std::vector<batch_message>& messages) {
  std::vector<refused_message> refused;
  if (messages.empty()) return refused;
  rd_kafka_topic_t* rkt = topic_handle(topic);
  batch_.assign(messages.size(), rd_kafka_message_t{});
  for (size_t i = 0; i < messages.size(); i++) {
    const batch_message& m = messages[i];
    rd_kafka_message_t& out = batch_[i];
    out.payload = const_cast<char*>(m.value.data());
    out.len = m.value.size();
    out.key = m.key ? const_cast<char*>(m.key->data()) : nullptr;
    out.key_len = m.key ? m.key->size() : 0;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): the opaque pointer carries the message's integer tag
    out._private = reinterpret_cast<void*>(static_cast<uintptr_t>(m.tag));
  }
  rd_kafka_produce_batch(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, batch_.data(),
                         static_cast<int>(batch_.size()));
  bool queue_was_full = false;
  for (size_t i = 0; i < messages.size(); i++) {
    const rd_kafka_resp_err_t err = batch_[i].err;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Nothing frees queue space during the call, so with a message-count limit the messages
      // it found no room for are the last ones (a byte limit could refuse a large message and
      // take a smaller one after it: the sink sets none); one accepted after them would be out
      // of order.
      if (queue_was_full)
        throw kafka_error("Kafka producer queue had room again within one batch (topic " + std::string(topic) +
                              "): messages may be out of order",
                          RD_KAFKA_RESP_ERR__QUEUE_FULL);
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      queue_was_full = true;
      produce(topic, messages[i].key, messages[i].value, RD_KAFKA_PARTITION_UA, 0, messages[i].tag);
      continue;
    }
    if (err == RD_KAFKA_RESP_ERR__FATAL) throw_if_fatal();
    refused.push_back({i, err});
  }
  produced_since_poll_ += static_cast<uint32_t>(messages.size());
  if (produced_since_poll_ >= poll_every_messages) {
    produced_since_poll_ = 0;
    rd_kafka_poll(handle_, 0);
  }
  return refused;
}

int producer::poll(std::chrono::milliseconds timeout) {
  produced_since_poll_ = 0;
  return rd_kafka_poll(handle_, static_cast<int>(timeout.count()));
}

bool producer::flush(std::chrono::milliseconds timeout) {
  produced_since_poll_ = 0;
  return rd_kafka_flush(handle_, static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR;
}

int producer::wakeup_fd() {
  if (main_queue_ != nullptr) return wakeup_pipe_[0];
  if (::pipe2(wakeup_pipe_, O_NONBLOCK | O_CLOEXEC) != 0)
    throw kafka_error(std::string("cannot create the producer's wakeup pipe: ") + std::strerror(errno));
  main_queue_ = rd_kafka_queue_get_main(handle_);
  static const char byte = 1;
  rd_kafka_queue_io_event_enable(main_queue_, wakeup_pipe_[1], &byte, 1);
  return wakeup_pipe_[0];
}

void producer::clear_wakeup() {
  if (main_queue_ == nullptr) return;
  char buffer[64];
  while (::read(wakeup_pipe_[0], buffer, sizeof buffer) > 0) {
  }
}

std::optional<std::string> producer::take_delivery_error() {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return std::exchange(first_delivery_error_, std::nullopt);
}

std::string producer::last_client_error() const {
  std::lock_guard<std::mutex> lock(error_mutex_);
  return last_client_error_;
}

void producer::throw_if_fatal() {
  char errstr[512];
  const rd_kafka_resp_err_t err = rd_kafka_fatal_error(handle_, errstr, sizeof errstr);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    throw kafka_error(std::string("fatal Kafka producer error: ") + rd_kafka_err2name(err) + ": " + errstr, err, true);
  }
}

// Runs inside rd_kafka_poll/flush on the caller's thread: count, remember and tell the
// listener, nothing else.
void producer::on_delivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  if (self->listener_) self->listener_(reinterpret_cast<uintptr_t>(message->_private), message->err);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    self->delivered_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  self->failed_.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(self->error_mutex_);
  if (!self->first_delivery_error_) {
    const char* topic = message->rkt != nullptr ? rd_kafka_topic_name(message->rkt) : "?";
    self->first_delivery_error_ = std::string("topic ") + topic + " [" + std::to_string(message->partition) +
                                  "]: " + rd_kafka_err2str(message->err);
  }
}

void producer::on_error(rd_kafka_t* /*rk*/, int err, const char* reason, void* opaque) {
  auto* self = static_cast<producer*>(opaque);
  std::lock_guard<std::mutex> lock(self->error_mutex_);
  self->last_client_error_ = std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
}

}  // namespace streamrec
