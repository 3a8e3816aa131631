// Protobuf messages (Confluent-framed with registry schemas, or plain with an inline `.proto`)
// into COPY text lines.
//
// libprotobuf only compiles schemas: its parser turns each `.proto` text into a
// FileDescriptorProto and a DescriptorPool links them (imports, nested types, Google's
// well-known types from the generated pool). Both report errors through collectors, never by
// aborting. We then flatten the descriptors into a node table plus a plan of which fields feed
// which bindings, and read the wire format straight from the message bytes, as the Avro decoder
// does: no DynamicMessage per message, unneeded fields skipped, every length, count and depth
// checked against the bytes present, so no input reaches a CHECK of libprotobuf's and a corrupt
// message is a format_error.
//
// Mapping: scalars as their text; enums as their value names (a number the schema does not name,
// which proto3 allows, as the number); repeated fields as arrays; nested messages as JSON text or
// through dotted field paths; google.protobuf.Timestamp as an ISO timestamp; wrappers
// (google.protobuf.Int64Value, ...) as their value, NULL when absent.
//
// Absent fields: a proto3 field without presence (a plain scalar or enum) reads as its default
// (0, "", false, the first enum value), since proto3 cannot tell it from one written with that
// value; a repeated field as an empty array. A field with presence (proto3 `optional`, proto2
// fields, oneof members, message fields) that is absent leaves its column out, so the column's
// DEFAULT applies; so do the fields below an absent message. Timestamps and wrappers, whose
// absence is their way of saying null, are NULL.
#include <google/protobuf/compiler/parser.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/stubs/logging.h>

#include <charconv>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/formats/confluent_avro.h"
#include "core/formats/copy_text.h"
#include "core/formats/decoder_support.h"
#include "core/formats/json_writer.h"
#include "core/formats/number_text.h"

namespace streamrec {

namespace {

namespace gpb = google::protobuf;

constexpr int max_depth = 100;                       // libprotobuf's own default recursion limit
constexpr size_t max_schema_text = size_t{4} << 20;  // one `.proto` file
constexpr size_t max_schema_files = 256;             // a schema and its imports
constexpr int64_t max_message_indexes = 100;         // the Confluent message-index list
constexpr uint32_t max_field_number = (1u << 29) - 1;
constexpr size_t dense_field_numbers = 256;

// --- schema compilation ---------------------------------------------------------------------------

enum class pb_type : uint8_t {
  int32,
  int64,
  uint32,
  uint64,
  sint32,
  sint64,
  boolean,
  enumeration,
  fixed32,
  sfixed32,
  float32,
  fixed64,
  sfixed64,
  float64,
  string,
  bytes,
  message,
  group,
};

enum class pb_special : uint8_t { none, timestamp, wrapper, map_entry };

struct pb_field {
  uint32_t number = 0;
  pb_type type = pb_type::int32;
  bool repeated = false;
  bool presence = false;  // absent means "not set", not the default value
  int32_t child = -1;     // message node (message, group) or enum (enumeration)
  std::string name;
};

struct pb_message {
  std::string name;
  pb_special special = pb_special::none;
  std::vector<pb_field> fields;  // declaration order
  std::vector<int32_t> dense;    // field number -> field index, for small numbers
  std::unordered_map<uint32_t, uint32_t> sparse;

