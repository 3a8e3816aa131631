#include "tools/datagen/datagen_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/registry/schema_registry_client.h"
#include "core/kafka/producer.h"
#include "tools/datagen/debezium_events.h"

namespace streamrec::datagen {

namespace {

// Large writes amortize syscalls: the generator makes ~50-byte records at millions per second.
constexpr size_t flush_threshold = size_t{1} << 20;

[[noreturn]] void throw_errno(const std::string& what) { throw std::runtime_error(what + ": " + std::strerror(errno)); }

}  // namespace

// --- stream_sink ------------------------------------------------------------------------------------

stream_sink::stream_sink(int fd, stream_framing framing, bool close_fd)
    : fd_(fd), framing_(framing), close_fd_(close_fd) {
  buffer_.reserve(flush_threshold + 4096);
}

stream_sink::stream_sink(stream_framing framing) : fd_(-1), framing_(framing), close_fd_(false) {}

stream_sink::~stream_sink() {
  if (close_fd_ && fd_ >= 0) ::close(fd_);
}

void stream_sink::write(std::optional<std::string_view> /*key*/, std::string_view value,
                        std::optional<int64_t> /*timestamp_us*/) {
  if (framing_ == stream_framing::length_prefixed) {
    const auto n = static_cast<uint32_t>(value.size());
    const char prefix[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                            static_cast<char>(n)};
    buffer_.append(prefix, 4);
    buffer_.append(value);
  } else {
    buffer_.append(value);
    buffer_.push_back('\n');
  }
  if (fd_ >= 0 && buffer_.size() >= flush_threshold) flush_buffer();
}

void stream_sink::write_raw(std::string_view bytes) { buffer_.append(bytes); }

void stream_sink::flush_buffer() {
  size_t done = 0;
  while (done < buffer_.size()) {
    const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write output");
    }
    done += static_cast<size_t>(n);
  }
  buffer_.clear();
}

void stream_sink::finish() {
  if (fd_ < 0) return;
  flush_buffer();
  if (close_fd_) {
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_errno("cannot close output");
  }
}

// --- kafka_sink ---------------------------------------------------------------------------------------

kafka_sink::kafka_sink(const datagen_options& options) : topic_(options.topic) {
  // Throughput-oriented defaults: big batches, a short linger, Java-compatible key
  // partitioning so keys land where other Kafka clients would put them. -X overrides any.
  producer::properties properties = {
      {"linger.ms", "50"},
      {"batch.num.messages", "100000"},
      {"queue.buffering.max.messages", "1000000"},
      {"partitioner", "murmur2_random"},
  };
  for (const auto& [name, value] : options.kafka_properties) properties[name] = value;
  producer_ = std::make_unique<producer>(options.brokers, properties);
}

kafka_sink::~kafka_sink() = default;

void kafka_sink::write(std::optional<std::string_view> key, std::string_view value,
                       std::optional<int64_t> timestamp_us) {
  const int64_t timestamp_ms = timestamp_us ? *timestamp_us / 1000 : 0;
  producer_->produce(topic_, key, value, RD_KAFKA_PARTITION_UA, timestamp_ms);
}

void kafka_sink::finish() {
  const bool flushed = producer_->flush(std::chrono::seconds(60));
  if (auto error = producer_->take_delivery_error()) {
    throw std::runtime_error("Kafka delivery failed for " + std::to_string(producer_->failed()) +
                             " message(s); first: " + *error);
  }
  if (!flushed) {
    throw std::runtime_error(std::to_string(producer_->in_flight()) +
                             " message(s) still undelivered after 60 s: " + producer_->last_client_error());
  }
}

uint64_t kafka_sink::delivered() const { return producer_->delivered(); }
uint64_t kafka_sink::failed() const { return producer_->failed(); }

// --- the loop ---------------------------------------------------------------------------------------------

run_summary generate_records(const datagen_options& options, message_sink& sink, std::optional<int32_t> schema_id,
                             const std::atomic<bool>* stop) {
  record_generator generator(options.generator);
  std::unique_ptr<record_encoder> encoder;
  switch (options.format) {
    case data_format::csv:
      encoder = make_csv_encoder(generator.fields(), options.delimiter);
      break;
    case data_format::json:
      encoder = make_json_encoder(generator.fields());
      break;
    case data_format::avro:
      encoder = make_avro_encoder(options.generator.kind, generator.fields(),
                                  options.framing == avro_framing::confluent ? schema_id : std::nullopt);
      break;
    case data_format::protobuf:
      encoder = make_protobuf_encoder(generator.fields(),
                                      options.framing == avro_framing::confluent ? schema_id : std::nullopt);
      break;
  }

  using clock = std::chrono::steady_clock;
  const auto started = clock::now();
  const bool timed = options.duration_s > 0;
  const auto deadline = started + std::chrono::duration_cast<clock::duration>(
                                      std::chrono::duration<double>(timed ? options.duration_s : 0));
  const double seconds_per_message = options.rate > 0 ? 1.0 / options.rate : 0;

  run_summary summary;
  record rec;
  std::string payload;
  const bool keyed = options.to_kafka() && !options.no_key;
  for (uint64_t n = 0; !options.count || n < *options.count; ++n) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
    if (options.rate > 0) {
      // Pace against the start, not the previous message, so timing error does not accumulate;
      // sleep only when more than a millisecond ahead (sleeping per message caps the rate).
      const auto due = started + std::chrono::duration_cast<clock::duration>(
                                     std::chrono::duration<double>(static_cast<double>(n) * seconds_per_message));
      auto now = clock::now();
      if (due - now > std::chrono::milliseconds(1)) {
        std::this_thread::sleep_until(due);
        now = clock::now();
      }
      if (timed && now >= deadline) break;
    } else if (timed && (n & 1023) == 0 && clock::now() >= deadline) {
      break;
    }

    generator.generate(options.start_index + n, rec);
    payload.clear();
    encoder->encode(rec, payload);
    sink.write(keyed ? std::optional<std::string_view>(rec.key()) : std::nullopt, payload, rec.event_time_us);
    ++summary.messages;
    summary.payload_bytes += payload.size();
  }
  sink.finish();
  summary.seconds = std::chrono::duration<double>(clock::now() - started).count();
  return summary;
}

