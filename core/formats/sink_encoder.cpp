#include "core/formats/sink_encoder.h"

#include <avro.h>

#include <cctype>
#include <charconv>
#include <cstdlib>

#include "core/formats/confluent_avro.h"
#include "core/formats/format_error.h"
#include "core/formats/json_writer.h"

namespace streamrec {
namespace {

void require_finite(const sink_column& column, const sink_value& value) {
  if (value.infinite)
    throw format_error("column \"" + column.name + "\": timestamp " + (value.epoch_us < 0 ? "-infinity" : "infinity") +
                       " cannot be encoded");
}

// Whole seconds print as the Flink recommender did ("2024-06-28 13:01:55"); finer values keep microseconds.
time_precision sql_precision(int64_t epoch_us) {
  return epoch_us % 1'000'000 == 0 ? time_precision::seconds : time_precision::micros;
}

time_precision iso_precision(int64_t epoch_us) {
  return epoch_us % 1'000 == 0 ? time_precision::millis : time_precision::micros;
}

bool is_true(const std::string& text) { return text == "t" || text == "true"; }

// PostgreSQL prints NaN and infinities for float and numeric; JSON has no spelling for them.
bool is_json_number(const std::string& text) {
  if (text.empty()) return false;
  for (char c : text)
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) return false;
  return text[0] == '-' || (text[0] >= '0' && text[0] <= '9');
}

class csv_sink_encoder final : public sink_encoder {
 public:
  explicit csv_sink_encoder(const sink_encoder_config& config)
      : columns_(config.columns), writer_(scratch_, one_record(config.csv)) {}

  void encode(const std::vector<sink_value>& row, std::string& out) override {
    writer_.set_output(out);
    for (size_t i = 0; i < columns_.size(); i++) {
      const sink_column& column = columns_[i];
      const sink_value& value = row[i];
      if (value.null) {
        writer_.null_field();
      } else if (column.array) {
        // Lists as the Flink recommender wrote them: the elements joined with commas inside one quoted field.
        joined_.clear();
        for (size_t e = 0; e < value.elements.size(); e++) {
          if (e > 0) joined_.push_back(',');
          if (value.elements[e]) joined_ += *value.elements[e];
        }
        writer_.quoted_field(joined_);
      } else if (column.kind == sink_kind::timestamp) {
        require_finite(column, value);
        joined_.clear();
        timestamps_.append_sql(joined_, value.epoch_us, sql_precision(value.epoch_us));
        writer_.quoted_field(joined_);
      } else if (column.kind == sink_kind::boolean) {
        writer_.plain_field(is_true(value.text) ? "true" : "false");
      } else {
        writer_.field(value.text);
      }
    }
  }

 private:
  static csv_dialect one_record(csv_dialect dialect) {
    dialect.record_terminator.clear();
    return dialect;
  }

  std::vector<sink_column> columns_;
  std::string scratch_;
  csv_writer writer_;
  std::string joined_;
  timestamp_formatter timestamps_;  // rows of a batch mostly share their second
};

class json_sink_encoder final : public sink_encoder {
 public:
  explicit json_sink_encoder(const sink_encoder_config& config) : columns_(config.columns) {}

  void encode(const std::vector<sink_value>& row, std::string& out) override {
    json_object_writer object(out);
    for (size_t i = 0; i < columns_.size(); i++) {
      const sink_column& column = columns_[i];
      const sink_value& value = row[i];
      if (value.null) {
        object.null_field(column.name);
      } else if (column.array) {
        scratch_.clear();
        scratch_.push_back('[');
        for (size_t e = 0; e < value.elements.size(); e++) {
          if (e > 0) scratch_.push_back(',');
          append_scalar(scratch_, column.kind, value.elements[e]);
        }
        scratch_.push_back(']');
        object.raw_field(column.name, scratch_);
      } else if (column.kind == sink_kind::timestamp) {
        require_finite(column, value);
        object.timestamp_field(column.name, value.epoch_us, iso_precision(value.epoch_us));
      } else {
        scratch_.clear();
        append_scalar(scratch_, column.kind, value.text);
        object.raw_field(column.name, scratch_);
      }
    }
    object.finish();
  }

 private:
  // Array elements of timestamp arrays arrive as PostgreSQL text and stay strings.
  static void append_scalar(std::string& out, sink_kind kind, const std::optional<std::string>& text) {
    if (!text) {
      out += "null";
      return;
    }
    switch (kind) {
      case sink_kind::integer:
      case sink_kind::floating:
      case sink_kind::numeric:
        out += is_json_number(*text) ? *text : "null";
        return;
      case sink_kind::boolean:
        out += is_true(*text) ? "true" : "false";
        return;
      case sink_kind::json:
        out += *text;
        return;
      default:
        append_json_string(out, *text);
    }
  }

  std::vector<sink_column> columns_;
  std::string scratch_;
};

const char* avro_type_name(sink_kind kind) {
  switch (kind) {
    case sink_kind::integer:
      return "\"long\"";
    case sink_kind::floating:
      return "\"double\"";
    case sink_kind::boolean:
      return "\"boolean\"";
    case sink_kind::timestamp:
      return "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}";
    default:
      return "\"string\"";
  }
}

std::string avro_name(const std::string& name) {
  std::string out;
  for (char c : name) out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_');
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(out.begin(), '_');
  return out;
}

int64_t parse_integer(const sink_column& column, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw format_error("column \"" + column.name + "\": \"" + text + "\" is not a 64-bit integer");
  return v;
}

class avro_sink_encoder final : public sink_encoder {
 public:
  explicit avro_sink_encoder(const sink_encoder_config& config)
      : columns_(config.columns),
        schema_id_(config.schema_id),
        schema_(avro_schema::from_json(avro_value_schema("row", config.columns))),
        value_(schema_) {}