  int32_t find(uint32_t number) const {
    if (number < dense.size()) return dense[number];
    const auto found = sparse.find(number);
    return found == sparse.end() ? -1 : static_cast<int32_t>(found->second);
  }
  int32_t find_name(const std::string& field_name) const {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (fields[i].name == field_name) return static_cast<int32_t>(i);
    }
    return -1;
  }
};

struct pb_enum {
  std::map<int32_t, std::string> names;  // the first name of each number (aliases share numbers)
};

// What one message level feeds: per field, whole-value bindings and the plan below it.
struct field_plan {
  uint32_t field = 0;
  std::vector<uint32_t> bindings;
  int32_t child = -1;  // plan of the nested message, when a path descends into it
};
struct message_plan {
  std::vector<field_plan> fields;
  std::vector<int32_t> slot_of_field;  // field index -> index in `fields`, or -1
};

// One root message type of a schema, compiled for the decoder's bindings.
struct compiled_root {
  std::vector<pb_message> messages;
  std::vector<pb_enum> enums;
  uint32_t root = 0;
  std::vector<message_plan> plans;        // plans[0] belongs to the root message
  std::vector<uint32_t> absent_bindings;  // paths this schema lacks: their columns default
};

pb_type type_of(const gpb::FieldDescriptor& field) {
  switch (field.type()) {
    case gpb::FieldDescriptor::TYPE_INT32:
      return pb_type::int32;
    case gpb::FieldDescriptor::TYPE_INT64:
      return pb_type::int64;
    case gpb::FieldDescriptor::TYPE_UINT32:
      return pb_type::uint32;
    case gpb::FieldDescriptor::TYPE_UINT64:
      return pb_type::uint64;
    case gpb::FieldDescriptor::TYPE_SINT32:
      return pb_type::sint32;
    case gpb::FieldDescriptor::TYPE_SINT64:
      return pb_type::sint64;
    case gpb::FieldDescriptor::TYPE_BOOL:
      return pb_type::boolean;
    case gpb::FieldDescriptor::TYPE_ENUM:
      return pb_type::enumeration;
    case gpb::FieldDescriptor::TYPE_FIXED32:
      return pb_type::fixed32;
    case gpb::FieldDescriptor::TYPE_SFIXED32:
      return pb_type::sfixed32;
    case gpb::FieldDescriptor::TYPE_FLOAT:
      return pb_type::float32;
    case gpb::FieldDescriptor::TYPE_FIXED64:
      return pb_type::fixed64;
    case gpb::FieldDescriptor::TYPE_SFIXED64:
      return pb_type::sfixed64;
    case gpb::FieldDescriptor::TYPE_DOUBLE:
      return pb_type::float64;
    case gpb::FieldDescriptor::TYPE_STRING:
      return pb_type::string;
    case gpb::FieldDescriptor::TYPE_BYTES:
      return pb_type::bytes;
    case gpb::FieldDescriptor::TYPE_MESSAGE:
      return pb_type::message;
    case gpb::FieldDescriptor::TYPE_GROUP:
      return pb_type::group;
  }
  return pb_type::bytes;
}

pb_special special_of(const gpb::Descriptor& message) {
  if (message.options().map_entry()) return pb_special::map_entry;
  const std::string& name = message.full_name();
  if (name == "google.protobuf.Timestamp") return pb_special::timestamp;
  static const std::set<std::string> wrappers = {
      "google.protobuf.DoubleValue", "google.protobuf.FloatValue",  "google.protobuf.Int64Value",
      "google.protobuf.UInt64Value", "google.protobuf.Int32Value",  "google.protobuf.UInt32Value",
      "google.protobuf.BoolValue",   "google.protobuf.StringValue", "google.protobuf.BytesValue"};
  if (wrappers.count(name) != 0) return pb_special::wrapper;
  return pb_special::none;
}

// Flattens every message and enum type reachable from `root` (breadth first: no recursion on the
// depth of the type graph).
void flatten(const gpb::Descriptor* root, compiled_root& out) {
  std::unordered_map<const gpb::Descriptor*, uint32_t> message_index;
  std::unordered_map<const gpb::EnumDescriptor*, uint32_t> enum_index;
  std::deque<const gpb::Descriptor*> pending;
  const auto index_of = [&](const gpb::Descriptor* message) {
    const auto found = message_index.find(message);
    if (found != message_index.end()) return found->second;
    const auto index = static_cast<uint32_t>(out.messages.size());
    out.messages.emplace_back();
    message_index.emplace(message, index);
    pending.push_back(message);
    return index;
  };
  out.root = index_of(root);
  while (!pending.empty()) {
    const gpb::Descriptor* message = pending.front();
    pending.pop_front();
    pb_message node;
    node.name = message->full_name();
    node.special = special_of(*message);
    for (int i = 0; i < message->field_count(); ++i) {
      const gpb::FieldDescriptor& descriptor = *message->field(i);
      pb_field field;
      field.number = static_cast<uint32_t>(descriptor.number());
      field.type = type_of(descriptor);
      field.repeated = descriptor.is_repeated();
      field.presence = descriptor.has_presence();
      field.name = descriptor.name();
      if (field.type == pb_type::message || field.type == pb_type::group) {
        field.child = static_cast<int32_t>(index_of(descriptor.message_type()));
      } else if (field.type == pb_type::enumeration) {
        const gpb::EnumDescriptor* enumeration = descriptor.enum_type();
        auto found = enum_index.find(enumeration);
        if (found == enum_index.end()) {
          pb_enum values;
          for (int v = 0; v < enumeration->value_count(); ++v) {
            values.names.emplace(enumeration->value(v)->number(), enumeration->value(v)->name());
          }
          found = enum_index.emplace(enumeration, static_cast<uint32_t>(out.enums.size())).first;
          out.enums.push_back(std::move(values));
        }
        field.child = static_cast<int32_t>(found->second);
      }
      const auto field_index = static_cast<uint32_t>(node.fields.size());
      if (field.number < dense_field_numbers) {
        if (node.dense.size() <= field.number) node.dense.resize(field.number + 1, -1);
        node.dense[field.number] = static_cast<int32_t>(field_index);
      } else {
        node.sparse.emplace(field.number, field_index);
      }
      node.fields.push_back(std::move(field));
    }
    out.messages[message_index.at(message)] = std::move(node);
  }
}

// A path can descend through a field that holds one plain message (not a list, a map, a
// timestamp or a wrapper, which are values).
bool descendable(const compiled_root& root, const pb_field& field) {
  return field.type == pb_type::message && !field.repeated &&
         root.messages[static_cast<size_t>(field.child)].special == pb_special::none;
}

bool resolvable(const compiled_root& root, uint32_t message, const std::vector<std::string>& parts, size_t k) {
  const pb_message& m = root.messages[message];
  const int32_t f = m.find_name(parts[k]);
  if (f < 0) return false;
  const pb_field& field = m.fields[static_cast<size_t>(f)];
  if (field.type == pb_type::group) return false;
  if (k + 1 == parts.size()) return true;
  return descendable(root, field) && resolvable(root, static_cast<uint32_t>(field.child), parts, k + 1);
}

void add_to_plan(compiled_root& root, uint32_t plan, uint32_t message, const std::vector<std::string>& parts, size_t k,
                 uint32_t binding) {
  const pb_message& m = root.messages[message];
  const auto f = static_cast<uint32_t>(m.find_name(parts[k]));
  if (root.plans[plan].slot_of_field.empty()) root.plans[plan].slot_of_field.assign(m.fields.size(), -1);
  int32_t slot = root.plans[plan].slot_of_field[f];
  if (slot < 0) {
    slot = static_cast<int32_t>(root.plans[plan].fields.size());
    root.plans[plan].slot_of_field[f] = slot;
    root.plans[plan].fields.push_back(field_plan{f, {}, -1});
  }
  if (k + 1 == parts.size()) {
    root.plans[plan].fields[static_cast<size_t>(slot)].bindings.push_back(binding);
    return;
  }
  int32_t child = root.plans[plan].fields[static_cast<size_t>(slot)].child;
  if (child < 0) {
    child = static_cast<int32_t>(root.plans.size());
    root.plans[plan].fields[static_cast<size_t>(slot)].child = child;
    root.plans.emplace_back();
  }
  add_to_plan(root, static_cast<uint32_t>(child), static_cast<uint32_t>(root.messages[message].fields[f].child), parts,
              k + 1, binding);
}

std::unique_ptr<compiled_root> compile_root(const gpb::Descriptor* root, const std::vector<column_binding>& bindings) {
  auto compiled = std::make_unique<compiled_root>();
  flatten(root, *compiled);
  compiled->plans.emplace_back();
  compiled->plans[0].slot_of_field.assign(compiled->messages[compiled->root].fields.size(), -1);
  for (size_t i = 0; i < bindings.size(); ++i) {
    if (bindings[i].metadata != metadata_field::none) continue;
    const std::vector<std::string> parts = split_field_path(bindings[i]);
    if (resolvable(*compiled, compiled->root, parts, 0)) {
      add_to_plan(*compiled, 0, compiled->root, parts, 0, static_cast<uint32_t>(i));
    } else {
      compiled->absent_bindings.push_back(static_cast<uint32_t>(i));
    }
  }
  return compiled;
}

// --- `.proto` texts into a descriptor pool ----------------------------------------------------------

class parse_errors final : public gpb::io::ErrorCollector {
 public:
  void AddError(int line, int column, const std::string& message) override {
    if (first_.empty()) first_ = "line " + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " + message;
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

class build_errors final : public gpb::DescriptorPool::ErrorCollector {
 public:
  void AddError(const std::string& filename, const std::string& element_name, const gpb::Message*, ErrorLocation,
                const std::string& message) override {
    if (first_.empty()) first_ = filename + (element_name.empty() ? "" : " (" + element_name + ")") + ": " + message;
  }
  const std::string& first() const { return first_; }

 private:
  std::string first_;
};

// One schema (a registry id, or the inline `.proto`) linked with its imports.
struct proto_schema {
  std::unique_ptr<gpb::DescriptorPool> pool;
  const gpb::FileDescriptor* file = nullptr;
  std::string error;  // set: every message with this schema is a format_error
  std::map<std::vector<int64_t>, std::unique_ptr<compiled_root>> roots;
};

constexpr const char* main_file_name = "streamrec_schema.proto";

// Throws std::runtime_error naming the problem.
std::unique_ptr<proto_schema> build_schema(const protobuf_schema_files& files) {
  if (files.imports.size() + 1 > max_schema_files) {
    throw std::runtime_error("more than " + std::to_string(max_schema_files) + " imported files");
  }
  // The parser's warnings (a file without `syntax`) would go to stderr, the server log.
  const gpb::LogSilencer quiet;
  std::map<std::string, gpb::FileDescriptorProto> parsed;
  const auto parse = [&](const std::string& name, const std::string& text) {
    if (text.size() > max_schema_text) throw std::runtime_error(name + ": more than 4 MB of schema text");
    gpb::FileDescriptorProto proto;
    gpb::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
    parse_errors errors;
    gpb::io::Tokenizer tokenizer(&input, &errors);
    gpb::compiler::Parser parser;
    parser.RecordErrorsTo(&errors);
    if (!parser.Parse(&tokenizer, &proto) || !errors.first().empty()) {
      throw std::runtime_error(name + ": " + (errors.first().empty() ? "does not parse" : errors.first()));
    }
    proto.set_name(name);
    parsed[name] = std::move(proto);
  };
  parse(main_file_name, files.schema);
  const gpb::DescriptorPool* generated = gpb::DescriptorPool::generated_pool();
  for (const auto& [name, text] : files.imports) {
    // A registry may list a well-known type among the references: the built-in one serves.
    if (parsed.count(name) != 0 || generated->FindFileByName(name) != nullptr) continue;
    parse(name, text);
  }

  auto schema = std::make_unique<proto_schema>();
  schema->pool = std::make_unique<gpb::DescriptorPool>(generated);
  // Dependencies first, without recursion: a file is built once all its imports are.
  std::set<std::string> built;
  for (size_t round = 0; built.size() < parsed.size(); ++round) {
    if (round > parsed.size()) throw std::runtime_error("the imports form a cycle");
    for (const auto& [name, proto] : parsed) {
      if (built.count(name) != 0) continue;
      bool ready = true;
      for (const std::string& dependency : proto.dependency()) {
        if (parsed.count(dependency) != 0 && built.count(dependency) == 0) ready = false;
        if (parsed.count(dependency) == 0 && generated->FindFileByName(dependency) == nullptr) {
          std::string problem = name;
          problem += ": import \"";
          problem += dependency;
          problem += "\" is neither a reference nor a well-known type";
          throw std::runtime_error(problem);
        }
      }
      if (!ready) continue;
      build_errors errors;
      const gpb::FileDescriptor* file = schema->pool->BuildFileCollectingErrors(proto, &errors);
      if (file == nullptr) throw std::runtime_error(errors.first().empty() ? name + ": does not link" : errors.first());
      built.insert(name);
      if (name == main_file_name) schema->file = file;
    }
  }
  if (schema->file->message_type_count() == 0) throw std::runtime_error("the schema defines no message type");
  return schema;
}

// --- wire reading ------------------------------------------------------------------------------------

enum wire_type : uint8_t {
  wire_varint = 0,
  wire_fixed64 = 1,
  wire_length = 2,
  wire_start = 3,
  wire_end = 4,
  wire_fixed32 = 5
};

wire_type expected_wire(pb_type type) {
  switch (type) {
    case pb_type::fixed64:
    case pb_type::sfixed64:
    case pb_type::float64:
      return wire_fixed64;
    case pb_type::fixed32:
    case pb_type::sfixed32:
    case pb_type::float32:
      return wire_fixed32;
    case pb_type::string:
    case pb_type::bytes:
    case pb_type::message:
      return wire_length;
    case pb_type::group:
      return wire_start;
    default:
      return wire_varint;
  }
}

bool packable(pb_type type) { return expected_wire(type) != wire_length && type != pb_type::group; }

struct span {
  const uint8_t* begin;
  const uint8_t* end;
};

// The spans of one message value: its occurrences merge. Nearly always one, kept inline.
class span_list {
 public:
  span_list() = default;
  explicit span_list(span one) : one_(one), count_(1) {}
  void push_back(span s) {
    if (count_ == 0) {
      one_ = s;
    } else {
      if (count_ == 1) more_.push_back(one_);
      more_.push_back(s);
    }
    ++count_;
  }
  const span* data() const { return count_ > 1 ? more_.data() : &one_; }
  size_t size() const { return count_; }

 private:
  span one_{nullptr, nullptr};
  size_t count_ = 0;
  std::vector<span> more_;
};

// One occurrence of a field in a message's bytes.
struct occurrence {
  uint64_t value;  // varint or fixed value
  const uint8_t* begin;
  const uint8_t* end;  // length-delimited payload
  int32_t next;        // next occurrence of the same slot, -1 at the end
  uint8_t wire;
};

void append_float(std::string& out, float value) {
  if (std::isnan(value) || std::isinf(value)) {
    append_double(out, static_cast<double>(value));
    return;
  }
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);
  out.append(buf, res.ptr);
}

// --- the decoder -----------------------------------------------------------------------------------------

class protobuf_decoder final : public decoder {
 public:
  protobuf_decoder(const decoder_config& config, protobuf_schema_fetcher fetch)
      : bindings_(config.columns), fetch_(std::move(fetch)) {
    if (fetch_ != nullptr) return;
    if (config.inline_schema.empty()) {
      throw std::invalid_argument("protobuf needs a schema registry (Confluent framing) or an inline .proto");
    }
    try {
      inline_ = build_schema(protobuf_schema_files{config.inline_schema, {}});
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(std::string("inline .proto: ") + e.what());
    }
    const gpb::Descriptor* message = find_message(*inline_, config.proto_message);
    if (message == nullptr) {
      throw std::invalid_argument("inline .proto: no message type \"" + config.proto_message +
                                  "\" (give its full name, package included)");
    }
    inline_root_ = compile_root(message, bindings_);
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    if (!message.payload) throw format_error("protobuf message has a null payload (tombstone)");
    std::string_view body = *message.payload;
    begin_ = reinterpret_cast<const uint8_t*>(body.data());
    p_ = begin_;
    end_ = begin_ + body.size();
    const compiled_root* root = inline_root_.get();
    if (fetch_ != nullptr) {
      if (body.size() < confluent::header_size) {
        throw format_error("Confluent Protobuf message is " + std::to_string(body.size()) +
                           " bytes, shorter than the 5-byte header (magic byte + schema id)");
      }
      if (begin_[0] != confluent::magic_byte) {
        throw format_error("Confluent Protobuf message starts with byte " + std::to_string(begin_[0]) +
                           ", not the magic byte 0: not written by a schema-registry serializer");
      }
      const auto schema_id = static_cast<int32_t>(uint32_t{begin_[1]} << 24 | uint32_t{begin_[2]} << 16 |
                                                  uint32_t{begin_[3]} << 8 | uint32_t{begin_[4]});
      proto_schema& schema = schema_for(schema_id);
      p_ = begin_ + confluent::header_size;
      root = &root_for(schema, schema_id);
    }
    root_ = root;

    slots_.reset(bindings_.size(), value_slots::state::absent);
    occurrences_.clear();
    heads_.clear();
    const span whole{p_, end_};
    walk(0, root->root, &whole, 1, 0);
    append_slots_line(line, present, bindings_, slots_, message, kafka_timestamps_);
    return true;
  }