namespace {

std::optional<int32_t> resolve_schema_id(const datagen_options& options) {
  const bool registry_format = options.format == data_format::avro || options.format == data_format::protobuf;
  if (!registry_format || options.framing != avro_framing::confluent) return std::nullopt;
  if (options.schema_id) return options.schema_id;
  record_generator generator(options.generator);
  schema_registry_client registry(options.registry_url);
  if (options.format == data_format::protobuf) {
    return registry.register_schema(options.avro_subject(),
                                    protobuf_schema_text(options.generator.kind, generator.fields()), "PROTOBUF", {});
  }
  return registry.register_schema(options.avro_subject(), avro_schema_json(options.generator.kind, generator.fields()));
}

std::unique_ptr<stream_sink> open_stream(const datagen_options& options) {
  const stream_framing framing = options.format == data_format::avro || options.format == data_format::protobuf
                                     ? stream_framing::length_prefixed
                                     : stream_framing::lines;
  if (options.output == "-") return std::make_unique<stream_sink>(STDOUT_FILENO, framing, false);
  const int fd = ::open(options.output.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("cannot open " + options.output);
  return std::make_unique<stream_sink>(fd, framing, true);
}

}  // namespace

// --envelope debezium: the change events of the customers table, one change after another
// (--count changes; a delete is followed by its tombstone, a message of its own).
run_summary generate_debezium(const datagen_options& options, message_sink& sink, const std::atomic<bool>* stop) {
  std::optional<int32_t> key_id, value_id;
  if (options.format == data_format::avro) {
    schema_registry_client registry(options.registry_url);
    key_id = registry.register_schema(options.avro_key_subject(), debezium_customers::avro_key_schema());
    value_id = registry.register_schema(options.avro_subject(), debezium_customers::avro_value_schema());
  }
  debezium_customers changes(options.generator, options.format, options.json_schemas, key_id, value_id);
  const auto started = std::chrono::steady_clock::now();
  run_summary summary;
  std::vector<change_message> messages;
  for (uint64_t n = 0; !options.count || n < *options.count; ++n) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) break;
    messages.clear();
    changes.next(messages);
    for (const change_message& m : messages) {
      // A value view without data is a null value: the tombstone after a delete.
      sink.write(m.key, m.value ? std::string_view(*m.value) : std::string_view(), m.timestamp_us);
      ++summary.messages;
      summary.payload_bytes += m.value ? m.value->size() : 0;
    }
  }
  sink.finish();
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return summary;
}

run_summary run_datagen(const datagen_options& options, const std::atomic<bool>* stop) {
  if (options.debezium) {
    if (options.to_kafka()) {
      kafka_sink sink(options);
      return generate_debezium(options, sink, stop);
    }
    std::unique_ptr<stream_sink> sink = open_stream(options);
    return generate_debezium(options, *sink, stop);
  }
  const std::optional<int32_t> schema_id = resolve_schema_id(options);
  if (options.to_kafka()) {
    kafka_sink sink(options);
    return generate_records(options, sink, schema_id, stop);
  }
  std::unique_ptr<stream_sink> sink = open_stream(options);
  if (options.header) {
    record_generator generator(options.generator);
    sink->write_raw(csv_header(generator.fields(), options.delimiter) + "\n");
  }
  return generate_records(options, *sink, schema_id, stop);
}

std::string generate_to_string(const datagen_options& options, std::optional<int32_t> schema_id) {
  stream_sink sink(options.format == data_format::avro || options.format == data_format::protobuf
                       ? stream_framing::length_prefixed
                       : stream_framing::lines);
  generate_records(options, sink, schema_id);
  return sink.contents();
}

std::string describe_summary(const datagen_options& options, const run_summary& summary) {
  static constexpr const char* format_names[] = {"csv", "json", "avro", "protobuf"};
  const std::string destination = options.to_kafka()      ? "topic " + options.topic
                                  : options.output == "-" ? std::string("stdout")
                                                          : options.output;
  char rate[64];
  const double per_second = summary.seconds > 0 ? static_cast<double>(summary.messages) / summary.seconds : 0;
  std::snprintf(rate, sizeof rate, "%.3f s (%.0f msg/s)", summary.seconds, per_second);
  return "streamrec-datagen: " + std::to_string(summary.messages) + " " +
         std::string(kind_name(options.generator.kind)) + " as " + format_names[static_cast<int>(options.format)] +
         " to " + destination + ": " + std::to_string(summary.payload_bytes) + " bytes in " + rate;
}

}  // namespace streamrec::datagen
