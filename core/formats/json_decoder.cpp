// JSON object messages into COPY text lines, with simdjson's On-Demand API.
//
// On-Demand because it exposes each number's raw token (so 12.30 and 123456789012345678901 reach
// PostgreSQL exactly as written, never through a double) and lets one pass over the object pick
// the bound fields in whatever order they come. Field paths are compiled into a small trie
// once; the walk matches each key against the current trie node and collects values into
// value_slots, so COPY column order and duplicate keys (last wins, as in jsonb) cost nothing.
//
// On-Demand skips values nobody asks for without checking them, so the walk validates every
// value it does not bind: a message is either valid JSON or a format_error, never half-read.
#include <simdjson.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/formats/copy_text.h"
#include "core/formats/decoder_support.h"
#include "core/formats/json_writer.h"

namespace streamrec {

namespace {

namespace od = simdjson::ondemand;

// Deeper documents are rejected rather than risking the stack on hostile input.
constexpr int max_depth = 128;

std::string_view trim_trailing_space(std::string_view token) {
  while (!token.empty() &&
         (token.back() == ' ' || token.back() == '\t' || token.back() == '\n' || token.back() == '\r')) {
    token.remove_suffix(1);
  }
  return token;
}

enum class json_number { invalid, integer, real };

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
json_number classify_json_number(std::string_view t) {
  size_t i = 0;
  const size_t n = t.size();
  const auto digit = [&](size_t k) { return k < n && t[k] >= '0' && t[k] <= '9'; };
  if (i < n && t[i] == '-') ++i;
  if (!digit(i)) return json_number::invalid;
  if (t[i] == '0') {
    ++i;
  } else {
    while (digit(i)) ++i;
  }
  json_number kind = json_number::integer;
  if (i < n && t[i] == '.') {
    ++i;
    if (!digit(i)) return json_number::invalid;
    while (digit(i)) ++i;
    kind = json_number::real;
  }
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < n && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digit(i)) return json_number::invalid;
    while (digit(i)) ++i;
    kind = json_number::real;
  }
  return i == n ? kind : json_number::invalid;
}

const char* json_type_name(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "a value";
}

