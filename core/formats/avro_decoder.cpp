// Avro messages (Confluent-framed with registry schemas, or plain with an inline schema) into
// COPY text lines.
//
// avro-c parses each writer schema (names, namespaces, references); we then compile it into a
// flat node table plus a "plan" saying which fields feed which bindings, and read the binary
// encoding straight from the message bytes. That is several times faster than avro-c's generic
// values (no per-message allocation, unneeded fields are skipped without being materialised),
// lets logical types through (avro-c 1.11 drops logicalType, so we read it from the schema JSON
// ourselves), and bounds every length, count and depth by the bytes actually present, so a
// corrupt message is a format_error instead of a multi-gigabyte allocation.
#include <gmp.h>
#include <simdjson.h>

#include <chrono>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
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

enum class avro_kind : uint8_t {
  null_value,
  boolean,
  int32,
  int64,
  float32,
  float64,
  bytes,
  string,
  fixed,
  enumeration,
  record,
  array,
  map,
  union_value,
};

enum class avro_logical : uint8_t {
  none,
  decimal,
  date,
  time_millis,
  time_micros,
  timestamp_millis,
  timestamp_micros,
  local_timestamp_millis,
  local_timestamp_micros,
};

// One schema node. Named types appear once however often they are referenced, so recursive
// schemas are finite tables.
struct avro_node {
  avro_kind kind = avro_kind::null_value;
  avro_logical logical = avro_logical::none;
  bool zero_size = false;  // the encoding can be empty (null, empty record): bounds array counts
  int32_t scale = 0;       // decimal
  int64_t fixed_size = 0;
  std::vector<uint32_t> children;  // record fields, union branches, array items, map values
  std::vector<std::string> names;  // record field names, enum symbols
};

// What to extract from a value of one node: whole-value bindings, and per record field or
// union branch the plan of a child on some binding's path (-1: skip it).
struct value_plan {
  std::vector<uint32_t> bindings;
  std::vector<int32_t> children;
};

struct compiled_schema {
  std::vector<avro_node> nodes;
  uint32_t root = 0;
  std::vector<value_plan> plans;          // plans[0] belongs to the root record
  std::vector<uint32_t> absent_bindings;  // paths this schema lacks: their columns default
  std::string error;                      // set: every message with this schema is a format_error
};

// Largest decimal scale we expand (PostgreSQL's numeric display scale tops out at 16383).
constexpr int64_t max_decimal_scale = 16383;
constexpr int max_depth = 256;
constexpr int64_t extra_element_budget = int64_t{1} << 20;

// --- schema compilation ----------------------------------------------------------------------------

class schema_compiler {
 public:
  explicit schema_compiler(compiled_schema& out) : out_(out) {}

