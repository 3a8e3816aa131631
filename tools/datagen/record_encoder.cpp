#include "tools/datagen/record_encoder.h"

#include "core/formats/confluent_avro.h"
#include "core/formats/csv_writer.h"
#include "core/formats/json_writer.h"

#include <cstring>

namespace streamrec::datagen {

namespace {

// Floor division so pre-1970 microseconds map to the earlier millisecond, like the text forms.
int64_t micros_to_millis(int64_t micros) {
  int64_t millis = micros / 1000;
  if (micros % 1000 < 0) --millis;
  return millis;
}

class csv_encoder final : public record_encoder {
 public:
  csv_encoder(const std::vector<field_spec>& fields, char delimiter)
      : fields_(fields), writer_(scratch_, dialect(delimiter)) {}

  void encode(const record& rec, std::string& out) override {
    writer_.set_output(out);
    for (size_t i = 0; i < fields_.size(); ++i) {
      const field_value& v = rec.values[i];
      if (v.is_null) {
        writer_.null_field();
        continue;
      }
      switch (fields_[i].type) {
        case field_type::text:
          writer_.field(v.text);
          break;
        case field_type::int32:
        case field_type::int64:
          writer_.int_field(v.number);
          break;
        case field_type::cents:
          writer_.decimal_field(v.number, 2);
          break;
        case field_type::timestamp:
          writer_.timestamp_field(v.number);
          break;
      }
    }
  }

 private:
  static csv_dialect dialect(char delimiter) {
    csv_dialect d;
    d.delimiter = delimiter;
    d.record_terminator.clear();  // the output adds newlines for files; messages need none
    return d;
  }

  std::vector<field_spec> fields_;
  std::string scratch_;
  csv_writer writer_;
};

class json_encoder final : public record_encoder {
 public:
  explicit json_encoder(const std::vector<field_spec>& fields) : fields_(fields) {}

  void encode(const record& rec, std::string& out) override {
    json_object_writer object(out);
    for (size_t i = 0; i < fields_.size(); ++i) {
      const field_value& v = rec.values[i];
      const std::string_view name = fields_[i].name;
      if (v.is_null) {
        object.null_field(name);
        continue;
      }
      switch (fields_[i].type) {
        case field_type::text:
          object.string_field(name, v.text);
          break;
        case field_type::int32:
        case field_type::int64:
          object.int_field(name, v.number);
          break;
        case field_type::cents:
          object.decimal_field(name, v.number, 2);
          break;
        case field_type::timestamp:
          object.timestamp_field(name, v.number);
          break;
      }
    }
    object.finish();
  }

 private:
  std::vector<field_spec> fields_;
};

class avro_encoder final : public record_encoder {
 public:
  avro_encoder(record_kind kind, const std::vector<field_spec>& fields, std::optional<int32_t> schema_id)
      : fields_(fields),
        schema_(avro_schema::from_json(avro_schema_json(kind, fields))),
        value_(schema_),
        schema_id_(schema_id) {}

  void encode(const record& rec, std::string& out) override {
    avro_value_t& root = value_.get();
    for (size_t i = 0; i < fields_.size(); ++i) {
      const field_value& v = rec.values[i];
      avro_value_t field = avro_field(root, i);
      if (fields_[i].nullable) {
        if (v.is_null) {
          set_avro_null_branch(field, 0);
          continue;
        }
        field = set_avro_branch(field, 1);
      }
      switch (fields_[i].type) {
        case field_type::text:
          set_avro_string(field, v.text);
          break;
        case field_type::int32:
          check_avro(avro_value_set_int(&field, static_cast<int32_t>(v.number)), "avro_value_set_int");
          break;
        case field_type::int64:
          check_avro(avro_value_set_long(&field, v.number), "avro_value_set_long");
          break;
        case field_type::cents:
          check_avro(avro_value_set_double(&field, static_cast<double>(v.number) / 100.0), "avro_value_set_double");
          break;
        case field_type::timestamp:
          check_avro(avro_value_set_long(&field, micros_to_millis(v.number)), "avro_value_set_long");
          break;
      }
    }
    if (schema_id_) {
      serializer_.append_framed(out, *schema_id_, root);
    } else {
      serializer_.append_to(out, root);
    }
  }

 private:
  std::vector<field_spec> fields_;
  avro_schema schema_;
  avro_generic_value value_;
  avro_value_serializer serializer_;
  std::optional<int32_t> schema_id_;
};

const char* avro_type(field_type type) {
  switch (type) {
    case field_type::text:
      return "\"string\"";
    case field_type::int32:
      return "\"int\"";
    case field_type::int64:
      return "\"long\"";
    case field_type::cents:
      return "\"double\"";
    case field_type::timestamp:
      return "{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}";
  }
  return "\"null\"";
}

// Avro record names are singular nouns; the kinds are plural topic-like names.
const char* avro_record_name(record_kind kind) {
  switch (kind) {
    case record_kind::inventory:
      return "product";
    case record_kind::clicks:
      return "click";
    case record_kind::purchases:
      return "purchase";
    case record_kind::users:
      return "user";
    case record_kind::checkouts:
      return "checkout";
    case record_kind::customers:
      return "customer";
    case record_kind::ratings:
      return "rating";
    case record_kind::item_transactions:
      return "item_transaction";
    case record_kind::stock_queries:
      return "stock_query";
  }
  return "record";
}

}  // namespace

std::unique_ptr<record_encoder> make_csv_encoder(const std::vector<field_spec>& fields, char delimiter) {
  return std::make_unique<csv_encoder>(fields, delimiter);
}

std::string csv_header(const std::vector<field_spec>& fields, char delimiter) {
  std::string out;
  csv_dialect d;
  d.delimiter = delimiter;
  csv_writer writer(out, d);
  for (const field_spec& f : fields) writer.field(f.name);
  return out;
}

std::unique_ptr<record_encoder> make_json_encoder(const std::vector<field_spec>& fields) {
  return std::make_unique<json_encoder>(fields);
}

std::string avro_schema_json(record_kind kind, const std::vector<field_spec>& fields) {
  std::string json = "{\"type\":\"record\",\"name\":\"";
  json += avro_record_name(kind);
  json += "\",\"namespace\":\"streamrec.datagen\",\"fields\":[";
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) json += ',';
    json += "{\"name\":\"";
    json += fields[i].name;
    json += "\",\"type\":";
    if (fields[i].nullable) {
      json += "[\"null\",";
      json += avro_type(fields[i].type);
      json += "],\"default\":null";
    } else {
      json += avro_type(fields[i].type);
    }
    json += '}';
  }
  json += "]}";
  return json;
}