 private:
  static const gpb::Descriptor* find_message(const proto_schema& schema, const std::string& name) {
    if (name.empty()) return schema.file->message_type(0);
    if (const gpb::Descriptor* found = schema.pool->FindMessageTypeByName(name)) return found;
    // A simple name, when one message type of the file (nested ones included) has it.
    const gpb::Descriptor* match = nullptr;
    std::vector<const gpb::Descriptor*> pending;
    pending.reserve(static_cast<size_t>(schema.file->message_type_count()));
    for (int i = 0; i < schema.file->message_type_count(); ++i) pending.push_back(schema.file->message_type(i));
    while (!pending.empty()) {
      const gpb::Descriptor* d = pending.back();
      pending.pop_back();
      if (d->name() == name) {
        if (match != nullptr) return nullptr;
        match = d;
      }
      for (int i = 0; i < d->nested_type_count(); ++i) pending.push_back(d->nested_type(i));
    }
    return match;
  }

  proto_schema& schema_for(int32_t schema_id) {
    if (last_schema_ != nullptr && schema_id == last_schema_id_) return *last_schema_;
    auto found = by_id_.find(schema_id);
    if (found == by_id_.end()) {
      if (schema_id < 0) {
        throw format_error("schema id " + std::to_string(schema_id) +
                           " is negative: no schema registry assigns such an id");
      }
      const protobuf_schema_files files = fetch_known(schema_id);  // transient_error: retry the batch
      std::unique_ptr<proto_schema> schema;
      try {
        schema = build_schema(files);
      } catch (const std::runtime_error& e) {
        schema = std::make_unique<proto_schema>();
        schema->error = "schema id " + std::to_string(schema_id) + " is not a usable Protobuf schema: " + e.what();
      }
      found = by_id_.emplace(schema_id, std::move(schema)).first;
    }
    if (!found->second->error.empty()) throw format_error(found->second->error);
    last_schema_id_ = schema_id;
    last_schema_ = found->second.get();
    last_path_.clear();
    last_root_ = nullptr;
    return *last_schema_;
  }

