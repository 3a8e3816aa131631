// Keys, tombstones and Debezium change events, as decoders around the csv, json and Avro ones.
//
// Neither needs a parser of its own. A key is decoded by a value decoder of the key's format
// run on the key's bytes; a Debezium event by a json or Avro decoder whose bindings are the
// envelope's paths (op, after.<column>, before.<key column>, ts_ms, source). Their COPY text
// lines are split at tabs (escaped values hold none) and reassembled in the source's binding
// order, so every conversion (times, decimals, arrays, nested json) stays the value decoders'.
#include "core/formats/change_events.h"

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/formats/copy_text.h"
#include "core/formats/decoder_support.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {

namespace {

constexpr size_t kNone = static_cast<size_t>(-1);

// A field of a line being assembled: left out (the column's DEFAULT, or its old value in an
// upsert), or its raw COPY text (\N for NULL).
struct field_value {
  bool present = false;
  std::string_view text;
};

bool null_or_absent(const field_value& field) { return !field.present || field.text == copy_null_marker; }

std::string path_of(const column_binding& binding) { return binding.field.empty() ? binding.column : binding.field; }

size_t count_present(const column_mask& present) {
  size_t count = 0;
  for (const bool p : present) count += p ? 1 : 0;
  return count;
}

// Appends one row of `values` (one per binding, in binding order) to `lines`.
void append_row(std::string& lines, std::vector<decoded_row>& rows, row_change change,
                const std::vector<field_value>& values) {
  decoded_row& row = rows.emplace_back();
  row.change = change;
  row.begin = lines.size();
  row.present.assign(values.size(), false);
  bool first = true;
  for (size_t i = 0; i < values.size(); ++i) {
    if (!values[i].present) continue;
    row.present[i] = true;
    if (!first) lines.push_back('\t');
    first = false;
    lines.append(values[i].text);
  }
  lines.push_back('\n');
  row.end = lines.size();
}

// The values of the key bindings, decoded from the message key.
class key_reader {
 public:
  key_reader(const decoder_config& config, const schema_fetcher& fetch) : format_(config.key) {
    for (size_t i = 0; i < config.columns.size(); ++i) {
      if (!config.columns[i].from_key) continue;
      bindings_.push_back(i);
      column_binding key = config.columns[i];
      key.from_key = false;
      key.metadata = metadata_field::none;
      keys_.push_back(std::move(key));
    }
    if (format_ == key_format::text) {
      if (keys_.size() != 1) throw std::invalid_argument("key_format text fills exactly one key column");
      return;
    }
    decoder_config inner;
    inner.columns = keys_;
    switch (format_) {
      case key_format::csv:
        inner.format = wire_format::csv;
        break;
      case key_format::json:
        inner.format = wire_format::json;
        // The JSON converter with schemas.enable wraps a key as {"schema": ..., "payload": {...}}:
        // the same fields under payload are bound too, and taken when the plain ones are absent.
        for (const column_binding& key : keys_) {
          column_binding wrapped = key;
          wrapped.field = "payload." + path_of(key);
          inner.columns.push_back(std::move(wrapped));
        }
        break;
      case key_format::avro:
        inner.format = wire_format::avro;
        if (fetch == nullptr) throw std::invalid_argument("key_format avro needs a schema registry");
        break;
      case key_format::text:
        break;
    }
    inner_ = make_unbounded_decoder(inner, fetch);
    inner_->set_max_decoded_bytes(config.max_decoded_bytes);
  }

  // The binding index of each key field.
  const std::vector<size_t>& bindings() const { return bindings_; }