  uint32_t compile(avro_schema_t schema, const simdjson::dom::element* json) {
    if (is_avro_link(schema)) {
      schema = avro_schema_link_target(schema);
      json = nullptr;  // a reference: attributes live at the definition
    }
    const bool named = is_avro_named_type(schema);
    if (named) {
      const auto found = named_.find(schema);
      if (found != named_.end()) return found->second;
    }
    const auto index = static_cast<uint32_t>(out_.nodes.size());
    out_.nodes.emplace_back();
    if (named) named_.emplace(schema, index);

    simdjson::dom::object attributes;
    const bool has_attributes = json != nullptr && json->get_object().get(attributes) == simdjson::SUCCESS;
    avro_node node;
    switch (avro_typeof(schema)) {
      case AVRO_NULL:
        node.kind = avro_kind::null_value;
        node.zero_size = true;
        break;
      case AVRO_BOOLEAN:
        node.kind = avro_kind::boolean;
        break;
      case AVRO_INT32:
        node.kind = avro_kind::int32;
        break;
      case AVRO_INT64:
        node.kind = avro_kind::int64;
        break;
      case AVRO_FLOAT:
        node.kind = avro_kind::float32;
        break;
      case AVRO_DOUBLE:
        node.kind = avro_kind::float64;
        break;
      case AVRO_BYTES:
        node.kind = avro_kind::bytes;
        break;
      case AVRO_STRING:
        node.kind = avro_kind::string;
        break;
      case AVRO_FIXED:
        node.kind = avro_kind::fixed;
        node.fixed_size = avro_schema_fixed_size(schema);
        node.zero_size = node.fixed_size == 0;
        break;
      case AVRO_ENUM: {
        node.kind = avro_kind::enumeration;
        const int count = avro_schema_enum_number_of_symbols(schema);
        for (int i = 0; i < count; ++i) node.names.emplace_back(avro_schema_enum_get(schema, i));
        break;
      }
      case AVRO_RECORD: {
        node.kind = avro_kind::record;
        simdjson::dom::array fields_json;
        const bool has_fields =
            has_attributes && attributes["fields"].get_array().get(fields_json) == simdjson::SUCCESS;
        const size_t count = avro_schema_record_size(schema);
        // Children first into a local: compiling them appends to out_.nodes.
        std::vector<uint32_t> children;
        std::vector<std::string> names;
        for (size_t i = 0; i < count; ++i) {
          names.emplace_back(avro_schema_record_field_name(schema, static_cast<int>(i)));
          simdjson::dom::element field_type;
          const bool has_type = has_fields && fields_json.at(i)["type"].get(field_type) == simdjson::SUCCESS;
          children.push_back(compile(avro_schema_record_field_get_by_index(schema, static_cast<int>(i)),
                                     has_type ? &field_type : nullptr));
        }
        node.children = std::move(children);
        node.names = std::move(names);
        // Children still being compiled (recursion) read as non-empty, which they are: a record
        // can only reach itself through a union or an array, and both take a byte.
        node.zero_size = true;
        for (const uint32_t child : node.children) node.zero_size = node.zero_size && out_.nodes[child].zero_size;
        break;
      }
      case AVRO_ARRAY: {
        node.kind = avro_kind::array;
        simdjson::dom::element items;
        const bool has_items = has_attributes && attributes["items"].get(items) == simdjson::SUCCESS;
        const uint32_t child = compile(avro_schema_array_items(schema), has_items ? &items : nullptr);
        node.children.push_back(child);
        break;
      }
      case AVRO_MAP: {
        node.kind = avro_kind::map;
        simdjson::dom::element values;
        const bool has_values = has_attributes && attributes["values"].get(values) == simdjson::SUCCESS;
        const uint32_t child = compile(avro_schema_map_values(schema), has_values ? &values : nullptr);
        node.children.push_back(child);
        break;
      }
      case AVRO_UNION: {
        node.kind = avro_kind::union_value;
        simdjson::dom::array branches_json;
        const bool has_branches = json != nullptr && json->get_array().get(branches_json) == simdjson::SUCCESS;
        const size_t count = avro_schema_union_size(schema);
        std::vector<uint32_t> children;
        for (size_t i = 0; i < count; ++i) {
          simdjson::dom::element branch;
          const bool has_branch = has_branches && branches_json.at(i).get(branch) == simdjson::SUCCESS;
          children.push_back(
              compile(avro_schema_union_branch(schema, static_cast<int>(i)), has_branch ? &branch : nullptr));
        }
        node.children = std::move(children);
        break;
      }
      default:
        throw avro_error(std::string("unsupported Avro type ") + avro_schema_type_name(schema));
    }
    if (has_attributes) read_logical_type(attributes, node);
    out_.nodes[index] = std::move(node);
    return index;
  }

 private:
  // Logical types on the wrong base type, or with bad parameters, are ignored as the Avro
  // specification says: the value is read as its base type.
  static void read_logical_type(simdjson::dom::object& attributes, avro_node& node) {
    std::string_view logical;
    if (attributes["logicalType"].get_string().get(logical) != simdjson::SUCCESS) return;
    const avro_kind kind = node.kind;
    if (logical == "decimal" && (kind == avro_kind::bytes || kind == avro_kind::fixed)) {
      int64_t scale = 0;  // the specification's default
      const auto scale_attribute = attributes["scale"];
      if (scale_attribute.error() != simdjson::NO_SUCH_FIELD && scale_attribute.get(scale) != simdjson::SUCCESS) return;
      if (scale < 0 || scale > max_decimal_scale) return;
      node.logical = avro_logical::decimal;
      node.scale = static_cast<int32_t>(scale);
    } else if (logical == "date" && kind == avro_kind::int32) {
      node.logical = avro_logical::date;
    } else if (logical == "time-millis" && kind == avro_kind::int32) {
      node.logical = avro_logical::time_millis;
    } else if (logical == "time-micros" && kind == avro_kind::int64) {
      node.logical = avro_logical::time_micros;
    } else if (logical == "timestamp-millis" && kind == avro_kind::int64) {
      node.logical = avro_logical::timestamp_millis;
    } else if (logical == "timestamp-micros" && kind == avro_kind::int64) {
      node.logical = avro_logical::timestamp_micros;
    } else if (logical == "local-timestamp-millis" && kind == avro_kind::int64) {
      node.logical = avro_logical::local_timestamp_millis;
    } else if (logical == "local-timestamp-micros" && kind == avro_kind::int64) {
      node.logical = avro_logical::local_timestamp_micros;
    }
  }