  // Reads the Confluent message-index list after the header and returns the compiled type.
  const compiled_root& root_for(proto_schema& schema, int32_t schema_id) {
    // A single 0 stands for [0], the first message type: what nearly every producer writes.
    const int64_t count = read_zigzag_index();
    path_.clear();
    if (count == 0) {
      path_.push_back(0);
    } else {
      if (count < 0 || count > max_message_indexes || count > end_ - p_) {
        fail("bad message-index list: " + std::to_string(count) + " entries in the " + std::to_string(end_ - p_) +
             " bytes left");
      }
      for (int64_t i = 0; i < count; ++i) {
        const int64_t index = read_zigzag_index();
        if (index < 0) fail("negative message index " + std::to_string(index));
        path_.push_back(index);
      }
    }
    if (last_root_ != nullptr && path_ == last_path_) return *last_root_;
    auto found = schema.roots.find(path_);
    if (found == schema.roots.end()) {
      const gpb::Descriptor* message = nullptr;
      for (size_t i = 0; i < path_.size(); ++i) {
        const int count_here = i == 0 ? schema.file->message_type_count() : message->nested_type_count();
        if (path_[i] >= count_here) {
          throw format_error("message index " + std::to_string(path_[i]) + " at level " + std::to_string(i) +
                             " is out of range: schema id " + std::to_string(schema_id) + " has " +
                             std::to_string(count_here) + " message types there");
        }
        const int at = static_cast<int>(path_[i]);
        message = i == 0 ? schema.file->message_type(at) : message->nested_type(at);
      }
      found = schema.roots.emplace(path_, compile_root(message, bindings_)).first;
    }
    last_path_ = path_;
    last_root_ = found->second.get();
    return *last_root_;
  }

  int64_t read_zigzag_index() {
    const uint64_t raw = read_varint();
    return static_cast<int64_t>(raw >> 1) ^ -static_cast<int64_t>(raw & 1);
  }

  protobuf_schema_files fetch_known(int32_t schema_id) {
    const auto now = std::chrono::steady_clock::now();
    if (const auto unknown = unknown_ids_.find(schema_id); unknown != unknown_ids_.end()) {
      if (now < unknown->second.until) throw format_error(unknown->second.error);
      unknown_ids_.erase(unknown);
    }
    try {
      return fetch_(schema_id);
    } catch (const format_error& e) {
      if (unknown_ids_.size() >= max_unknown_ids) unknown_ids_.clear();
      unknown_ids_[schema_id] = unknown_id{e.what(), now + unknown_id_memory};
      throw;
    }
  }

  void expect_output(size_t more) const {
    const size_t so_far = slots_.buffered() + scratch_.size() + element_scratch_.size();
    if (so_far + more > max_decoded_bytes()) too_large(so_far + more);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw format_error("malformed Protobuf data at byte offset " + std::to_string(p_ - begin_) + ": " + what);
  }

  const pb_message& message_node(int32_t index) const { return root_->messages[static_cast<size_t>(index)]; }

  // --- primitive reads ------------------------------------------------------------------------------

  uint64_t read_varint() {
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      if (p_ == end_) fail("data ended inside a varint");
      const uint8_t byte = *p_++;
      if (shift == 63 && (byte & 0x7e) != 0) fail("varint overflows 64 bits");
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) return value;
      if (shift == 63) fail("varint longer than 10 bytes");
    }
  }

  uint64_t read_fixed(int size) {
    if (end_ - p_ < size) fail("data ended inside a fixed-size value");
    uint64_t value = 0;
    for (int i = size - 1; i >= 0; --i) value = value << 8 | p_[i];
    p_ += size;
    return value;
  }

  span read_length_delimited() {
    const uint64_t length = read_varint();
    if (length > static_cast<uint64_t>(end_ - p_)) {
      fail("length " + std::to_string(length) + " exceeds the " + std::to_string(end_ - p_) + " bytes left");
    }
    const span s{p_, p_ + length};
    p_ += length;
    return s;
  }