std::unique_ptr<record_encoder> make_avro_encoder(record_kind kind, const std::vector<field_spec>& fields,
                                                  std::optional<int32_t> confluent_schema_id) {
  return std::make_unique<avro_encoder>(kind, fields, confluent_schema_id);
}

namespace {

const char* protobuf_type(const field_spec& field) {
  switch (field.type) {
    case field_type::text:
      return field.nullable ? "google.protobuf.StringValue" : "string";
    case field_type::int32:
      return field.nullable ? "google.protobuf.Int32Value" : "int32";
    case field_type::int64:
      return field.nullable ? "google.protobuf.Int64Value" : "int64";
    case field_type::cents:
      return field.nullable ? "google.protobuf.DoubleValue" : "double";
    case field_type::timestamp:
      return "google.protobuf.Timestamp";
  }
  return "bytes";
}

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>(value | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void put_tag(std::string& out, uint32_t field, int wire) {
  put_varint(out, uint64_t{field} << 3 | static_cast<uint32_t>(wire));
}

// Writes the Protobuf wire format by hand: a handful of field kinds, no allocation per record.
class protobuf_encoder final : public record_encoder {
 public:
  protobuf_encoder(const std::vector<field_spec>& fields, std::optional<int32_t> schema_id)
      : fields_(fields), schema_id_(schema_id) {}

  void encode(const record& rec, std::string& out) override {
    if (schema_id_) {
      confluent::append_frame_header(out, *schema_id_);
      out.push_back('\0');  // message index [0]
    }
    for (size_t i = 0; i < fields_.size(); ++i) {
      const field_value& v = rec.values[i];
      if (v.is_null) continue;  // an absent wrapper or Timestamp: NULL
      const auto number = static_cast<uint32_t>(i + 1);
      const bool wrapped = fields_[i].nullable || fields_[i].type == field_type::timestamp;
      if (!wrapped) {
        put_value(out, number, fields_[i].type, v);
        continue;
      }
      inner_.clear();
      if (fields_[i].type == field_type::timestamp) {
        const int64_t millis = micros_to_millis(v.number);
        int64_t seconds = millis / 1000;
        int64_t rest = millis % 1000;
        if (rest < 0) {
          --seconds;
          rest += 1000;
        }
        put_tag(inner_, 1, 0);
        put_varint(inner_, static_cast<uint64_t>(seconds));
        if (rest != 0) {
          put_tag(inner_, 2, 0);
          put_varint(inner_, static_cast<uint64_t>(rest * 1000000));
        }
      } else {
        put_value(inner_, 1, fields_[i].type, v);
      }
      put_tag(out, number, 2);
      put_varint(out, inner_.size());
      out.append(inner_);
    }
  }

 private:
  static void put_value(std::string& out, uint32_t number, field_type type, const field_value& v) {
    switch (type) {
      case field_type::text:
        put_tag(out, number, 2);
        put_varint(out, v.text.size());
        out.append(v.text);
        return;
      case field_type::int32:
      case field_type::int64:
        put_tag(out, number, 0);
        put_varint(out, static_cast<uint64_t>(v.number));
        return;
      case field_type::cents: {
        const double value = static_cast<double>(v.number) / 100.0;
        uint64_t bits;
        std::memcpy(&bits, &value, sizeof bits);
        put_tag(out, number, 1);
        for (int b = 0; b < 8; ++b) out.push_back(static_cast<char>(bits >> (8 * b)));
        return;
      }
      case field_type::timestamp:
        return;  // always wrapped
    }
  }

  std::vector<field_spec> fields_;
  std::optional<int32_t> schema_id_;
  std::string inner_;
};

}  // namespace

std::string protobuf_schema_text(record_kind kind, const std::vector<field_spec>& fields) {
  std::string text =
      "syntax = \"proto3\";\n"
      "package streamrec.datagen;\n\n"
      "import \"google/protobuf/timestamp.proto\";\n"
      "import \"google/protobuf/wrappers.proto\";\n\n"
      "message ";
  text += avro_record_name(kind);
  text += " {\n";
  for (size_t i = 0; i < fields.size(); ++i) {
    text += "  ";
    text += protobuf_type(fields[i]);
    text += ' ';
    text += fields[i].name;
    text += " = " + std::to_string(i + 1) + ";\n";
  }
  text += "}\n";
  return text;
}

std::unique_ptr<record_encoder> make_protobuf_encoder(const std::vector<field_spec>& fields,
                                                      std::optional<int32_t> confluent_schema_id) {
  return std::make_unique<protobuf_encoder>(fields, confluent_schema_id);
}

}  // namespace streamrec::datagen