  compiled_schema& out_;
  std::unordered_map<avro_schema_t, uint32_t> named_;
};

// Can `parts[k..]` be reached from `node`? Unions pass through to their record branches.
bool resolvable(const compiled_schema& schema, uint32_t node, const std::vector<std::string>& parts, size_t k) {
  if (k == parts.size()) return true;
  const avro_node& n = schema.nodes[node];
  if (n.kind == avro_kind::record) {
    for (size_t f = 0; f < n.names.size(); ++f) {
      if (n.names[f] == parts[k]) return resolvable(schema, n.children[f], parts, k + 1);
    }
    return false;
  }
  if (n.kind == avro_kind::union_value) {
    for (const uint32_t branch : n.children) {
      if (schema.nodes[branch].kind == avro_kind::record && resolvable(schema, branch, parts, k)) return true;
    }
  }
  return false;
}

void add_to_plan(compiled_schema& schema, uint32_t plan, uint32_t node, const std::vector<std::string>& parts, size_t k,
                 uint32_t binding) {
  if (k == parts.size()) {
    schema.plans[plan].bindings.push_back(binding);
    return;
  }
  const avro_node& n = schema.nodes[node];
  const auto child_plan = [&](size_t slot) {
    if (schema.plans[plan].children.empty()) schema.plans[plan].children.assign(n.children.size(), -1);
    if (schema.plans[plan].children[slot] < 0) {
      schema.plans[plan].children[slot] = static_cast<int32_t>(schema.plans.size());
      schema.plans.emplace_back();
    }
    return static_cast<uint32_t>(schema.plans[plan].children[slot]);
  };
  if (n.kind == avro_kind::record) {
    for (size_t f = 0; f < n.names.size(); ++f) {
      if (n.names[f] != parts[k]) continue;
      const uint32_t child = child_plan(f);
      add_to_plan(schema, child, schema.nodes[node].children[f], parts, k + 1, binding);
      return;
    }
  } else if (n.kind == avro_kind::union_value) {
    for (size_t b = 0; b < n.children.size(); ++b) {
      const uint32_t branch = schema.nodes[node].children[b];
      if (schema.nodes[branch].kind != avro_kind::record || !resolvable(schema, branch, parts, k)) continue;
      const uint32_t child = child_plan(b);
      add_to_plan(schema, child, branch, parts, k, binding);
    }
  }
}

// Compiles a writer schema and resolves the bindings against it. Errors land in `error`.
std::unique_ptr<compiled_schema> compile_schema(std::string_view schema_json,
                                                const std::vector<column_binding>& bindings) {
  auto compiled = std::make_unique<compiled_schema>();
  try {
    const avro_schema schema = avro_schema::from_json(schema_json);
    if (!is_avro_record(schema.get())) {
      throw avro_error(std::string("the top-level Avro type is ") + avro_schema_type_name(schema.get()) +
                       ", not a record");
    }
    simdjson::dom::parser json_parser;
    simdjson::dom::element json;
    const simdjson::padded_string padded(schema_json);
    const bool has_json = json_parser.parse(padded).get(json) == simdjson::SUCCESS;
    schema_compiler compiler(*compiled);
    compiled->root = compiler.compile(schema.get(), has_json ? &json : nullptr);
    compiled->plans.emplace_back();
    for (size_t i = 0; i < bindings.size(); ++i) {
      if (bindings[i].metadata != metadata_field::none) continue;
      const std::vector<std::string> parts = split_field_path(bindings[i]);
      if (resolvable(*compiled, compiled->root, parts, 0)) {
        add_to_plan(*compiled, 0, compiled->root, parts, 0, static_cast<uint32_t>(i));
      } else {
        compiled->absent_bindings.push_back(static_cast<uint32_t>(i));
      }
    }
  } catch (const avro_error& e) {
    compiled->error = e.what();
  }
  return compiled;
}

// --- decimal text -------------------------------------------------------------------------------------

// An mpz_t that is cleared however the scope ends.
class big_integer {
 public:
  big_integer() { mpz_init(value_); }
  ~big_integer() { mpz_clear(value_); }
  big_integer(const big_integer&) = delete;
  big_integer& operator=(const big_integer&) = delete;
  mpz_ptr get() { return value_; }

 private:
  mpz_t value_;
};