  // Decodes the key of `message`: one raw COPY field per key binding, viewing a buffer of this
  // reader (valid until the next read). Throws format_error for a missing or malformed key.
  const std::vector<std::string_view>& read(const message_view& message) {
    if (!message.key) throw format_error("the message has no key (key_columns take their values from it)");
    line_.clear();
    values_.clear();
    if (format_ == key_format::text) {
      if (keys_[0].kind == column_kind::bytea) {
        append_copy_bytea(line_, *message.key);
      } else {
        append_copy_escaped(line_, *message.key);
      }
      values_.emplace_back(line_);
      return values_;
    }
    message_view key = message;
    key.payload = message.key;
    try {
      if (!inner_->decode(key, line_, present_)) throw format_error("the key is a csv header record");
    } catch (const format_error& e) {
      throw format_error(std::string("key: ") + e.what());
    }
    split_copy_fields(line_, count_present(present_), fields_);
    const size_t n = keys_.size();
    size_t first = 0;
    if (format_ == key_format::json) {
      bool plain = false;
      for (size_t j = 0; j < n; ++j) plain = plain || present_[j];
      if (!plain) first = n;
    }
    for (size_t j = 0, at = 0; j < first + n; ++j) {
      if (j >= first) {
        if (!present_[j]) throw format_error("key: no field \"" + path_of(keys_[j - first]) + "\"");
        values_.push_back(fields_[at]);
      }
      if (present_[j]) ++at;
    }
    return values_;
  }

 private:
  key_format format_;
  std::vector<size_t> bindings_;
  std::vector<column_binding> keys_;
  std::unique_ptr<decoder> inner_;
  std::string line_;
  column_mask present_;
  std::vector<std::string_view> fields_;
  std::vector<std::string_view> values_;
};

// key_columns without an envelope: the value decoder fills the other bindings; a tombstone
// deletes the row of its key (the source worker passes tombstones here only in mode upsert).
class keyed_decoder final : public decoder {
 public:
  keyed_decoder(const decoder_config& config, const schema_fetcher& fetch)
      : bindings_(config.columns), keys_(config, fetch) {
    decoder_config inner = config;
    inner.columns.clear();
    inner.envelope = envelope_kind::none;
    for (size_t i = 0; i < bindings_.size(); ++i) {
      if (bindings_[i].from_key) continue;
      value_bindings_.push_back(i);
      inner.columns.push_back(bindings_[i]);
    }
    if (!inner.columns.empty()) {
      value_ = make_unbounded_decoder(inner, fetch);
      value_->set_max_decoded_bytes(config.max_decoded_bytes);
    }
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    if (!message.payload) throw format_error("the message has a null value (tombstone)");
    values_.assign(bindings_.size(), field_value{});
    if (value_ != nullptr) {
      value_line_.clear();
      if (!value_->decode(message, value_line_, value_present_)) return false;
      split_copy_fields(value_line_, count_present(value_present_), fields_);
      for (size_t j = 0, at = 0; j < value_bindings_.size(); ++j) {
        if (value_present_[j]) values_[value_bindings_[j]] = field_value{true, fields_[at++]};
      }
    }
    add_key(message);
    rows_.clear();
    append_row(line, rows_, row_change::upsert, values_);
    present = std::move(rows_.back().present);
    return true;
  }

  void changes_into(const message_view& message, std::string& lines, std::vector<decoded_row>& rows) override {
    if (message.payload) {
      decoder::changes_into(message, lines, rows);
      return;
    }
    values_.assign(bindings_.size(), field_value{});
    add_key(message);
    append_row(lines, rows, row_change::remove, values_);
  }

 private:
  void add_key(const message_view& message) {
    const std::vector<std::string_view>& key = keys_.read(message);
    for (size_t k = 0; k < key.size(); ++k) values_[keys_.bindings()[k]] = field_value{true, key[k]};
  }

