// Avro in Kafka: the Confluent wire framing and a small RAII layer over avro-c.
//
// Confluent-compatible producers (Java serializers, Apicurio in ccompat mode, Karapace, our
// sinks and data generator) prefix each Avro-encoded message with a magic byte 0 and the 4-byte
// big-endian id the schema registry gave the writer's schema. Sources read the id, fetch that
// schema once (schema_registry_client), and decode.
//
// avro-c reports errors through return codes plus a thread-local avro_strerror(); this layer
// turns them into exceptions at the call, so callers cannot forget a check or lose the message.
// Reference counts are owned by RAII types so no early exit leaks an iface or schema.
#pragma once

#include "core/postgres_free.h"

#include <avro.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/formats/format_error.h"

namespace streamrec {

// A failure inside avro-c that is not about one message's bytes (bad schema, out of memory,
// wrong value type). Carries avro_strerror().
class avro_error : public std::runtime_error {
 public:
  explicit avro_error(const std::string& message) : std::runtime_error(message) {}
};

namespace confluent {

inline constexpr uint8_t magic_byte = 0;
inline constexpr size_t header_size = 5;

// magic byte + big-endian schema id + payload.
std::string frame(int32_t schema_id, std::string_view avro_payload);
// Appends only the 5-byte header, for encoders that then write the payload in place.
void append_frame_header(std::string& out, int32_t schema_id);

struct framed_message {
  int32_t schema_id;
  // Points into the bytes given to parse_frame; valid as long as they are.
  std::string_view payload;
};

// Throws format_error when the message is shorter than the header or the magic byte is not 0
// (for instance plain JSON or CSV sent to an Avro topic).
framed_message parse_frame(std::string_view message);

}  // namespace confluent

// A parsed Avro schema (counted reference).
class avro_schema {
 public:
  avro_schema() = default;
  // Takes over one reference the caller already owns (e.g. from avro_schema_record()).
  static avro_schema adopt(avro_schema_t schema);
  // Parses schema JSON; throws avro_error naming the problem.
  static avro_schema from_json(std::string_view json);

  avro_schema(const avro_schema& other);
  avro_schema& operator=(const avro_schema& other);
  avro_schema(avro_schema&& other) noexcept : schema_(other.schema_) { other.schema_ = nullptr; }
  avro_schema& operator=(avro_schema&& other) noexcept;
  ~avro_schema();

  avro_schema_t get() const { return schema_; }
  explicit operator bool() const { return schema_ != nullptr; }
  // Canonical-ish JSON as avro-c prints it (for registering or logging).
  std::string to_json() const;

 private:
  avro_schema_t schema_ = nullptr;
};

// A mutable generic value of one schema, reusable across messages: set fields, serialize,
// avro_value_reset (or overwrite) and repeat, without reallocating.
class avro_generic_value {
 public:
  explicit avro_generic_value(const avro_schema& schema);
  avro_generic_value(const avro_generic_value&) = delete;
  avro_generic_value& operator=(const avro_generic_value&) = delete;
  avro_generic_value(avro_generic_value&& other) noexcept;
  avro_generic_value& operator=(avro_generic_value&&) = delete;
  ~avro_generic_value();

  avro_value_t& get() { return value_; }
  avro_value_t* operator->() { return &value_; }

 private:
  avro_value_iface_t* iface_ = nullptr;
  avro_value_t value_{};
};

// Encodes values with one reusable avro-c memory writer. The first attempt writes straight into
// the caller's string with room for a size learned from earlier values; only when that is too
// small does it pay for avro_value_sizeof (a second walk of the value) and retry.
class avro_value_serializer {
 public:
  avro_value_serializer();
  avro_value_serializer(const avro_value_serializer&) = delete;
  avro_value_serializer& operator=(const avro_value_serializer&) = delete;
  ~avro_value_serializer();

  // Appends the Avro binary encoding of `value` to `out`.
  void append_to(std::string& out, avro_value_t& value);
  // Appends the Confluent header and then the encoding: one framed Kafka message.
  void append_framed(std::string& out, int32_t schema_id, avro_value_t& value);
  std::string serialize(avro_value_t& value);

 private:
  avro_writer_t writer_ = nullptr;
  size_t size_hint_ = 256;
};

// Decodes Avro binary written with the value's own schema (no schema resolution). Throws
// format_error when the bytes are truncated, malformed, or longer than one value.
class avro_value_deserializer {
 public:
  avro_value_deserializer();
  avro_value_deserializer(const avro_value_deserializer&) = delete;
  avro_value_deserializer& operator=(const avro_value_deserializer&) = delete;
  ~avro_value_deserializer();

  void read(std::string_view bytes, avro_value_t& into);

 private:
  avro_reader_t reader_ = nullptr;
};

// avro-c's generic string length counts a trailing NUL (and the binary writer drops the last
// byte of whatever it was given), so passing std::string_view sizes straight through silently
// truncates. These two helpers hide that convention; always use them for strings.
void set_avro_string(avro_value_t& value, std::string_view text);
std::string_view get_avro_string(avro_value_t& value);

// Child `index` of a record (or the branch of a union after set_branch). Throws avro_error.
avro_value_t avro_field(avro_value_t& record, size_t index);
// For a ["null", T] union: selects the null branch, or selects T and returns it.
void set_avro_null_branch(avro_value_t& union_value, int null_branch = 0);
avro_value_t set_avro_branch(avro_value_t& union_value, int branch);

// Throws avro_error("<what>: <avro_strerror()>") when rc != 0; `what` names the operation.
void check_avro(int rc, const char* what);

}  // namespace streamrec