// The most decimal digits an unscaled value of `size` bytes can have: 8 * log10(2) < 2.41 per
// byte, plus one.
size_t max_decimal_digits(size_t size) { return size * 241 / 100 + 1; }

// Two's complement big-endian unscaled integer and a scale as exact decimal text, any length.
// Values past 64 bits go through GMP, whose conversion to decimal is subquadratic, so a
// decimal of hundreds of kilobytes prints in milliseconds instead of the seconds a digit-by-
// digit long division takes.
void append_decimal_bytes(std::string& out, std::string_view bytes, int32_t scale, std::string& digits) {
  const bool negative = !bytes.empty() && (static_cast<unsigned char>(bytes[0]) & 0x80) != 0;
  digits.clear();
  if (bytes.size() <= 8) {
    // Fits in 64 bits: sign-extend and print the magnitude.
    uint64_t bits = negative ? ~uint64_t{0} : 0;
    for (const char c : bytes) bits = bits << 8 | static_cast<unsigned char>(c);
    append_uint(digits, negative ? ~bits + 1 : bits);
  } else {
    // The bytes as an unsigned number; a negative value's magnitude is 2^(8 * size) minus it.
    big_integer magnitude;
    mpz_import(magnitude.get(), bytes.size(), 1, 1, 1, 0, bytes.data());
    if (negative) {
      big_integer power;
      mpz_setbit(power.get(), static_cast<mp_bitcnt_t>(bytes.size()) * 8);
      mpz_sub(magnitude.get(), power.get(), magnitude.get());
    }
    digits.resize(mpz_sizeinbase(magnitude.get(), 10) + 2);
    mpz_get_str(digits.data(), 10, magnitude.get());
    digits.resize(std::strlen(digits.c_str()));  // mpz_sizeinbase may count one digit too many
  }

  if (negative && digits != "0") out.push_back('-');
  const auto fraction = static_cast<size_t>(scale);
  if (fraction == 0) {
    out.append(digits);
  } else if (digits.size() <= fraction) {
    out.append("0.");
    out.append(fraction - digits.size(), '0');
    out.append(digits);
  } else {
    out.append(digits, 0, digits.size() - fraction);
    out.push_back('.');
    out.append(digits, digits.size() - fraction, fraction);
  }
}

void append_float(std::string& out, float value) {
  if (std::isnan(value) || std::isinf(value)) {
    append_double(out, static_cast<double>(value));
    return;
  }
  char buf[32];
  const auto res = std::to_chars(buf, buf + sizeof buf, value);  // shortest text of the float itself
  out.append(buf, res.ptr);
}

// --- the decoder ------------------------------------------------------------------------------------------

class avro_decoder final : public decoder {
 public:
  avro_decoder(const decoder_config& config, schema_fetcher fetch)
      : bindings_(config.columns), fetch_(std::move(fetch)) {
    if (fetch_ == nullptr) {
      inline_ = compile_schema(config.inline_schema, bindings_);
      if (!inline_->error.empty()) throw std::invalid_argument("inline Avro schema: " + inline_->error);
    }
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    if (!message.payload) throw format_error("avro message has a null payload (tombstone)");
    std::string_view body = *message.payload;
    const compiled_schema* schema = inline_.get();
    if (fetch_ != nullptr) {
      const confluent::framed_message framed = confluent::parse_frame(body);
      schema = &schema_for(framed.schema_id);
      body = framed.payload;
    }
    schema_ = schema;
    begin_ = reinterpret_cast<const uint8_t*>(body.data());
    p_ = begin_;
    end_ = begin_ + body.size();
    element_budget_ = static_cast<int64_t>(body.size()) + extra_element_budget;

    slots_.reset(bindings_.size(), value_slots::state::null);
    for (const uint32_t absent : schema->absent_bindings) slots_.set_absent(absent);
    walk(0, schema->root, 0);
    if (p_ != end_) {
      fail("trailing bytes after the record (" + std::to_string(end_ - p_) +
           " bytes): written with a different schema?");
    }
    append_slots_line(line, present, bindings_, slots_, message, kafka_timestamps_);
    return true;
  }

 private:
  const compiled_schema& schema_for(int32_t schema_id) {
    if (last_schema_ != nullptr && schema_id == last_schema_id_) return *last_schema_;
    auto found = by_id_.find(schema_id);
    if (found == by_id_.end()) {
      if (schema_id < 0) {
        throw format_error("schema id " + std::to_string(schema_id) +
                           " is negative: no schema registry assigns such an id");
      }
      const std::string text = fetch_known(schema_id);  // transient_error propagates: retry the batch
      auto compiled = compile_schema(text, bindings_);
      if (!compiled->error.empty()) {
        compiled->error = "schema id " + std::to_string(schema_id) + " is not a usable Avro schema: " + compiled->error;
      }
      found = by_id_.emplace(schema_id, std::move(compiled)).first;
    }
    if (!found->second->error.empty()) throw format_error(found->second->error);
    last_schema_id_ = schema_id;
    last_schema_ = found->second.get();
    return *last_schema_;
  }

