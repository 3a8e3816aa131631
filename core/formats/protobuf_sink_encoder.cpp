// Rows into Confluent-framed Protobuf messages of the schema protobuf_value_schema() derives from
// the columns, written straight in the wire format (no libprotobuf at run time).
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/formats/confluent_avro.h"
#include "core/formats/format_error.h"
#include "core/formats/sink_encoder.h"

namespace streamrec {

namespace {

std::string proto_name(const std::string& name) {
  std::string out;
  for (const char c : name) out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_');
  if (out.empty() || std::isdigit(static_cast<unsigned char>(out[0]))) out.insert(out.begin(), '_');
  return out;
}

const char* wrapper_of(sink_kind kind) {
  switch (kind) {
    case sink_kind::integer:
      return "google.protobuf.Int64Value";
    case sink_kind::floating:
      return "google.protobuf.DoubleValue";
    case sink_kind::boolean:
      return "google.protobuf.BoolValue";
    case sink_kind::timestamp:
      return "google.protobuf.Timestamp";
    default:
      return "google.protobuf.StringValue";
  }
}

const char* repeated_of(sink_kind kind) {
  switch (kind) {
    case sink_kind::integer:
      return "int64";
    case sink_kind::floating:
      return "double";
    case sink_kind::boolean:
      return "bool";
    default:
      return "string";  // timestamps in arrays travel as PostgreSQL's text, as in Avro
  }
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

void put_fixed64(std::string& out, uint64_t bits) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>(bits >> (8 * i)));
}

void put_double(std::string& out, double value) {
  uint64_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  put_fixed64(out, bits);
}

// Appends a length-delimited field whose payload `fill(out)` writes. The payload's length goes
// before it, so it is written to `scratch` first.
template <typename Fill>
void put_nested(std::string& out, uint32_t field, std::string& scratch, Fill fill) {
  scratch.clear();
  fill(scratch);
  put_tag(out, field, 2);
  put_varint(out, scratch.size());
  out.append(scratch);
}

int64_t parse_integer(const sink_column& column, const std::string& text) {
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw format_error("column \"" + column.name + "\": \"" + text + "\" is not a 64-bit integer");
  return v;
}

bool is_true(const std::string& text) { return text == "t" || text == "true"; }

class protobuf_sink_encoder final : public sink_encoder {
 public:
  explicit protobuf_sink_encoder(const sink_encoder_config& config)
      : columns_(config.columns), schema_id_(config.schema_id) {}

  void encode(const std::vector<sink_value>& row, std::string& out) override {
    confluent::append_frame_header(out, schema_id_);
    out.push_back('\0');  // message index [0]: the schema's only message
    for (size_t i = 0; i < columns_.size(); ++i) {
      const sink_column& column = columns_[i];
      const sink_value& value = row[i];
      if (value.null) continue;  // an absent wrapper or Timestamp reads as NULL; an absent list as empty
      const auto field = static_cast<uint32_t>(i + 1);
      if (column.array) {
        put_array(out, field, column, value);
      } else if (column.kind == sink_kind::timestamp) {
        if (value.infinite) {
          throw format_error("column \"" + column.name + "\": timestamp " +
                             (value.epoch_us < 0 ? "-infinity" : "infinity") + " cannot be encoded");
        }
        int64_t seconds = value.epoch_us / 1000000;
        int64_t micros = value.epoch_us % 1000000;
        if (micros < 0) {
          seconds -= 1;
          micros += 1000000;
        }
        put_nested(out, field, scratch_, [&](std::string& inner) {
          put_tag(inner, 1, 0);
          put_varint(inner, static_cast<uint64_t>(seconds));
          put_tag(inner, 2, 0);
          put_varint(inner, static_cast<uint64_t>(micros * 1000));
        });
      } else {
        put_nested(out, field, scratch_, [&](std::string& inner) { put_scalar(inner, 1, column, value.text); });
      }
    }
  }

 private:
  static void put_scalar(std::string& out, uint32_t field, const sink_column& column, const std::string& text) {
    switch (column.kind) {
      case sink_kind::integer:
        put_tag(out, field, 0);
        put_varint(out, static_cast<uint64_t>(parse_integer(column, text)));
        return;
      case sink_kind::floating:
        put_tag(out, field, 1);
        put_double(out, std::strtod(text.c_str(), nullptr));
        return;
      case sink_kind::boolean:
        put_tag(out, field, 0);
        put_varint(out, is_true(text) ? 1 : 0);
        return;
      default:
        put_tag(out, field, 2);
        put_varint(out, text.size());
        out.append(text);
        return;
    }
  }

  void put_array(std::string& out, uint32_t field, const sink_column& column, const sink_value& value) {
    for (const std::optional<std::string>& element : value.elements) {
      if (!element) {
        throw format_error("column \"" + column.name + "\": a NULL array element cannot be encoded in Protobuf");
      }
    }
    if (value.elements.empty()) return;
    const bool packed =
        column.kind == sink_kind::integer || column.kind == sink_kind::floating || column.kind == sink_kind::boolean;
    if (!packed) {
      for (const std::optional<std::string>& element : value.elements) put_scalar(out, field, column, *element);
      return;
    }
    put_nested(out, field, scratch_, [&](std::string& inner) {
      for (const std::optional<std::string>& element : value.elements) {
        if (column.kind == sink_kind::integer) {
          put_varint(inner, static_cast<uint64_t>(parse_integer(column, *element)));
        } else if (column.kind == sink_kind::floating) {
          put_double(inner, std::strtod(element->c_str(), nullptr));
        } else {
          put_varint(inner, is_true(*element) ? 1 : 0);
        }
      }
    });
  }

  std::vector<sink_column> columns_;
  int32_t schema_id_;
  std::string scratch_;
};

}  // namespace

std::string protobuf_value_schema(const std::string& message_name, const std::vector<sink_column>& columns) {
  std::string text =
      "syntax = \"proto3\";\n\n"
      "import \"google/protobuf/timestamp.proto\";\n"
      "import \"google/protobuf/wrappers.proto\";\n\n"
      "message " +
      proto_name(message_name) + " {\n";
  for (size_t i = 0; i < columns.size(); ++i) {
    const sink_column& c = columns[i];
    text += "  ";
    if (c.array) {
      text += "repeated ";
      text += repeated_of(c.kind);
    } else {
      text += wrapper_of(c.kind);
    }
    text += " " + proto_name(c.name) + " = " + std::to_string(i + 1) + ";\n";
  }
  text += "}\n";
  return text;
}

std::unique_ptr<sink_encoder> make_protobuf_sink_encoder(const sink_encoder_config& config) {
  return std::make_unique<protobuf_sink_encoder>(config);
}

}  // namespace streamrec
