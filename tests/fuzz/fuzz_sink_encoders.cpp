// libFuzzer target: the sink encoders, with a round trip. The input chooses the columns (kinds,
// arrays), a csv dialect and a row of values spelled as PostgreSQL prints them; each format's
// encoding must then decode with the matching source decoder, and text survives unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/formats/confluent_avro.h"
#include "core/formats/sink_encoder.h"
#include "fuzz_support.h"

namespace streamrec::fuzzing {
namespace {

// PostgreSQL's timestamp range, in microseconds from 1970 (4713 BC to 294276 AD).
constexpr int64_t min_timestamp_us = -211813488000000000;
constexpr int64_t max_timestamp_us = 9223371331199999999;

// Valid UTF-8 without NUL, as text from a UTF8 database always is.
std::string utf8_text(FuzzedDataProvider& in) {
  const std::string bytes = in.ConsumeRandomLengthString(64);
  std::string out;
  for (const char ch : bytes) {
    const auto b = static_cast<unsigned char>(ch);
    if (b == 0) {
      out.push_back(' ');
    } else if (b < 0x80) {
      out.push_back(static_cast<char>(b));
    } else {
      // Another code point for each high byte: two, three and four byte sequences.
      uint32_t cp = b < 0xc0   ? 0x80 + (b - 0x80) * 13
                    : b < 0xf0 ? 0x800 + (b - 0xc0) * 1021
                               : 0x10000 + (b - 0xf0) * 65521;
      if (cp >= 0xd800 && cp <= 0xdfff) cp = 0xfffd;
      if (cp < 0x800) {
        out.push_back(static_cast<char>(0xc0 | cp >> 6));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xe0 | cp >> 12));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      } else {
        out.push_back(static_cast<char>(0xf0 | cp >> 18));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      }
      out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  return out;
}

// A value of `kind` as PostgreSQL's output function spells it.
std::string scalar_text(FuzzedDataProvider& in, sink_kind kind) {
  switch (kind) {
    case sink_kind::integer:
      return std::to_string(in.ConsumeIntegral<int64_t>());
    case sink_kind::floating: {
      static const char* const special[] = {"NaN", "Infinity", "-Infinity", "0", "-0", "1e+300", "1.5e-320"};
      if (in.ConsumeBool()) return special[in.ConsumeIntegralInRange<size_t>(0, 6)];
      char buf[40];
      const double value = in.ConsumeFloatingPoint<double>();
      std::snprintf(buf, sizeof buf, "%.17g", value);
      return buf;
    }
    case sink_kind::numeric: {
      if (in.ConsumeIntegralInRange<int>(0, 9) == 0) return "NaN";
      std::string digits = std::to_string(in.ConsumeIntegral<int64_t>());
      const size_t scale = in.ConsumeIntegralInRange<size_t>(0, 6);
      if (scale > 0) digits += "." + std::string(scale, '7');
      return digits;
    }
    case sink_kind::boolean:
      return in.ConsumeBool() ? "t" : "f";
    case sink_kind::json: {
      static const char* const documents[] = {
          "{}", "[]", "null", "1.5", "\"s\\t\"", R"({"a": [1, {"b": null}]})", R"({"k\u00e9": "\ud83d\ude00"})"};
      return documents[in.ConsumeIntegralInRange<size_t>(0, 6)];
    }
    default:
      return utf8_text(in);
  }
}

sink_value value_of(FuzzedDataProvider& in, const sink_column& column) {
  sink_value v;
  v.null = in.ConsumeIntegralInRange<int>(0, 7) == 0;
  if (v.null) return v;
  if (column.array) {
    const size_t count = in.ConsumeIntegralInRange<size_t>(0, 5);
    for (size_t i = 0; i < count; ++i) {
      if (in.ConsumeIntegralInRange<int>(0, 4) == 0) {
        v.elements.emplace_back(std::nullopt);
      } else {
        v.elements.emplace_back(column.kind == sink_kind::timestamp ? utf8_text(in) : scalar_text(in, column.kind));
      }
    }
  } else if (column.kind == sink_kind::timestamp) {
    v.epoch_us = in.ConsumeIntegralInRange<int64_t>(min_timestamp_us, max_timestamp_us);
    v.infinite = in.ConsumeIntegralInRange<int>(0, 15) == 0;
  } else {
    v.text = scalar_text(in, column.kind);
  }
  return v;
}

column_kind decoded_kind(const sink_column& c) {
  if (c.array) return column_kind::array;
  if (c.kind == sink_kind::json) return column_kind::json;
  if (c.kind == sink_kind::timestamp) return column_kind::timestamp;
  if (c.kind == sink_kind::boolean) return column_kind::boolean;
  return column_kind::text;
}

// Encoders and decoders are made once per configuration (an Avro schema takes long to parse),
// and forgotten when there are many.
struct codec_pair {
  std::unique_ptr<sink_encoder> encoder;
  std::unique_ptr<decoder> d;
};

codec_pair& codecs_for(const sink_encoder_config& encoder_config, const decoder_config& decoder_config) {
  static std::map<std::string, codec_pair> cache;
  std::string key = std::to_string(static_cast<int>(encoder_config.format)) + encoder_config.csv.delimiter +
                    encoder_config.csv.quote + encoder_config.csv.null_string + '\n';
  for (const sink_column& c : encoder_config.columns)
    key += std::to_string(static_cast<int>(c.kind)) + (c.array ? "a" : "s");
  auto found = cache.find(key);
  if (found == cache.end()) {
    if (cache.size() >= 4096) cache.clear();
    found = cache.emplace(key, codec_pair{make_sink_encoder(encoder_config), make_decoder(decoder_config)}).first;
  }
  return found->second;
}

// Encodes `row`; when the encoder takes it, the decoder must read it back, text unchanged.
void round_trip(sink_encoder_config encoder_config, decoder_config decoder_config, const std::vector<sink_value>& row,
                bool compare_text) {
  codec_pair& codecs = codecs_for(encoder_config, decoder_config);
  std::string encoded;
  try {
    codecs.encoder->encode(row, encoded);
  } catch (const format_error&) {
    return;  // a row the format cannot hold (an infinite timestamp, ...)
  }
  decoder* const d = codecs.d.get();
  message_view message;
  message.topic = "fuzz";
  std::string_view body = encoded;
  if (encoder_config.format == sink_format::avro) body = confluent::parse_frame(encoded).payload;
  message.payload = body;
  const std::optional<decoded_row> decoded = decode_checked(*d, decoder_config.columns, message);
  require(decoded.has_value() && decoded->stored, "a sink encoding does not decode", encoded);
  require(decoded->fields.size() == row.size(), "a sink encoding decodes to other columns", encoded);
  if (!compare_text) return;
  for (size_t i = 0; i < row.size(); ++i) {
    const sink_column& c = encoder_config.columns[i];
    if (c.array || c.kind != sink_kind::text) continue;
    if (row[i].null) {
      require(!decoded->fields[i].has_value(), "a NULL did not come back", encoded);
    } else {
      require(decoded->fields[i] == row[i].text, "text did not come back unchanged", encoded);
    }
  }
}

}  // namespace
}  // namespace streamrec::fuzzing

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace streamrec;
  using namespace streamrec::fuzzing;
  FuzzedDataProvider in(data, size);
  std::vector<sink_column> columns;
  const size_t count = in.ConsumeIntegralInRange<size_t>(1, 6);
  for (size_t i = 0; i < count; ++i) {
    sink_column c;
    c.name = "c" + std::to_string(i);
    c.kind = static_cast<sink_kind>(in.ConsumeIntegralInRange<int>(0, 6));
    c.array = in.ConsumeIntegralInRange<int>(0, 3) == 0;
    columns.push_back(c);
  }
  static const char delimiters[] = {',', ';', '\t', '|'};
  static const char quotes[] = {'"', '\''};
  static const char* const nulls[] = {"", "NULL", "\\N"};
  csv_dialect dialect;
  dialect.delimiter = delimiters[in.ConsumeIntegralInRange<size_t>(0, 3)];
  dialect.quote = quotes[in.ConsumeIntegralInRange<size_t>(0, 1)];
  dialect.null_string = nulls[in.ConsumeIntegralInRange<size_t>(0, 2)];
  std::vector<sink_value> row;
  for (const sink_column& c : columns) row.push_back(value_of(in, c));

  std::vector<column_binding> bindings;
  for (const sink_column& c : columns) bindings.push_back(column(c.name, decoded_kind(c)));
  std::vector<column_binding> text_bindings;
  for (const sink_column& c : columns) text_bindings.push_back(column(c.name));

  sink_encoder_config encoder;
  encoder.columns = columns;
  encoder.csv = dialect;
  decoder_config decoder;

  encoder.format = sink_format::csv;
  decoder.format = wire_format::csv;
  decoder.columns = text_bindings;
  decoder.csv.delimiter = dialect.delimiter;
  decoder.csv.quote = dialect.quote;
  decoder.csv.null_string = dialect.null_string;
  round_trip(encoder, decoder, row, true);

  encoder.format = sink_format::json;
  decoder = {};
  decoder.format = wire_format::json;
  decoder.columns = bindings;
  round_trip(encoder, decoder, row, true);

  encoder.format = sink_format::avro;
  encoder.schema_id = 1;
  decoder = {};
  decoder.format = wire_format::avro;
  decoder.columns = bindings;
  decoder.inline_schema = avro_value_schema("row", columns);
  round_trip(encoder, decoder, row, true);

  // Keys: any row of the key columns encodes (or is refused as a format_error).
  try {
    (void)encode_sink_key(columns, row);
  } catch (const format_error&) {
  }
  return 0;
}