  // Reads a tag: returns false at the end of the current span.
  bool read_tag(uint32_t& number, uint8_t& wire) {
    if (p_ == end_) return false;
    const uint64_t tag = read_varint();
    wire = static_cast<uint8_t>(tag & 7);
    const uint64_t field = tag >> 3;
    if (field == 0 || field > max_field_number) fail("field number " + std::to_string(field) + " is out of range");
    number = static_cast<uint32_t>(field);
    if (wire == 6 || wire == 7) fail("wire type " + std::to_string(wire) + " does not exist");
    return true;
  }

  // Skips a group's fields up to its end-group tag.
  void skip_group(uint32_t number, int depth) {
    if (depth > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
    uint32_t inner;
    uint8_t wire;
    while (read_tag(inner, wire)) {
      if (wire == wire_end) {
        if (inner != number)
          fail("end-group tag of field " + std::to_string(inner) + " closes group " + std::to_string(number));
        return;
      }
      skip_value(inner, wire, depth + 1);
    }
    fail("group of field " + std::to_string(number) + " is not closed");
  }

  void skip_value(uint32_t number, uint8_t wire, int depth) {
    switch (wire) {
      case wire_varint:
        read_varint();
        return;
      case wire_fixed64:
        read_fixed(8);
        return;
      case wire_length:
        read_length_delimited();
        return;
      case wire_start:
        skip_group(number, depth);
        return;
      case wire_fixed32:
        read_fixed(4);
        return;
      default:
        fail("unexpected end-group tag of field " + std::to_string(number));
    }
  }

  // Reads the fields of a message held in `spans` (several when a message field occurs more than
  // once: its occurrences merge) and links the occurrences of each wanted field. `slot_of_field`
  // maps field indexes to slots (null: the slot is the field index). Heads and tails of each slot
  // sit at heads_[base + 2 * slot].
  size_t collect(const pb_message& m, const span* spans, size_t span_count, const int32_t* slot_of_field, size_t slots,
                 int depth) {
    const size_t base = heads_.size();
    heads_.resize(base + 2 * slots, -1);
    const uint8_t* saved_begin = p_;
    const uint8_t* saved_end = end_;
    for (size_t s = 0; s < span_count; ++s) {
      p_ = spans[s].begin;
      end_ = spans[s].end;
      uint32_t number;
      uint8_t wire;
      while (read_tag(number, wire)) {
        const int32_t f = m.find(number);
        if (f < 0) {
          skip_value(number, wire, depth);  // unknown to this schema: skipped, as protobuf does
          continue;
        }
        const pb_field& field = m.fields[static_cast<size_t>(f)];
        const wire_type expected = expected_wire(field.type);
        const bool packed = wire == wire_length && field.repeated && packable(field.type);
        if (wire != expected && !packed) {
          fail("field " + std::to_string(number) + " (" + field.name + ") has wire type " + std::to_string(wire) +
               ", but its type takes wire type " + std::to_string(expected));
        }
        const int32_t slot = slot_of_field == nullptr ? f : slot_of_field[f];
        if (slot < 0) {
          skip_value(number, wire, depth);
          continue;
        }
        occurrence o{0, nullptr, nullptr, -1, wire};
        const uint8_t* value_start = p_;
        switch (wire) {
          case wire_varint:
            o.value = read_varint();
            break;
          case wire_fixed64:
            o.value = read_fixed(8);
            break;
          case wire_fixed32:
            o.value = read_fixed(4);
            break;
          case wire_length: {
            const span payload = read_length_delimited();
            o.begin = payload.begin;
            o.end = payload.end;
            break;
          }
          default:  // a group: kept as its bytes, which are only ever skipped or rendered as null
            skip_group(number, depth + 1);
            o.begin = value_start;
            o.end = p_;
            break;
        }
        const auto index = static_cast<int32_t>(occurrences_.size());
        occurrences_.push_back(o);
        int32_t& head = heads_[base + 2 * static_cast<size_t>(slot)];
        int32_t& tail = heads_[base + 2 * static_cast<size_t>(slot) + 1];
        if (head < 0) {
          head = index;
        } else {
          occurrences_[static_cast<size_t>(tail)].next = index;
        }
        tail = index;
      }
    }
    p_ = saved_begin;
    end_ = saved_end;
    return base;
  }

  int32_t head(size_t base, size_t slot) const { return heads_[base + 2 * slot]; }
  int32_t tail(size_t base, size_t slot) const { return heads_[base + 2 * slot + 1]; }

  // The spans of a message field's occurrences (which merge into one message).
  void gather_spans(int32_t first, span_list& out) const {
    for (int32_t o = first; o >= 0; o = occurrences_[static_cast<size_t>(o)].next) {
      const occurrence& occ = occurrences_[static_cast<size_t>(o)];
      out.push_back(span{occ.begin, occ.end});
    }
  }

  // --- walking plans ------------------------------------------------------------------------------

  void walk(uint32_t plan_index, uint32_t message_index, const span* spans, size_t span_count, int depth) {
    if (depth > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
    const message_plan& plan = root_->plans[plan_index];
    const pb_message& m = root_->messages[message_index];
    const size_t occurrences_base = occurrences_.size();
    const size_t base = collect(m, spans, span_count, plan.slot_of_field.data(), plan.fields.size(), depth);
    for (size_t slot = 0; slot < plan.fields.size(); ++slot) {
      const field_plan& fp = root_->plans[plan_index].fields[slot];
      const pb_field& field = m.fields[fp.field];
      for (const uint32_t binding : fp.bindings)
        render_column(field, head(base, slot), tail(base, slot), binding, depth);
      if (fp.child < 0) continue;
      if (head(base, slot) < 0) continue;  // an absent message: the columns below it default
      span_list child_spans;
      gather_spans(head(base, slot), child_spans);
      walk(static_cast<uint32_t>(fp.child), static_cast<uint32_t>(field.child), child_spans.data(), child_spans.size(),
           depth + 1);
    }
    heads_.resize(base);
    occurrences_.resize(occurrences_base);
  }

  // --- scalars ---------------------------------------------------------------------------------------

  enum class scalar_class { number, non_finite, boolean, text, bytes };
  struct scalar {
    scalar_class cls;
    std::string_view text;
    bool flag = false;
  };

  // The text of a non-message value; `raw` is the varint or fixed bits, `payload` the bytes of a
  // string or bytes field. Plain integers become timestamps or dates for columns of that kind.
  scalar render_scalar(const pb_field& field, uint64_t raw, span payload, column_kind kind) {
    scalar_text_.clear();
    int64_t integer = 0;
    switch (field.type) {
      case pb_type::boolean:
        return {scalar_class::boolean, {}, raw != 0};
      case pb_type::string:
      case pb_type::bytes: {
        const std::string_view bytes(reinterpret_cast<const char*>(payload.begin),
                                     static_cast<size_t>(payload.end - payload.begin));
        return {field.type == pb_type::string ? scalar_class::text : scalar_class::bytes, bytes};
      }
      case pb_type::enumeration: {
        const auto value = static_cast<int32_t>(static_cast<uint32_t>(raw));
        const pb_enum& e = root_->enums[static_cast<size_t>(field.child)];
        if (const auto found = e.names.find(value); found != e.names.end()) return {scalar_class::text, found->second};
        append_int(scalar_text_, value);  // an open enum's unnamed value
        return {scalar_class::text, scalar_text_};
      }
      case pb_type::float32:
      case pb_type::float64: {
        double value;
        if (field.type == pb_type::float32) {
          const auto bits = static_cast<uint32_t>(raw);
          float f;
          std::memcpy(&f, &bits, sizeof f);
          value = f;
          if (kind != column_kind::timestamp) append_float(scalar_text_, f);
        } else {
          std::memcpy(&value, &raw, sizeof value);
          if (kind != column_kind::timestamp) append_double(scalar_text_, value);
        }
        if (!std::isfinite(value)) {
          if (kind == column_kind::timestamp) append_double(scalar_text_, value);
          return {scalar_class::non_finite, scalar_text_};
        }
        if (kind == column_kind::timestamp) {
          append_epoch_millis_iso(scalar_text_, value, timestamps_);
          return {scalar_class::text, scalar_text_};
        }
        return {scalar_class::number, scalar_text_};
      }
      case pb_type::uint64:
      case pb_type::fixed64:
        if (raw > static_cast<uint64_t>(INT64_MAX) || (kind != column_kind::timestamp && kind != column_kind::date)) {
          append_uint(scalar_text_, raw);
          return {scalar_class::number, scalar_text_};
        }
        integer = static_cast<int64_t>(raw);
        break;
      case pb_type::int32:
      case pb_type::sfixed32:
        integer = static_cast<int32_t>(static_cast<uint32_t>(raw));
        break;
      case pb_type::uint32:
      case pb_type::fixed32:
        integer = static_cast<uint32_t>(raw);
        break;
      case pb_type::sint32: {
        const auto bits = static_cast<uint32_t>(raw);
        integer = static_cast<int32_t>((bits >> 1) ^ (~(bits & 1) + 1));
        break;
      }
      case pb_type::sint64:
        integer = static_cast<int64_t>(raw >> 1) ^ -static_cast<int64_t>(raw & 1);
        break;
      case pb_type::int64:
      case pb_type::sfixed64:
        integer = static_cast<int64_t>(raw);
        break;
      case pb_type::message:
      case pb_type::group:
        fail("internal: not a scalar");
    }
    if (kind == column_kind::timestamp) {
      append_epoch_millis_iso(scalar_text_, integer, timestamps_);
      return {scalar_class::text, scalar_text_};
    }
    if (kind == column_kind::date) {
      append_epoch_days_date(scalar_text_, integer);
      return {scalar_class::text, scalar_text_};
    }
    append_int(scalar_text_, integer);
    return {scalar_class::number, scalar_text_};
  }

  // The fields of a Timestamp or a wrapper, merged over its occurrences.
  void read_small_message(int32_t message, const span_list& spans, uint64_t values[2], bool present[2],
                          span payloads[2], int depth) {
    if (depth > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
    const pb_message& m = message_node(message);
    for (size_t f = 0; f < 2; ++f) {
      present[f] = false;
      values[f] = 0;
      payloads[f] = span{nullptr, nullptr};
    }
    const uint8_t* saved_p = p_;
    const uint8_t* saved_end = end_;
    for (size_t s = 0; s < spans.size(); ++s) {
      p_ = spans.data()[s].begin;
      end_ = spans.data()[s].end;
      uint32_t number;
      uint8_t wire;
      while (read_tag(number, wire)) {
        const int32_t f = m.find(number);
        if (f < 0 || f > 1) {
          skip_value(number, wire, depth);
          continue;
        }
        const pb_field& field = m.fields[static_cast<size_t>(f)];
        const wire_type expected = expected_wire(field.type);
        if (wire != expected) {
          fail("field " + std::to_string(number) + " (" + field.name + ") of " + m.name + " has wire type " +
               std::to_string(wire) + ", but its type takes wire type " + std::to_string(expected));
        }
        present[f] = true;
        switch (wire) {
          case wire_varint:
            values[f] = read_varint();
            break;
          case wire_fixed64:
            values[f] = read_fixed(8);
            break;
          case wire_fixed32:
            values[f] = read_fixed(4);
            break;
          default:
            payloads[f] = read_length_delimited();
            break;
        }
      }
    }
    p_ = saved_p;
    end_ = saved_end;
  }

  // An ISO timestamp (microseconds) of a google.protobuf.Timestamp.
  void render_timestamp(int32_t message, const span_list& spans, std::string& out, int depth) {
    uint64_t values[2];
    bool present[2];
    span payloads[2];
    read_small_message(message, spans, values, present, payloads, depth);
    const auto seconds = static_cast<int64_t>(values[0]);
    const auto nanos = static_cast<int32_t>(static_cast<uint32_t>(values[1]));
    // The range google.protobuf.Timestamp allows: 0001-01-01 to 9999-12-31.
    if (seconds < -62135596800 || seconds > 253402300799) {
      fail("Timestamp seconds " + std::to_string(seconds) + " out of range");
    }
    if (nanos < 0 || nanos > 999999999) fail("Timestamp nanos " + std::to_string(nanos) + " out of range");
    // Milliseconds when that is exact (shorter text), else microseconds (PostgreSQL's precision).
    const int32_t micros = nanos / 1000;
    timestamps_.append_iso(out, seconds * 1000000 + micros,
                           micros % 1000 == 0 ? time_precision::millis : time_precision::micros);
  }

  // --- columns -------------------------------------------------------------------------------------

  void render_column(const pb_field& field, int32_t first, int32_t last, uint32_t binding, int depth) {
    const column_kind kind = bindings_[binding].kind;
    if (first < 0 && !field.repeated) {
      if (field.type == pb_type::message) {
        const pb_special special = message_node(field.child).special;
        if (special == pb_special::timestamp || special == pb_special::wrapper) slots_.set_null(binding);
        return;  // any other message: absent, the column defaults
      }
      if (field.presence) return;  // proto3 optional, proto2, oneof: absent, the column defaults
    }
    std::string& out = slots_.begin(binding);
    if (kind == column_kind::json || is_map(field) ||
        (field.type == pb_type::message && !field.repeated && message_node(field.child).special == pb_special::none)) {
      scratch_.clear();
      render_field_json(field, first, last, scratch_, depth);
      append_copy_escaped(out, scratch_);
    } else if (field.repeated) {
      scratch_.clear();
      pg_array_literal literal(scratch_);
      literal.begin_array();
      for_each_element(field, first, depth, [&](uint64_t raw, span payload) {
        render_element(field, raw, payload, literal, depth);
        expect_output(0);
      });
      literal.end_array();
      append_copy_escaped(out, scratch_);
    } else if (field.type == pb_type::message) {
      span_list spans;
      gather_spans(first, spans);
      if (!render_special_text(field, spans, out, kind, depth)) {
        slots_.set_null(binding);
        return;
      }
    } else if (first < 0) {
      append_default(field, out, kind);
    } else {
      const occurrence& o = occurrences_[static_cast<size_t>(last)];
      append_scalar_copy(out, render_scalar(field, o.value, span{o.begin, o.end}, kind), kind);
    }
    slots_.commit(binding);
    scratch_.clear();
    expect_output(0);
  }

  bool is_map(const pb_field& field) const {
    return field.type == pb_type::message && message_node(field.child).special == pb_special::map_entry;
  }

  static void append_scalar_copy(std::string& out, const scalar& value, column_kind kind) {
    switch (value.cls) {
      case scalar_class::number:
      case scalar_class::non_finite:
        out.append(value.text);
        return;
      case scalar_class::boolean:
        out.push_back(value.flag ? 't' : 'f');
        return;
      case scalar_class::text:
        append_copy_escaped(out, value.text);
        return;
      case scalar_class::bytes:
        if (kind == column_kind::bytea) {
          append_copy_bytea(out, value.text);
        } else {
          append_copy_escaped(out, value.text);
        }
        return;
    }
  }

  // The default of an absent proto3 scalar.
  void append_default(const pb_field& field, std::string& out, column_kind kind) {
    append_scalar_copy(out, render_scalar(field, 0, span{nullptr, nullptr}, kind), kind);
  }

  // A Timestamp's or a wrapper's value as COPY text; false for a value that is NULL.
  bool render_special_text(const pb_field& field, const span_list& spans, std::string& out, column_kind kind,
                           int depth) {
    const pb_message& m = message_node(field.child);
    if (m.special == pb_special::timestamp) {
      scalar_text_.clear();
      render_timestamp(field.child, spans, scalar_text_, depth + 1);
      out.append(scalar_text_);
      return true;
    }
    uint64_t values[2];
    bool present[2];
    span payloads[2];
    read_small_message(field.child, spans, values, present, payloads, depth + 1);
    const pb_field& value_field = m.fields[0];
    append_scalar_copy(out, render_scalar(value_field, values[0], payloads[0], kind), kind);
    return true;
  }

  // Calls `each(raw, payload)` for every element of a repeated field, packed runs expanded.
  template <typename Each>
  void for_each_element(const pb_field& field, int32_t first, int depth, Each each) {
    (void)depth;
    for (int32_t o = first; o >= 0; o = occurrences_[static_cast<size_t>(o)].next) {
      const occurrence occ = occurrences_[static_cast<size_t>(o)];
      if (occ.wire != wire_length || !packable(field.type)) {
        each(occ.value, span{occ.begin, occ.end});
        continue;
      }
      const uint8_t* saved_p = p_;
      const uint8_t* saved_end = end_;
      p_ = occ.begin;
      end_ = occ.end;
      const wire_type element_wire = expected_wire(field.type);
      while (p_ != end_) {
        uint64_t raw = 0;
        if (element_wire == wire_varint) {
          raw = read_varint();
        } else {
          raw = read_fixed(element_wire == wire_fixed64 ? 8 : 4);
        }
        each(raw, span{nullptr, nullptr});
      }
      p_ = saved_p;
      end_ = saved_end;
    }
  }

  void render_element(const pb_field& field, uint64_t raw, span payload, pg_array_literal& literal, int depth) {
    if (field.type == pb_type::group) {
      literal.null_element();
      return;
    }
    if (field.type == pb_type::message) {
      const pb_message& m = message_node(field.child);
      const span_list spans(payload);
      element_scratch_.clear();
      if (m.special == pb_special::none || m.special == pb_special::map_entry) {
        render_message_json(field.child, spans, element_scratch_, depth + 1);
        literal.element(element_scratch_);
      } else if (m.special == pb_special::timestamp) {
        render_timestamp(field.child, spans, element_scratch_, depth + 1);
        literal.plain_element(element_scratch_);
      } else {
        uint64_t values[2];
        bool present[2];
        span payloads[2];
        read_small_message(field.child, spans, values, present, payloads, depth + 1);
        append_element(m.fields[0], values[0], payloads[0], literal);
      }
      element_scratch_.clear();
      return;
    }
    append_element(field, raw, payload, literal);
  }

  void append_element(const pb_field& field, uint64_t raw, span payload, pg_array_literal& literal) {
    const scalar value = render_scalar(field, raw, payload, column_kind::array);
    switch (value.cls) {
      case scalar_class::number:
      case scalar_class::non_finite:
        literal.plain_element(value.text);
        return;
      case scalar_class::boolean:
        literal.plain_element(value.flag ? "t" : "f");
        return;
      case scalar_class::text:
        literal.element(value.text);
        return;
      case scalar_class::bytes:
        hex_.clear();
        append_bytea_hex(hex_, value.text);
        literal.element(hex_);
        return;
    }
  }

  // --- JSON ------------------------------------------------------------------------------------------

  void append_json_scalar(std::string& out, const scalar& value) {
    switch (value.cls) {
      case scalar_class::number:
        out.append(value.text);
        return;
      case scalar_class::non_finite:
        out.append("null");  // JSON has no NaN or Infinity
        return;
      case scalar_class::boolean:
        out.append(value.flag ? "true" : "false");
        return;
      case scalar_class::text:
        append_json_string(out, value.text);
        return;
      case scalar_class::bytes:
        hex_.clear();
        append_bytea_hex(hex_, value.text);
        append_json_string(out, hex_);
        return;
    }
  }

  // One value (not a list) of `field` as JSON.
  void render_value_json(const pb_field& field, uint64_t raw, span payload, std::string& out, int depth) {
    if (field.type == pb_type::group) {
      out.append("null");
      return;
    }
    if (field.type != pb_type::message) {
      append_json_scalar(out, render_scalar(field, raw, payload, column_kind::json));
      return;
    }
    const pb_message& m = message_node(field.child);
    const span_list spans(payload);
    if (m.special == pb_special::timestamp) {
      out.push_back('"');
      render_timestamp(field.child, spans, out, depth + 1);
      out.push_back('"');
    } else if (m.special == pb_special::wrapper) {
      uint64_t values[2];
      bool present[2];
      span payloads[2];
      read_small_message(field.child, spans, values, present, payloads, depth + 1);
      append_json_scalar(out, render_scalar(m.fields[0], values[0], payloads[0], column_kind::json));
    } else {
      render_message_json(field.child, spans, out, depth + 1);
    }
  }

  // A field's whole value as JSON: a list for repeated fields, an object for maps.
  void render_field_json(const pb_field& field, int32_t first, int32_t last, std::string& out, int depth) {
    if (is_map(field)) {
      render_map_json(field, first, out, depth);
    } else if (field.repeated) {
      out.push_back('[');
      bool comma = false;
      for_each_element(field, first, depth, [&](uint64_t raw, span payload) {
        if (comma) out.push_back(',');
        comma = true;
        render_value_json(field, raw, payload, out, depth);
        expect_output(0);
      });
      out.push_back(']');
    } else if (field.type == pb_type::message) {
      if (first < 0) {
        out.append("null");
        return;
      }
      span_list spans;
      gather_spans(first, spans);
      const pb_message& m = message_node(field.child);
      if (m.special == pb_special::none) {
        render_message_json(field.child, spans, out, depth + 1);
      } else {
        // Merged occurrences of a timestamp or wrapper: render from the merged spans.
        if (m.special == pb_special::timestamp) {
          out.push_back('"');
          render_timestamp(field.child, spans, out, depth + 1);
          out.push_back('"');
        } else {
          uint64_t values[2];
          bool present[2];
          span payloads[2];
          read_small_message(field.child, spans, values, present, payloads, depth + 1);
          append_json_scalar(out, render_scalar(m.fields[0], values[0], payloads[0], column_kind::json));
        }
      }
    } else if (first < 0) {
      append_json_scalar(out, render_scalar(field, 0, span{nullptr, nullptr}, column_kind::json));
    } else {
      const occurrence& o = occurrences_[static_cast<size_t>(last)];
      render_value_json(field, o.value, span{o.begin, o.end}, out, depth);
    }
  }

  // A map field as a JSON object (keys as strings; a key repeated later wins in jsonb).
  void render_map_json(const pb_field& field, int32_t first, std::string& out, int depth) {
    const pb_message& entry = message_node(field.child);
    out.push_back('{');
    bool comma = false;
    for (int32_t o = first; o >= 0; o = occurrences_[static_cast<size_t>(o)].next) {
      const occurrence occ = occurrences_[static_cast<size_t>(o)];
      const span_list spans(span{occ.begin, occ.end});
      const size_t occurrences_base = occurrences_.size();
      const size_t base = collect(entry, spans.data(), 1, nullptr, entry.fields.size(), depth + 1);
      if (comma) out.push_back(',');
      comma = true;
      const int32_t key_at = entry.fields.size() > 0 ? tail(base, 0) : -1;
      const int32_t value_at = entry.fields.size() > 1 ? tail(base, 1) : -1;
      key_text_.clear();
      if (key_at >= 0) {
        const occurrence k = occurrences_[static_cast<size_t>(key_at)];
        append_json_scalar(key_text_, render_scalar(entry.fields[0], k.value, span{k.begin, k.end}, column_kind::json));
      } else {
        append_json_scalar(key_text_, render_scalar(entry.fields[0], 0, span{nullptr, nullptr}, column_kind::json));
      }
      if (key_text_.empty() || key_text_[0] != '"') {
        const std::string unquoted = key_text_;
        key_text_.clear();
        append_json_string(key_text_, unquoted);
      }
      out.append(key_text_);
      out.push_back(':');
      const pb_field& value_field = entry.fields[1];
      if (value_at >= 0) {
        const occurrence v = occurrences_[static_cast<size_t>(value_at)];
        render_value_json(value_field, v.value, span{v.begin, v.end}, out, depth + 1);
      } else if (value_field.type == pb_type::message) {
        render_value_json(value_field, 0, span{nullptr, nullptr}, out, depth + 1);
      } else {
        append_json_scalar(out, render_scalar(value_field, 0, span{nullptr, nullptr}, column_kind::json));
      }
      heads_.resize(base);
      occurrences_.resize(occurrences_base);
      expect_output(0);
    }
    out.push_back('}');
  }

  // A message as a JSON object, fields in declaration order under their declared names: plain
  // proto3 fields always (their default when absent), lists and maps always, fields with
  // presence only when set.
  void render_message_json(int32_t message, const span_list& spans, std::string& out, int depth) {
    if (depth > max_depth) fail("nested deeper than " + std::to_string(max_depth) + " levels");
    const pb_message& m = message_node(message);
    const size_t occurrences_base = occurrences_.size();
    const size_t base = collect(m, spans.data(), spans.size(), nullptr, m.fields.size(), depth);
    out.push_back('{');
    bool comma = false;
    for (size_t f = 0; f < m.fields.size(); ++f) {
      const pb_field& field = m.fields[f];
      const int32_t first = head(base, f);
      if (field.type == pb_type::group) continue;  // proto2 groups: not rendered
      if (first < 0 && !field.repeated && (field.presence || field.type == pb_type::message)) continue;
      if (comma) out.push_back(',');
      comma = true;
      append_json_string(out, field.name);
      out.push_back(':');
      render_field_json(field, first, tail(base, f), out, depth);
      expect_output(0);
    }
    out.push_back('}');
    heads_.resize(base);
    occurrences_.resize(occurrences_base);
  }

  std::vector<column_binding> bindings_;
  protobuf_schema_fetcher fetch_;
  std::unique_ptr<proto_schema> inline_;
  std::unique_ptr<compiled_root> inline_root_;
  std::unordered_map<int32_t, std::unique_ptr<proto_schema>> by_id_;
  int32_t last_schema_id_ = 0;
  proto_schema* last_schema_ = nullptr;
  std::vector<int64_t> path_;
  std::vector<int64_t> last_path_;
  const compiled_root* last_root_ = nullptr;
  struct unknown_id {
    std::string error;
    std::chrono::steady_clock::time_point until;
  };
  static constexpr size_t max_unknown_ids = 1024;
  static constexpr std::chrono::seconds unknown_id_memory{10};
  std::unordered_map<int32_t, unknown_id> unknown_ids_;

  // The message being decoded.
  const compiled_root* root_ = nullptr;
  const uint8_t* begin_ = nullptr;
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  std::vector<occurrence> occurrences_;
  std::vector<int32_t> heads_;

  value_slots slots_;
  timestamp_formatter timestamps_;
  timestamp_formatter kafka_timestamps_;
  std::string scratch_;
  std::string element_scratch_;
  std::string scalar_text_;
  std::string key_text_;
  std::string hex_;
};

}  // namespace

std::unique_ptr<decoder> make_protobuf_decoder(const decoder_config& config, protobuf_schema_fetcher fetch) {
  std::unique_ptr<decoder> made = std::make_unique<protobuf_decoder>(config, std::move(fetch));
  made->set_max_decoded_bytes(config.max_decoded_bytes);
  return made;
}

}  // namespace streamrec
