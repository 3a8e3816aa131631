#include "core/formats/confluent_avro.h"

#include <algorithm>
#include <string>

namespace streamrec {

void check_avro(int rc, const char* what) {
  if (rc != 0) {
    throw avro_error(std::string(what) + ": " + avro_strerror());
  }
}

namespace confluent {

void append_frame_header(std::string& out, int32_t schema_id) {
  const auto id = static_cast<uint32_t>(schema_id);
  const char header[header_size] = {
      static_cast<char>(magic_byte),       static_cast<char>((id >> 24) & 0xff), static_cast<char>((id >> 16) & 0xff),
      static_cast<char>((id >> 8) & 0xff), static_cast<char>(id & 0xff),
  };
  out.append(header, header_size);
}

std::string frame(int32_t schema_id, std::string_view avro_payload) {
  std::string out;
  out.reserve(header_size + avro_payload.size());
  append_frame_header(out, schema_id);
  out.append(avro_payload);
  return out;
}

framed_message parse_frame(std::string_view message) {
  if (message.size() < header_size) {
    throw format_error("Confluent Avro message is " + std::to_string(message.size()) +
                       " bytes, shorter than the 5-byte header (magic byte + schema id)");
  }
  const auto byte = [&](size_t i) { return static_cast<uint32_t>(static_cast<unsigned char>(message[i])); };
  if (byte(0) != magic_byte) {
    throw format_error("Confluent Avro message starts with byte " + std::to_string(byte(0)) +
                       ", not the magic byte 0: not written by a schema-registry serializer");
  }
  const uint32_t id = byte(1) << 24 | byte(2) << 16 | byte(3) << 8 | byte(4);
  return {static_cast<int32_t>(id), message.substr(header_size)};
}

}  // namespace confluent

// --- avro_schema --------------------------------------------------------------------------------

avro_schema avro_schema::adopt(avro_schema_t schema) {
  avro_schema result;
  result.schema_ = schema;
  return result;
}

avro_schema avro_schema::from_json(std::string_view json) {
  avro_schema_t schema = nullptr;
  if (avro_schema_from_json_length(json.data(), json.size(), &schema) != 0) {
    throw avro_error(std::string("invalid Avro schema: ") + avro_strerror());
  }
  return adopt(schema);
}

avro_schema::avro_schema(const avro_schema& other)
    : schema_(other.schema_ != nullptr ? avro_schema_incref(other.schema_) : nullptr) {}

avro_schema& avro_schema::operator=(const avro_schema& other) {
  if (this != &other) {
    avro_schema copy(other);
    *this = std::move(copy);
  }
  return *this;
}

avro_schema& avro_schema::operator=(avro_schema&& other) noexcept {
  if (this != &other) {
    if (schema_ != nullptr) avro_schema_decref(schema_);
    schema_ = other.schema_;
    other.schema_ = nullptr;
  }
  return *this;
}

avro_schema::~avro_schema() {
  if (schema_ != nullptr) avro_schema_decref(schema_);
}

std::string avro_schema::to_json() const {
  if (schema_ == nullptr) throw avro_error("to_json on an empty avro_schema");
  // avro-c writes JSON only into a fixed buffer; grow until it fits.
  std::string buf(1024, '\0');
  while (true) {
    avro_writer_t writer = avro_writer_memory(buf.data(), static_cast<int64_t>(buf.size()));
    if (writer == nullptr) throw avro_error(std::string("avro_writer_memory: ") + avro_strerror());
    const int rc = avro_schema_to_json(schema_, writer);
    const auto written = static_cast<size_t>(avro_writer_tell(writer));
    avro_writer_free(writer);
    if (rc == 0) {
      buf.resize(written);
      return buf;
    }
    if (buf.size() >= (size_t{1} << 30)) check_avro(rc, "avro_schema_to_json");
    buf.assign(buf.size() * 4, '\0');
  }
}

// --- avro_generic_value ---------------------------------------------------------------------------

avro_generic_value::avro_generic_value(const avro_schema& schema) {
  if (!schema) throw avro_error("avro_generic_value needs a schema");
  iface_ = avro_generic_class_from_schema(schema.get());
  if (iface_ == nullptr) {
    throw avro_error(std::string("avro_generic_class_from_schema: ") + avro_strerror());
  }
  if (avro_generic_value_new(iface_, &value_) != 0) {
    const std::string message = std::string("avro_generic_value_new: ") + avro_strerror();
    avro_value_iface_decref(iface_);
    throw avro_error(message);
  }
}

avro_generic_value::avro_generic_value(avro_generic_value&& other) noexcept
    : iface_(other.iface_), value_(other.value_) {
  other.iface_ = nullptr;
  other.value_ = avro_value_t{};
}

avro_generic_value::~avro_generic_value() {
  if (value_.iface != nullptr) avro_value_decref(&value_);
  if (iface_ != nullptr) avro_value_iface_decref(iface_);
}

// --- serializer -------------------------------------------------------------------------------------

avro_value_serializer::avro_value_serializer() {
  // The destination is replaced before every write; avro-c only needs a valid start.
  static char placeholder[1];
  writer_ = avro_writer_memory(placeholder, 0);
  if (writer_ == nullptr) throw avro_error(std::string("avro_writer_memory: ") + avro_strerror());
}

avro_value_serializer::~avro_value_serializer() { avro_writer_free(writer_); }

void avro_value_serializer::append_to(std::string& out, avro_value_t& value) {
  const size_t start = out.size();
  out.resize(start + size_hint_);
  avro_writer_memory_set_dest(writer_, out.data() + start, static_cast<int64_t>(size_hint_));
  if (avro_value_write(writer_, &value) == 0) {
    out.resize(start + static_cast<size_t>(avro_writer_tell(writer_)));
    return;
  }
  // Too small (or a real error, which the second attempt reports): size it exactly.
  size_t needed = 0;
  if (avro_value_sizeof(&value, &needed) != 0) {
    out.resize(start);
    check_avro(1, "avro_value_sizeof");
  }
  out.resize(start + needed);
  avro_writer_memory_set_dest(writer_, out.data() + start, static_cast<int64_t>(needed));
  if (avro_value_write(writer_, &value) != 0) {
    out.resize(start);
    check_avro(1, "avro_value_write");
  }
  out.resize(start + static_cast<size_t>(avro_writer_tell(writer_)));
  // Remember with headroom so a stream of similar values takes the one-pass path.
  size_hint_ = std::max(size_hint_, needed + needed / 2);
}

void avro_value_serializer::append_framed(std::string& out, int32_t schema_id, avro_value_t& value) {
  confluent::append_frame_header(out, schema_id);
  append_to(out, value);
}

std::string avro_value_serializer::serialize(avro_value_t& value) {
  std::string out;
  append_to(out, value);
  return out;
}

// --- deserializer ---------------------------------------------------------------------------------

avro_value_deserializer::avro_value_deserializer() {
  static const char placeholder[1] = {0};
  reader_ = avro_reader_memory(placeholder, 0);
  if (reader_ == nullptr) throw avro_error(std::string("avro_reader_memory: ") + avro_strerror());
}

avro_value_deserializer::~avro_value_deserializer() { avro_reader_free(reader_); }

void avro_value_deserializer::read(std::string_view bytes, avro_value_t& into) {
  avro_reader_memory_set_source(reader_, bytes.data(), static_cast<int64_t>(bytes.size()));
  avro_value_reset(&into);
  if (avro_value_read(reader_, &into) != 0) {
    throw format_error(std::string("malformed Avro data: ") + avro_strerror());
  }
  // Leftover bytes mean the writer used a different schema, which decoding with ours would
  // silently misread. avro_reader_is_eof() only works for file readers, so probe one byte.
  char probe;
  if (avro_read(reader_, &probe, 1) == 0) {
    throw format_error("Avro data has trailing bytes after one " +
                       std::string(avro_schema_type_name(avro_value_get_schema(&into))) +
                       " value: written with a different schema?");
  }
}

// --- value helpers ------------------------------------------------------------------------------------

void set_avro_string(avro_value_t& value, std::string_view text) {
  // The generic string copies `size` bytes and expects the last to be the NUL it then drops on
  // write; give it a NUL-terminated copy. thread_local keeps this allocation-free after warm-up.
  thread_local std::string scratch;
  scratch.assign(text.data(), text.size());
  check_avro(avro_value_set_string_len(&value, scratch.c_str(), scratch.size() + 1), "avro_value_set_string_len");
}

std::string_view get_avro_string(avro_value_t& value) {
  const char* text = nullptr;
  size_t size = 0;
  check_avro(avro_value_get_string(&value, &text, &size), "avro_value_get_string");
  return size == 0 ? std::string_view() : std::string_view(text, size - 1);
}

avro_value_t avro_field(avro_value_t& record, size_t index) {
  avro_value_t child;
  check_avro(avro_value_get_by_index(&record, index, &child, nullptr), "avro_value_get_by_index");
  return child;
}

void set_avro_null_branch(avro_value_t& union_value, int null_branch) {
  avro_value_t branch;
  check_avro(avro_value_set_branch(&union_value, null_branch, &branch), "avro_value_set_branch");
  check_avro(avro_value_set_null(&branch), "avro_value_set_null");
}

avro_value_t set_avro_branch(avro_value_t& union_value, int branch) {
  avro_value_t child;
  check_avro(avro_value_set_branch(&union_value, branch, &child), "avro_value_set_branch");
  return child;
}

}  // namespace streamrec