class json_decoder final : public decoder {
 public:
  explicit json_decoder(const decoder_config& config) : bindings_(config.columns) {
    nodes_.emplace_back();  // the root object
    for (size_t i = 0; i < bindings_.size(); ++i) {
      if (bindings_[i].metadata != metadata_field::none) continue;
      uint32_t node = 0;
      for (const std::string& part : split_field_path(bindings_[i])) node = child_of(node, part);
      nodes_[node].bindings.push_back(static_cast<uint32_t>(i));
    }
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    if (!message.payload) throw format_error("json message has a null payload (tombstone)");
    const std::string_view payload = *message.payload;
    const char* text = padded_copy(payload);
    od::document doc;
    check(parser_.iterate(text, payload.size(), padded_capacity_).get(doc), "");
    document_ = &doc;
    input_end_ = text + payload.size();
    od::object root;
    const simdjson::error_code root_error = doc.get_object().get(root);
    if (root_error == simdjson::INCORRECT_TYPE) {
      od::json_type type;
      if (doc.type().get(type) == simdjson::SUCCESS) {
        throw format_error(std::string("json message is ") + json_type_name(type) + ", not an object");
      }
    }
    check(root_error, "");
    side_depth_ = 0;
    slots_.reset(bindings_.size(), value_slots::state::absent);
    walk_object(root, 0, 1);
    const char* trailing = nullptr;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) {
      throw format_error("invalid JSON: content after the object at byte offset " + std::to_string(trailing - text));
    }
    append_slots_line(line, present, bindings_, slots_, message, kafka_timestamps_);
    return true;
  }

 private:
  struct path_node {
    std::vector<std::pair<std::string, uint32_t>> children;  // few keys: a scan beats hashing
    std::vector<uint32_t> bindings;                          // bindings that take this value
  };

  uint32_t child_of(uint32_t node, const std::string& key) {
    for (const auto& [name, index] : nodes_[node].children) {
      if (name == key) return index;
    }
    const auto index = static_cast<uint32_t>(nodes_.size());
    nodes_[node].children.emplace_back(key, index);
    nodes_.emplace_back();
    return index;
  }

  // simdjson needs SIMDJSON_PADDING readable bytes after the text; Kafka's buffers have none.
  const char* padded_copy(std::string_view payload) {
    const size_t needed = payload.size() + simdjson::SIMDJSON_PADDING;
    if (needed > padded_capacity_) {
      padded_capacity_ = std::max(needed, padded_capacity_ * 2);
      // Zeroed once: the padding's content does not matter to simdjson, only that it is readable
      // (and initialised, for the sanitizers).
      padded_.reset(new char[padded_capacity_]());
    }
    std::memcpy(padded_.get(), payload.data(), payload.size());
    return padded_.get();
  }

  [[noreturn]] static void fail(simdjson::error_code error, std::string_view where) {
    std::string message = "invalid JSON";
    if (!where.empty()) {
      message += " at field ";
      message += where;
    }
    message += ": ";
    message += simdjson::error_message(error);
    throw format_error(message);
  }
  static void check(simdjson::error_code error, std::string_view where) {
    if (error != simdjson::SUCCESS) fail(error, where);
  }

  void walk_object(od::object object, uint32_t node_index, int depth) {
    for (auto field : object) {
      std::string_view key;
      check(field.unescaped_key().get(key), "");
      od::value value;
      check(field.value().get(value), key);
      const path_node& node = nodes_[node_index];
      uint32_t child = 0;
      for (const auto& [name, index] : node.children) {
        if (name == key) {
          child = index;
          break;
        }
      }
      if (child == 0) {
        validate(value, key, depth + 1);
        continue;
      }
      take(value, child, key, depth + 1);
    }
  }

  // A value whose key is on some binding's path.
  void take(od::value& value, uint32_t node_index, std::string_view key, int depth) {
    const path_node& node = nodes_[node_index];
    if (node.bindings.empty()) {
      // Only a step on the way: descend into objects; anything else means the path is absent.
      od::json_type type;
      check(value.type().get(type), key);
      if (type == od::json_type::object) {
        od::object object;
        check(value.get_object().get(object), key);
        if (depth > max_depth) throw format_error("json nested deeper than 128 levels");
        walk_object(object, node_index, depth);
      } else {
        validate(value, key, depth);
      }
      return;
    }
    if (node.bindings.size() == 1 && node.children.empty()) {
      render(value, node.bindings[0], key, depth);
      return;
    }
    // The same value feeds several bindings or is also descended into: capture its JSON text
    // once and parse it again for each use (rare enough not to optimise). Each nesting level
    // of such values gets its own side parser, since an outer copy is still being read.
    const std::string raw(capture_raw(value, key, depth));
    if (side_depth_ == sides_.size()) sides_.push_back(std::make_unique<side_document>());
    side_document& side = *sides_[side_depth_];
    const side_scope scope(*this, side);
    for (const uint32_t binding : node.bindings) {
      od::value copy = reparse(raw, side);
      render(copy, binding, key, depth);
    }
    if (!node.children.empty()) {
      od::value copy = reparse(raw, side);
      od::json_type type;
      check(copy.type().get(type), key);
      if (type == od::json_type::object) {
        od::object object;
        check(copy.get_object().get(object), key);
        walk_object(object, node_index, depth);
      }
    }
  }

  struct side_document {
    od::parser parser;
    od::document doc;
    std::string text;
  };

  // While values of a side document are read, capture_raw must measure within that document.
  class side_scope {
   public:
    side_scope(json_decoder& owner, side_document& side)
        : owner_(owner), document_(owner.document_), input_end_(owner.input_end_) {
      ++owner_.side_depth_;
      owner_.document_ = &side.doc;
    }
    ~side_scope() {
      --owner_.side_depth_;
      owner_.document_ = document_;
      owner_.input_end_ = input_end_;
    }
    side_scope(const side_scope&) = delete;
    side_scope& operator=(const side_scope&) = delete;

   private:
    json_decoder& owner_;
    od::document* document_;
    const char* input_end_;
  };

  // Parses `raw` (one value) in `side`, wrapped in an array because On-Demand does not hand out
  // a scalar document as a value.
  od::value reparse(const std::string& raw, side_document& side) {
    side.text.assign("[");
    side.text.append(raw);
    side.text.push_back(']');
    const size_t length = side.text.size();
    side.text.append(simdjson::SIMDJSON_PADDING, '\0');
    check(side.parser.iterate(side.text.data(), length, side.text.size()).get(side.doc), "");
    input_end_ = side.text.data() + length;
    od::array array;
    check(side.doc.get_array().get(array), "");
    od::value value;
    check((*array.begin()).get(value), "");
    return value;
  }

  // Validates a value and returns its JSON text (trimmed), pointing into the input.
  std::string_view capture_raw(od::value& value, std::string_view key, int depth) {
    const std::string_view token = value.raw_json_token();
    od::json_type type;
    check(value.type().get(type), key);
    validate(value, key, depth);
    // A scalar is its token; a container runs to wherever the iterator stopped after it.
    if (type != od::json_type::object && type != od::json_type::array) return trim_trailing_space(token);
    const char* start = token.data();
    const char* end = input_end_;
    const char* next = nullptr;
    if (document_->current_location().get(next) == simdjson::SUCCESS) end = next;
    return trim_trailing_space(std::string_view(start, static_cast<size_t>(end - start)));
  }

  // Checks a value completely (On-Demand would otherwise skip it unread).
  void validate(od::value& value, std::string_view key, int depth) {
    if (depth > max_depth) throw format_error("json nested deeper than 128 levels");
    od::json_type type;
    check(value.type().get(type), key);
    switch (type) {
      case od::json_type::object: {
        od::object object;
        check(value.get_object().get(object), key);
        for (auto field : object) {
          std::string_view name;
          check(field.unescaped_key().get(name), key);
          od::value child;
          check(field.value().get(child), key);
          validate(child, key, depth + 1);
        }
        return;
      }
      case od::json_type::array: {
        od::array array;
        check(value.get_array().get(array), key);
        for (auto element_result : array) {
          od::value element;
          check(element_result.get(element), key);
          validate(element, key, depth + 1);
        }
        return;
      }
      case od::json_type::string: {
        std::string_view text;
        check(value.get_string().get(text), key);
        return;
      }
      case od::json_type::number:
        number_token(value, key);
        return;
      case od::json_type::boolean: {
        bool flag;
        check(value.get_bool().get(flag), key);
        return;
      }
      case od::json_type::null:
        expect_null(value, key);
        return;
    }
  }

  std::string_view number_token(od::value& value, std::string_view key, json_number* kind = nullptr) {
    const std::string_view token = trim_trailing_space(value.raw_json_token());
    const json_number classified = classify_json_number(token);
    if (classified == json_number::invalid) fail(simdjson::NUMBER_ERROR, key);
    if (kind != nullptr) *kind = classified;
    return token;
  }

  void expect_null(od::value& value, std::string_view key) {
    bool is_null = false;
    check(value.is_null().get(is_null), key);
    if (!is_null) fail(simdjson::INCORRECT_TYPE, key);
  }

  // Writes one bound value into its slot, spelled for the column's kind.
  void render(od::value& value, uint32_t binding_index, std::string_view key, int depth) {
    const column_kind kind = bindings_[binding_index].kind;
    od::json_type type;
    check(value.type().get(type), key);
    if (type == od::json_type::null) {
      expect_null(value, key);
      slots_.set_null(binding_index);
      return;
    }
    if (kind == column_kind::json) {
      // Any JSON value (string quotes included) is the column's text.
      const std::string_view raw = capture_raw(value, key, depth);
      append_copy_escaped(slots_.begin(binding_index), raw);
      slots_.commit(binding_index);
      return;
    }
    switch (type) {
      case od::json_type::string: {
        std::string_view text;
        check(value.get_string().get(text), key);
        append_copy_escaped(slots_.begin(binding_index), text);
        break;
      }
      case od::json_type::number: {
        json_number number_kind;
        const std::string_view token = number_token(value, key, &number_kind);
        std::string& out = slots_.begin(binding_index);
        if (kind == column_kind::timestamp) {
          append_epoch_millis(out, token, number_kind == json_number::integer);
        } else {
          out.append(token);  // digits, sign, '.', 'e': nothing COPY must escape
        }
        break;
      }
      case od::json_type::boolean: {
        bool flag;
        check(value.get_bool().get(flag), key);
        slots_.begin(binding_index).push_back(flag ? 't' : 'f');
        break;
      }
      case od::json_type::array: {
        scratch_.clear();
        pg_array_literal literal(scratch_);
        append_array(value, literal, key, depth);
        append_copy_escaped(slots_.begin(binding_index), scratch_);
        break;
      }
      case od::json_type::object: {
        const std::string_view raw = capture_raw(value, key, depth);
        append_copy_escaped(slots_.begin(binding_index), raw);
        break;
      }
      case od::json_type::null:
        break;  // handled above
    }
    slots_.commit(binding_index);
  }

  // A JSON array as a PostgreSQL array literal; nested arrays become nested literals and
  // objects become quoted JSON text elements.
  void append_array(od::value& value, pg_array_literal& literal, std::string_view key, int depth) {
    if (depth > max_depth) throw format_error("json nested deeper than 128 levels");
    od::array array;
    check(value.get_array().get(array), key);
    literal.begin_array();
    for (auto element_result : array) {
      od::value element;
      check(element_result.get(element), key);
      od::json_type type;
      check(element.type().get(type), key);
      switch (type) {
        case od::json_type::string: {
          std::string_view text;
          check(element.get_string().get(text), key);
          literal.element(text);
          break;
        }
        case od::json_type::number:
          literal.plain_element(number_token(element, key));
          break;
        case od::json_type::boolean: {
          bool flag;
          check(element.get_bool().get(flag), key);
          literal.plain_element(flag ? "t" : "f");
          break;
        }
        case od::json_type::null:
          expect_null(element, key);
          literal.null_element();
          break;
        case od::json_type::array:
          append_array(element, literal, key, depth + 1);
          break;
        case od::json_type::object:
          literal.element(capture_raw(element, key, depth + 1));
          break;
      }
    }
    literal.end_array();
  }

  // A JSON number of epoch milliseconds as ISO text; integers stay exact.
  void append_epoch_millis(std::string& out, std::string_view token, bool integral) {
    if (integral) {
      int64_t ms = 0;
      const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), ms);
      if (error != std::errc() || end != token.data() + token.size()) {
        throw format_error("epoch milliseconds " + std::string(token) + " are out of the timestamp range");
      }
      append_epoch_millis_iso(out, ms, timestamps_);
      return;
    }
    double ms = 0;
    const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), ms);
    if (error != std::errc() || end != token.data() + token.size()) {
      throw format_error("epoch milliseconds " + std::string(token) + " are out of the timestamp range");
    }
    append_epoch_millis_iso(out, ms, timestamps_);
  }

  std::vector<column_binding> bindings_;
  std::vector<path_node> nodes_;
  od::parser parser_;
  std::unique_ptr<char[]> padded_;
  size_t padded_capacity_ = 0;
  std::vector<std::unique_ptr<side_document>> sides_;
  size_t side_depth_ = 0;
  std::string scratch_;
  value_slots slots_;
  timestamp_formatter timestamps_;        // event times in the payload
  timestamp_formatter kafka_timestamps_;  // message timestamps: kept apart so each cache hits
  // The document being decoded, for capture_raw's end position.
  od::document* document_ = nullptr;
  const char* input_end_ = nullptr;
};

}  // namespace

std::unique_ptr<decoder> make_json_decoder(const decoder_config& config) {
  return std::make_unique<json_decoder>(config);
}

}  // namespace streamrec