  // fetch_, remembering for a while the ids the registry said it does not know, so a run of
  // messages naming one costs one request, not one each (it may still be registered later).
  std::string fetch_known(int32_t schema_id) {
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

  // Throws format_error when the message's text so far plus `more` bytes would pass
  // max_decoded_bytes. The text so far is the finished columns plus the column being built.
  void expect_output(size_t more) const {
    const size_t so_far = slots_.buffered() + scratch_.size() + element_scratch_.size();
    if (so_far + more > max_decoded_bytes()) too_large(so_far + more);
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw format_error("malformed Avro data at byte offset " + std::to_string(p_ - begin_) + ": " + what);
  }

  const avro_node& node(uint32_t index) const { return schema_->nodes[index]; }

  // --- primitive reads --------------------------------------------------------------------------

  int64_t read_long() {
    uint64_t value = 0;
    for (int shift = 0;; shift += 7) {
      if (p_ == end_) fail("data ended inside a number");
      const uint8_t byte = *p_++;
      if (shift == 63 && (byte & 0x7e) != 0) fail("varint overflows 64 bits");
      value |= uint64_t{byte & 0x7fu} << shift;
      if ((byte & 0x80) == 0) break;
      if (shift == 63) fail("varint longer than 10 bytes");
    }
    return static_cast<int64_t>(value >> 1) ^ -static_cast<int64_t>(value & 1);
  }

  int32_t read_int() {
    const int64_t value = read_long();
    if (value < INT32_MIN || value > INT32_MAX) fail("int value " + std::to_string(value) + " exceeds 32 bits");
    return static_cast<int32_t>(value);
  }

  void need(int64_t count) {
    if (count < 0 || count > end_ - p_) fail("data ended early (" + std::to_string(count) + " bytes needed)");
  }

  std::string_view read_span(int64_t count) {
    need(count);
    const std::string_view span(reinterpret_cast<const char*>(p_), static_cast<size_t>(count));
    p_ += count;
    return span;
  }

  std::string_view read_length_prefixed() {
    const int64_t length = read_long();
    if (length < 0) fail("negative length " + std::to_string(length));
    return read_span(length);
  }

  bool read_boolean() {
    need(1);
    const uint8_t byte = *p_++;
    if (byte > 1) fail("boolean byte is " + std::to_string(byte) + ", not 0 or 1");
    return byte == 1;
  }

  uint32_t read_branch(const avro_node& n) {
    const int64_t branch = read_long();
    if (branch < 0 || static_cast<uint64_t>(branch) >= n.children.size()) {
      fail("union branch " + std::to_string(branch) + " out of range");
    }
    return n.children[static_cast<size_t>(branch)];
  }

  std::string_view read_enum_symbol(const avro_node& n) {
    const int64_t index = read_long();
    if (index < 0 || static_cast<uint64_t>(index) >= n.names.size()) {
      fail("enum index " + std::to_string(index) + " out of range");
    }
    return n.names[static_cast<size_t>(index)];
  }

  // Reads a block header of an array or map. Returns the item count (0 at the end); `bytes`
  // gets the block's byte size when the writer gave one (negative count), else -1.
  int64_t read_block(int64_t& bytes, bool items_may_be_empty) {
    int64_t count = read_long();
    bytes = -1;
    if (count < 0) {
      if (count == INT64_MIN) fail("block count out of range");
      count = -count;
      bytes = read_long();
      if (bytes < 0 || bytes > end_ - p_) fail("block size " + std::to_string(bytes) + " exceeds the data");
    }
    // Every non-empty item takes a byte, so a count beyond the remaining bytes is corrupt; items
    // that may take none (nulls) draw on a per-message budget instead of looping forever.
    if (!items_may_be_empty && count > end_ - p_) fail("block count " + std::to_string(count) + " exceeds the data");
    element_budget_ -= count;
    if (element_budget_ < 0) fail("too many array or map items");
    return count;
  }

  // --- skipping --------------------------------------------------------------------------------

  void skip(uint32_t index, int depth) {
    if (depth > max_depth) fail("nested deeper than 256 levels");
    const avro_node& n = node(index);
    switch (n.kind) {
      case avro_kind::null_value:
        return;
      case avro_kind::boolean:
        read_boolean();
        return;
      case avro_kind::int32:
        read_int();
        return;
      case avro_kind::int64:
        read_long();
        return;
      case avro_kind::enumeration:
        read_enum_symbol(n);
        return;
      case avro_kind::float32:
        read_span(4);
        return;
      case avro_kind::float64:
        read_span(8);
        return;
      case avro_kind::bytes:
      case avro_kind::string:
        read_length_prefixed();
        return;
      case avro_kind::fixed:
        read_span(n.fixed_size);
        return;
      case avro_kind::record:
        for (const uint32_t field : n.children) skip(field, depth + 1);
        return;
      case avro_kind::union_value:
        skip(read_branch(n), depth + 1);
        return;
      case avro_kind::array:
      case avro_kind::map: {
        const uint32_t item = n.children[0];
        const bool item_may_be_empty = n.kind == avro_kind::array && node(item).zero_size;
        int64_t bytes;
        while (const int64_t count = read_block(bytes, item_may_be_empty)) {
          if (bytes >= 0) {
            read_span(bytes);  // the writer told us the size: no need to look inside
            continue;
          }
          for (int64_t i = 0; i < count; ++i) {
            if (n.kind == avro_kind::map) read_length_prefixed();
            skip(item, depth + 1);
          }
        }
        return;
      }
    }
  }

  // --- walking plans ------------------------------------------------------------------------------

  void walk(uint32_t plan_index, uint32_t node_index, int depth) {
    if (depth > max_depth) fail("nested deeper than 256 levels");
    const value_plan& plan = schema_->plans[plan_index];
    if (!plan.bindings.empty()) {
      const uint8_t* start = p_;
      for (size_t i = 0; i < plan.bindings.size(); ++i) {
        p_ = start;  // a value bound twice is read twice
        render_column(node_index, plan.bindings[i], depth);
      }
      if (plan.children.empty()) return;
      p_ = start;  // also descended into: read it again for the nested bindings
    }
    const avro_node& n = node(node_index);
    if (n.kind == avro_kind::record) {
      for (size_t f = 0; f < n.children.size(); ++f) {
        const int32_t child = plan.children.empty() ? -1 : plan.children[f];
        if (child < 0) {
          skip(n.children[f], depth + 1);
        } else {
          walk(static_cast<uint32_t>(child), n.children[f], depth + 1);
        }
      }
    } else if (n.kind == avro_kind::union_value) {
      const int64_t branch = read_long();
      if (branch < 0 || static_cast<uint64_t>(branch) >= n.children.size()) {
        fail("union branch " + std::to_string(branch) + " out of range");
      }
      const uint32_t branch_node = n.children[static_cast<size_t>(branch)];
      const int32_t child = plan.children.empty() ? -1 : plan.children[static_cast<size_t>(branch)];
      // A branch off the path (null, another record) leaves the bindings below it NULL.
      if (child < 0) {
        skip(branch_node, depth + 1);
      } else {
        walk(static_cast<uint32_t>(child), branch_node, depth + 1);
      }
    } else {
      skip(node_index, depth);
    }
  }

  // --- scalars -----------------------------------------------------------------------------------

  enum class scalar_class { number, non_finite, boolean, text, bytes };
  struct scalar {
    scalar_class cls;
    std::string_view text;  // number, non_finite, text, bytes
    bool flag = false;      // boolean
  };

  // Reads a scalar node (not null, union, record, array or map) as text. Logical types always
  // apply; plain numbers become timestamps or dates only for columns of that kind.
  scalar read_scalar(const avro_node& n, column_kind kind) {
    scalar_text_.clear();
    switch (n.kind) {
      case avro_kind::boolean:
        return {scalar_class::boolean, {}, read_boolean()};
      case avro_kind::int32: {
        const int32_t value = read_int();
        if (n.logical == avro_logical::date || (n.logical == avro_logical::none && kind == column_kind::date)) {
          append_epoch_days_date(scalar_text_, value);
          return {scalar_class::text, scalar_text_};
        }
        if (n.logical == avro_logical::time_millis) {
          append_time_of_day(scalar_text_, int64_t{value} * 1000, time_precision::millis);
          return {scalar_class::text, scalar_text_};
        }
        if (kind == column_kind::timestamp) {
          append_epoch_millis_iso(scalar_text_, int64_t{value}, timestamps_);
          return {scalar_class::text, scalar_text_};
        }
        append_int(scalar_text_, value);
        return {scalar_class::number, scalar_text_};
      }
      case avro_kind::int64: {
        const int64_t value = read_long();
        switch (n.logical) {
          case avro_logical::timestamp_millis:
            append_epoch_millis_iso(scalar_text_, value, timestamps_);
            return {scalar_class::text, scalar_text_};
          case avro_logical::timestamp_micros:
            timestamps_.append_iso(scalar_text_, value, time_precision::micros);
            return {scalar_class::text, scalar_text_};
          case avro_logical::local_timestamp_millis:
            append_epoch_millis_iso(scalar_text_, value, timestamps_);
            scalar_text_.pop_back();  // no 'Z': a wall-clock time in no particular zone
            return {scalar_class::text, scalar_text_};
          case avro_logical::local_timestamp_micros:
            timestamps_.append_iso(scalar_text_, value, time_precision::micros);
            scalar_text_.pop_back();
            return {scalar_class::text, scalar_text_};
          case avro_logical::time_micros:
            append_time_of_day(scalar_text_, value, time_precision::micros);
            return {scalar_class::text, scalar_text_};
          default:
            break;
        }
        if (kind == column_kind::timestamp) {
          append_epoch_millis_iso(scalar_text_, value, timestamps_);
          return {scalar_class::text, scalar_text_};
        }
        append_int(scalar_text_, value);
        return {scalar_class::number, scalar_text_};
      }
      case avro_kind::float32:
      case avro_kind::float64: {
        double value;
        if (n.kind == avro_kind::float32) {
          const std::string_view raw = read_span(4);
          uint32_t bits = 0;
          for (int i = 3; i >= 0; --i) bits = bits << 8 | static_cast<unsigned char>(raw[static_cast<size_t>(i)]);
          float f;
          std::memcpy(&f, &bits, sizeof f);
          value = f;
          if (kind != column_kind::timestamp) append_float(scalar_text_, f);
        } else {
          const std::string_view raw = read_span(8);
          uint64_t bits = 0;
          for (int i = 7; i >= 0; --i) bits = bits << 8 | static_cast<unsigned char>(raw[static_cast<size_t>(i)]);
          std::memcpy(&value, &bits, sizeof value);
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
      case avro_kind::string:
        return {scalar_class::text, read_length_prefixed()};
      case avro_kind::bytes:
      case avro_kind::fixed: {
        const std::string_view data = n.kind == avro_kind::bytes ? read_length_prefixed() : read_span(n.fixed_size);
        if (n.logical == avro_logical::decimal) {
          // Checked before printing: "-", the digits, "0." and the zeros a scale adds.
          expect_output(max_decimal_digits(data.size()) + static_cast<size_t>(n.scale) + 3);
          append_decimal_bytes(scalar_text_, data, n.scale, decimal_digits_);
          return {scalar_class::number, scalar_text_};
        }
        return {scalar_class::bytes, data};
      }
      case avro_kind::enumeration:
        return {scalar_class::text, read_enum_symbol(n)};
      default:
        break;
    }
    fail("internal: not a scalar");
  }

  // --- columns -------------------------------------------------------------------------------------

  void render_column(uint32_t index, uint32_t binding, int depth) {
    const column_kind kind = bindings_[binding].kind;
    const avro_node* n = &node(index);
    if (n->kind == avro_kind::union_value) {
      index = read_branch(*n);
      n = &node(index);
    }
    if (n->kind == avro_kind::null_value) {
      slots_.set_null(binding);
      return;
    }
    std::string& out = slots_.begin(binding);
    if (kind == column_kind::json || n->kind == avro_kind::record || n->kind == avro_kind::map) {
      scratch_.clear();
      render_json(index, scratch_, depth);
      append_copy_escaped(out, scratch_);
    } else if (n->kind == avro_kind::array) {
      scratch_.clear();
      pg_array_literal literal(scratch_);
      render_array(index, literal, depth);
      append_copy_escaped(out, scratch_);
    } else {
      const scalar value = read_scalar(*n, kind);
      switch (value.cls) {
        case scalar_class::number:
        case scalar_class::non_finite:
          out.append(value.text);
          break;
        case scalar_class::boolean:
          out.push_back(value.flag ? 't' : 'f');
          break;
        case scalar_class::text:
          append_copy_escaped(out, value.text);
          break;
        case scalar_class::bytes:
          if (kind == column_kind::bytea) {
            append_copy_bytea(out, value.text);
          } else {
            append_copy_escaped(out, value.text);
          }
          break;
      }
    }
    slots_.commit(binding);
    scratch_.clear();  // counted in the slot now
    expect_output(0);
  }

  // JSON text of any value: unions as their branch's value, bytes as "\x.." strings, logical
  // times as ISO strings, decimals as exact numbers, non-finite floats as null.
  void render_json(uint32_t index, std::string& out, int depth) {
    if (depth > max_depth) fail("nested deeper than 256 levels");
    const avro_node& n = node(index);
    switch (n.kind) {
      case avro_kind::null_value:
        out.append("null");
        return;
      case avro_kind::union_value:
        render_json(read_branch(n), out, depth + 1);
        return;
      case avro_kind::record:
        out.push_back('{');
        for (size_t f = 0; f < n.children.size(); ++f) {
          if (f != 0) out.push_back(',');
          append_json_string(out, n.names[f]);
          out.push_back(':');
          render_json(n.children[f], out, depth + 1);
        }
        out.push_back('}');
        return;
      case avro_kind::array:
      case avro_kind::map: {
        const bool is_map = n.kind == avro_kind::map;
        const uint32_t item = n.children[0];
        out.push_back(is_map ? '{' : '[');
        bool first = true;
        int64_t bytes;
        while (const int64_t count = read_block(bytes, !is_map && node(item).zero_size)) {
          for (int64_t i = 0; i < count; ++i) {
            if (!first) out.push_back(',');
            first = false;
            if (is_map) {
              append_json_string(out, read_length_prefixed());
              out.push_back(':');
            }
            render_json(item, out, depth + 1);
            expect_output(0);
          }
        }
        out.push_back(is_map ? '}' : ']');
        return;
      }
      default:
        break;
    }
    const scalar value = read_scalar(n, column_kind::json);
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

  // An Avro array as a PostgreSQL array literal.
  void render_array(uint32_t index, pg_array_literal& literal, int depth) {
    if (depth > max_depth) fail("nested deeper than 256 levels");
    const uint32_t item = node(index).children[0];
    literal.begin_array();
    int64_t bytes;
    while (const int64_t count = read_block(bytes, node(item).zero_size)) {
      for (int64_t i = 0; i < count; ++i) {
        render_element(item, literal, depth + 1);
        expect_output(0);
      }
    }
    literal.end_array();
  }

  void render_element(uint32_t index, pg_array_literal& literal, int depth) {
    const avro_node* n = &node(index);
    if (n->kind == avro_kind::union_value) {
      index = read_branch(*n);
      n = &node(index);
    }
    switch (n->kind) {
      case avro_kind::null_value:
        literal.null_element();
        return;
      case avro_kind::array:
        render_array(index, literal, depth);
        return;
      case avro_kind::record:
      case avro_kind::map:
        element_scratch_.clear();
        render_json(index, element_scratch_, depth);
        literal.element(element_scratch_);
        element_scratch_.clear();  // counted in the literal now
        return;
      default:
        break;
    }
    const scalar value = read_scalar(*n, column_kind::array);
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

  std::vector<column_binding> bindings_;
  schema_fetcher fetch_;
  std::unique_ptr<compiled_schema> inline_;
  std::unordered_map<int32_t, std::unique_ptr<compiled_schema>> by_id_;
  int32_t last_schema_id_ = 0;
  const compiled_schema* last_schema_ = nullptr;
  struct unknown_id {
    std::string error;
    std::chrono::steady_clock::time_point until;
  };
  static constexpr size_t max_unknown_ids = 1024;
  static constexpr std::chrono::seconds unknown_id_memory{10};
  std::unordered_map<int32_t, unknown_id> unknown_ids_;

  // The message being decoded.
  const compiled_schema* schema_ = nullptr;
  const uint8_t* begin_ = nullptr;
  const uint8_t* p_ = nullptr;
  const uint8_t* end_ = nullptr;
  int64_t element_budget_ = 0;

  value_slots slots_;
  timestamp_formatter timestamps_;        // event times in the payload
  timestamp_formatter kafka_timestamps_;  // message timestamps: kept apart so each cache hits
  std::string scratch_;                   // a column's JSON text or array literal before COPY escaping
  std::string element_scratch_;           // an array element's JSON text
  std::string scalar_text_;               // a scalar's text (numbers, times, decimals)
  std::string decimal_digits_;
  std::string hex_;
};

}  // namespace

std::unique_ptr<decoder> make_avro_decoder(const decoder_config& config, schema_fetcher fetch) {
  return std::make_unique<avro_decoder>(config, std::move(fetch));
}

}  // namespace streamrec