  std::vector<column_binding> bindings_;
  key_reader keys_;
  std::unique_ptr<decoder> value_;
  std::vector<size_t> value_bindings_;  // the binding of each value decoder's column
  std::string value_line_;
  column_mask value_present_;
  std::vector<std::string_view> fields_;
  std::vector<field_value> values_;
  std::vector<decoded_row> rows_;
};

// Debezium change events in json (with or without the JSON converter's schema/payload wrapper)
// or Avro: c and r upsert `after`, u upserts `after` (deleting `before`'s key first when the key
// changed), d deletes `before`'s key; the tombstone Debezium sends after a delete has no rows.
class debezium_decoder final : public decoder {
 public:
  debezium_decoder(const decoder_config& config, const schema_fetcher& fetch) : bindings_(config.columns) {
    if (config.format == wire_format::csv) throw std::invalid_argument("envelope debezium reads json or avro");
    if (config.primary_key.empty()) throw std::invalid_argument("envelope debezium needs the target's primary key");
    bool any_key = false;
    for (const column_binding& binding : bindings_) {
      bool in_key = false;
      for (const std::string& column : config.primary_key) in_key = in_key || column == binding.column;
      primary_.push_back(in_key);
      any_key = any_key || binding.from_key;
    }
    if (any_key) keys_ = std::make_unique<key_reader>(config, fetch);

    decoder_config inner;
    inner.format = config.format;
    inner.schema_registry_url = config.schema_registry_url;
    inner.inline_schema = config.inline_schema;
    const std::vector<std::string> prefixes =
        config.format == wire_format::json ? std::vector<std::string>{"", "payload."} : std::vector<std::string>{""};
    for (const std::string& prefix : prefixes) {
      group g;
      g.op = add(inner, prefix + "op", column_kind::text);
      g.value.assign(bindings_.size(), kNone);
      g.before.assign(bindings_.size(), kNone);
      for (size_t i = 0; i < bindings_.size(); ++i) {
        const column_binding& b = bindings_[i];
        if (b.from_key) continue;
        switch (b.metadata) {
          case metadata_field::none:
            g.value[i] = add(inner, prefix + "after." + path_of(b), b.kind);
            if (primary_[i]) g.before[i] = add(inner, prefix + "before." + path_of(b), b.kind);
            break;
          case metadata_field::change_ts_ms:
            g.value[i] = add(inner, prefix + "ts_ms", b.kind);
            break;
          case metadata_field::change_source:
            g.value[i] = add(inner, prefix + "source", b.kind);
            break;
          case metadata_field::change_op:
            g.value[i] = g.op;
            break;
          default:
            break;  // the message's own metadata
        }
      }
      groups_.push_back(std::move(g));
    }
    inner_ = make_unbounded_decoder(inner, fetch);
    inner_->set_max_decoded_bytes(config.max_decoded_bytes);
    metadata_text_.resize(bindings_.size());
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    rows_.clear();
    scratch_.clear();
    changes_into(message, scratch_, rows_);
    if (rows_.size() != 1 || rows_[0].change != row_change::upsert) {
      throw format_error("this Debezium event is not one upsert: read it with decode_changes");
    }
    line.append(scratch_);
    present = std::move(rows_[0].present);
    return true;
  }

  void changes_into(const message_view& message, std::string& lines, std::vector<decoded_row>& rows) override {
    if (!message.payload) return;  // the tombstone after a delete, for log compaction
    inner_line_.clear();
    if (!inner_->decode(message, inner_line_, inner_present_)) return;
    split_copy_fields(inner_line_, count_present(inner_present_), fields_);
    inner_values_.assign(inner_present_.size(), field_value{});
    for (size_t k = 0, at = 0; k < inner_present_.size(); ++k) {
      if (inner_present_[k]) inner_values_[k] = field_value{true, fields_[at++]};
    }
    const group* event = nullptr;
    for (const group& g : groups_) {
      if (!null_or_absent(inner_values_[g.op])) {
        event = &g;
        break;
      }
    }
    if (event == nullptr) throw format_error("not a Debezium change event: no op field");
    const std::string_view op = inner_values_[event->op].text;
    key_ = keys_ ? &keys_->read(message) : nullptr;

    if (op == "c" || op == "r") {
      upsert(*event, op, message, lines, rows);
    } else if (op == "u") {
      // A changed primary key: the row of the old key goes, the new one comes.
      if (before_key(*event) && key_changed(*event)) append_row(lines, rows, row_change::remove, values_);
      upsert(*event, op, message, lines, rows);
    } else if (op == "d") {
      if (!before_key(*event))
        throw format_error("Debezium event with op \"d\" has no before (the primary key to delete)");
      append_row(lines, rows, row_change::remove, values_);
    } else {
      std::string shown(op.substr(0, 32));
      throw format_error("unknown Debezium op \"" + shown + "\" (expected c, r, u or d)");
    }
  }