  // avro-c's own complaints about a value are this row's problem too.
  void encode(const std::vector<sink_value>& row, std::string& out) override {
    try {
      encode_row(row, out);
    } catch (const avro_error& e) {
      throw format_error(e.what());
    }
  }

 private:
  void encode_row(const std::vector<sink_value>& row, std::string& out) {
    avro_value_t& record = value_.get();
    check_avro(avro_value_reset(&record), "avro_value_reset");
    for (size_t i = 0; i < columns_.size(); i++) {
      const sink_column& column = columns_[i];
      const sink_value& value = row[i];
      avro_value_t field = avro_field(record, i);
      if (value.null) {
        set_avro_null_branch(field);
        continue;
      }
      avro_value_t present = set_avro_branch(field, 1);
      if (column.array) {
        for (const std::optional<std::string>& element : value.elements) {
          avro_value_t item;
          check_avro(avro_value_append(&present, &item, nullptr), "avro_value_append");
          if (!element) {
            set_avro_null_branch(item);
            continue;
          }
          avro_value_t item_value = set_avro_branch(item, 1);
          set_scalar(column, item_value, *element, 0, false);
        }
      } else {
        set_scalar(column, present, value.text, value.epoch_us, value.infinite);
      }
    }
    serializer_.append_framed(out, schema_id_, record);
  }

  static void set_scalar(const sink_column& column, avro_value_t& target, const std::string& text, int64_t epoch_us,
                         bool infinite) {
    switch (column.kind) {
      case sink_kind::integer:
        check_avro(avro_value_set_long(&target, parse_integer(column, text)), "avro_value_set_long");
        return;
      case sink_kind::floating:
        check_avro(avro_value_set_double(&target, std::strtod(text.c_str(), nullptr)), "avro_value_set_double");
        return;
      case sink_kind::boolean:
        check_avro(avro_value_set_boolean(&target, is_true(text)), "avro_value_set_boolean");
        return;
      case sink_kind::timestamp: {
        if (column.array) {
          // Timestamp arrays carry PostgreSQL text per element (see sink_value).
          throw format_error("column \"" + column.name + "\": arrays of timestamps are not supported in avro");
        }
        if (infinite) throw format_error("column \"" + column.name + "\": timestamp infinity cannot be encoded");
        int64_t millis = epoch_us / 1000 - (epoch_us % 1000 < 0 ? 1 : 0);
        check_avro(avro_value_set_long(&target, millis), "avro_value_set_long");
        return;
      }
      default:
        set_avro_string(target, text);
    }
  }

  std::vector<sink_column> columns_;
  int32_t schema_id_;
  avro_schema schema_;
  avro_generic_value value_;
  avro_value_serializer serializer_;
};

}  // namespace

std::string avro_value_schema(const std::string& record_name, const std::vector<sink_column>& columns) {
  std::string json = "{\"type\":\"record\",\"name\":";
  append_json_string(json, avro_name(record_name));
  json += ",\"fields\":[";
  for (size_t i = 0; i < columns.size(); i++) {
    const sink_column& c = columns[i];
    if (i > 0) json.push_back(',');
    json += "{\"name\":";
    append_json_string(json, avro_name(c.name));
    json += ",\"type\":[\"null\",";
    if (c.array) {
      json += "{\"type\":\"array\",\"items\":[\"null\",";
      json += c.kind == sink_kind::timestamp ? "\"string\"" : avro_type_name(c.kind);
      json += "]}";
    } else {
      json += avro_type_name(c.kind);
    }
    json += "],\"default\":null}";
  }
  json += "]}";
  return json;
}

std::optional<std::string> encode_sink_key(const std::vector<sink_column>& columns,
                                           const std::vector<sink_value>& values) {
  bool any = false;
  for (const sink_value& v : values) any = any || !v.null;
  if (!any) return std::nullopt;
  auto text_of = [](const sink_column& c, const sink_value& v) {
    if (c.kind != sink_kind::timestamp || c.array || v.null) return v.text;
    require_finite(c, v);
    return format_sql_timestamp(v.epoch_us, sql_precision(v.epoch_us));
  };
  if (columns.size() == 1) return text_of(columns[0], values[0]);
  std::string out;
  csv_dialect dialect;
  dialect.record_terminator.clear();
  csv_writer writer(out, dialect);
  for (size_t i = 0; i < columns.size(); i++) {
    if (values[i].null)
      writer.null_field();
    else
      writer.field(text_of(columns[i], values[i]));
  }
  return out;
}

std::unique_ptr<sink_encoder> make_sink_encoder(const sink_encoder_config& config) {
  if (config.format == sink_format::json) return std::make_unique<json_sink_encoder>(config);
  if (config.format == sink_format::avro) return std::make_unique<avro_sink_encoder>(config);
  if (config.format == sink_format::protobuf) return make_protobuf_sink_encoder(config);
  return std::make_unique<csv_sink_encoder>(config);
}

}  // namespace streamrec