 private:
  // Inner bindings of one spelling of the envelope (plain, or under the JSON converter's payload).
  struct group {
    size_t op = kNone;
    std::vector<size_t> value;   // per binding: the inner binding of its upsert value
    std::vector<size_t> before;  // per primary key binding: the inner binding of before's value
  };

  static size_t add(decoder_config& inner, std::string field, column_kind kind) {
    column_binding binding;
    binding.column = field;
    binding.field = std::move(field);
    binding.kind = kind;
    inner.columns.push_back(std::move(binding));
    return inner.columns.size() - 1;
  }

  field_value key_value(size_t binding) const {
    const std::vector<size_t>& bindings = keys_->bindings();
    for (size_t k = 0; k < bindings.size(); ++k)
      if (bindings[k] == binding) return field_value{true, (*key_)[k]};
    return field_value{};
  }

  void upsert(const group& g, std::string_view op, const message_view& message, std::string& lines,
              std::vector<decoded_row>& rows) {
    values_.assign(bindings_.size(), field_value{});
    bool after = false;
    for (size_t i = 0; i < bindings_.size(); ++i) {
      const column_binding& b = bindings_[i];
      if (b.from_key) {
        values_[i] = key_value(i);
      } else if (b.metadata == metadata_field::none) {
        values_[i] = inner_values_[g.value[i]];
        after = after || !null_or_absent(values_[i]);
      } else if (g.value[i] != kNone) {
        values_[i] = inner_values_[g.value[i]];
        if (!values_[i].present) values_[i] = field_value{true, copy_null_marker};
      } else {
        metadata_text_[i].clear();
        append_metadata_field(metadata_text_[i], b, message, timestamps_);
        values_[i] = field_value{true, metadata_text_[i]};
      }
    }
    if (!after) {
      throw format_error("Debezium event with op \"" + std::string(op) + "\" has no after (the row to store)");
    }
    append_row(lines, rows, row_change::upsert, values_);
  }

  // Sets values_ to before's primary key; false when before does not hold all of it.
  bool before_key(const group& g) {
    values_.assign(bindings_.size(), field_value{});
    for (size_t i = 0; i < bindings_.size(); ++i) {
      if (!primary_[i]) continue;
      values_[i] = bindings_[i].from_key ? key_value(i) : inner_values_[g.before[i]];
      if (null_or_absent(values_[i])) return false;
    }
    return true;
  }

  // Whether after's primary key differs from before's (in values_).
  bool key_changed(const group& g) const {
    for (size_t i = 0; i < bindings_.size(); ++i) {
      if (!primary_[i] || bindings_[i].from_key || g.value[i] == kNone) continue;
      const field_value& after = inner_values_[g.value[i]];
      if (!null_or_absent(after) && after.text != values_[i].text) return true;
    }
    return false;
  }

  std::vector<column_binding> bindings_;
  std::vector<bool> primary_;
  std::unique_ptr<key_reader> keys_;
  const std::vector<std::string_view>* key_ = nullptr;
  std::vector<group> groups_;
  std::unique_ptr<decoder> inner_;
  std::string inner_line_;
  column_mask inner_present_;
  std::vector<std::string_view> fields_;
  std::vector<field_value> inner_values_;
  std::vector<field_value> values_;
  std::vector<std::string> metadata_text_;
  timestamp_formatter timestamps_;
  std::string scratch_;
  std::vector<decoded_row> rows_;
};

// --- entry points for fuzzing -----------------------------------------------------------------

column_binding binding_of(std::string column, column_kind kind = column_kind::text) {
  column_binding binding;
  binding.column = std::move(column);
  binding.kind = kind;
  return binding;
}

std::string rows_text(const std::string& lines, const std::vector<decoded_row>& rows) {
  std::string out;
  for (const decoded_row& row : rows) {
    out.push_back(row.change == row_change::upsert ? '+' : '-');
    out.append(lines, row.begin, row.end - row.begin);
  }
  return out;
}

const std::string& fuzz_key_schema() {
  static const std::string schema = R"({"type":"record","name":"Key","fields":[{"name":"id","type":"string"},)"
                                    R"({"name":"region","type":["null","string"],"default":null}]})";
  return schema;
}

decoder_config debezium_fuzz_config(wire_format format) {
  decoder_config config;
  config.format = format;
  config.envelope = envelope_kind::debezium;
  config.primary_key = {"id"};
  config.columns = {binding_of("id"), binding_of("name"), binding_of("status"),
                    binding_of("changed_at", column_kind::timestamp), binding_of("origin", column_kind::json)};
  config.columns[3].metadata = metadata_field::change_ts_ms;
  config.columns[4].metadata = metadata_field::change_source;
  config.max_decoded_bytes = size_t{1} << 20;
  return config;
}

std::string run_once(decoder& d, std::string_view bytes, bool with_key) {
  message_view message;
  message.topic = "fuzz";
  message.payload = bytes;
  if (with_key) {
    message.key = bytes;
    message.payload = std::string_view(R"({"name": "n"})");
  }
  std::string lines;
  std::vector<decoded_row> rows;
  d.decode_changes(message, lines, rows);
  return rows_text(lines, rows);
}

}  // namespace

std::unique_ptr<decoder> make_change_decoder(const decoder_config& config, const schema_fetcher& fetch) {
  if (config.envelope == envelope_kind::debezium) return std::make_unique<debezium_decoder>(config, fetch);
  return std::make_unique<keyed_decoder>(config, fetch);
}

std::string decode_key_for_fuzzing(key_format format, std::string_view bytes) {
  static std::unique_ptr<decoder> decoders[4];
  std::unique_ptr<decoder>& d = decoders[static_cast<int>(format)];
  if (d == nullptr) {
    decoder_config config;
    config.format = wire_format::json;
    config.key = format;
    config.max_decoded_bytes = size_t{1} << 20;
    config.columns = {binding_of("id"), binding_of("region"), binding_of("name")};
    config.columns[0].from_key = true;
    config.columns[1].from_key = format != key_format::text;
    d = make_decoder(config, [](int32_t) { return fuzz_key_schema(); });
  }
  return run_once(*d, bytes, true);
}

std::string decode_debezium_json_for_fuzzing(std::string_view bytes) {
  static std::unique_ptr<decoder> d = make_decoder(debezium_fuzz_config(wire_format::json));
  return run_once(*d, bytes, false);
}

const std::string& debezium_fuzz_avro_schema() {
  static const std::string schema = R"({"type":"record","name":"Envelope","namespace":"fuzz.customers","fields":[
  {"name":"before","type":["null",{"type":"record","name":"Value","fields":[
    {"name":"id","type":"long"},{"name":"name","type":["null","string"],"default":null},
    {"name":"status","type":["null","string"],"default":null}]}],"default":null},
  {"name":"after","type":["null","Value"],"default":null},
  {"name":"source","type":{"type":"record","name":"Source","namespace":"io.debezium.connector.mysql","fields":[
    {"name":"connector","type":"string"},{"name":"db","type":"string"},{"name":"table","type":["null","string"],"default":null}]}},
  {"name":"op","type":"string"},
  {"name":"ts_ms","type":["null","long"],"default":null}]})";
  return schema;
}

std::string decode_debezium_avro_for_fuzzing(std::string_view bytes) {
  static std::unique_ptr<decoder> d = [] {
    decoder_config config = debezium_fuzz_config(wire_format::avro);
    config.inline_schema = debezium_fuzz_avro_schema();
    return make_decoder(config);
  }();
  return run_once(*d, bytes, false);
}

}  // namespace streamrec
