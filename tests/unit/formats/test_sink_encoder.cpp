// Sink encoders: the Flink recommender's csv line byte for byte, json, Confluent Avro read back with the
// schema the sink registers, keys, and rows no format can hold.
#include <gtest/gtest.h>

#include <avro.h>

#include "core/formats/confluent_avro.h"
#include "core/formats/format_error.h"
#include "core/formats/sink_encoder.h"

namespace streamrec {
namespace {

constexpr int64_t kSeedWindowEnd = int64_t{1719579715} * 1'000'000;  // 2024-06-28 13:01:55 UTC

sink_value text(std::string t) {
  sink_value v;
  v.null = false;
  v.text = std::move(t);
  return v;
}

sink_value timestamp(int64_t epoch_us, bool infinite = false) {
  sink_value v;
  v.null = false;
  v.epoch_us = epoch_us;
  v.infinite = infinite;
  return v;
}

sink_value list(std::vector<std::optional<std::string>> elements) {
  sink_value v;
  v.null = false;
  v.elements = std::move(elements);
  return v;
}

std::vector<sink_column> seed_columns() {
  return {{"user_id", sink_kind::text, false},
          {"product_ids", sink_kind::text, true},
          {"window_end", sink_kind::timestamp, false}};
}

std::vector<sink_value> seed_row() {
  return {text("user-27"), list({"140", "13", "137", "95", "39", "138"}), timestamp(kSeedWindowEnd)};
}

std::string encode(sink_format format, const std::vector<sink_column>& columns, const std::vector<sink_value>& row,
                   int32_t schema_id = 0) {
  sink_encoder_config config;
  config.format = format;
  config.columns = columns;
  config.schema_id = schema_id;
  std::string out;
  make_sink_encoder(config)->encode(row, out);
  return out;
}

TEST(SinkEncoder, CsvReproducesSeedLine) {
  EXPECT_EQ(encode(sink_format::csv, seed_columns(), seed_row()),
            "user-27,\"140,13,137,95,39,138\",\"2024-06-28 13:01:55\"");
}

TEST(SinkEncoder, CsvQuotesNullsAndSpecials) {
  std::vector<sink_column> columns = {{"a", sink_kind::text, false},
                                      {"b", sink_kind::text, false},
                                      {"c", sink_kind::integer, false},
                                      {"d", sink_kind::boolean, false},
                                      {"e", sink_kind::timestamp, false}};
  std::vector<sink_value> row = {text("x,\"y\""), sink_value{}, text("-42"), text("t"), timestamp(kSeedWindowEnd + 5)};
  EXPECT_EQ(encode(sink_format::csv, columns, row), "\"x,\"\"y\"\"\",,-42,true,\"2024-06-28 13:01:55.000005\"");
  EXPECT_EQ(encode(sink_format::csv, {{"a", sink_kind::text, false}}, {text("")}), "\"\"");
}

TEST(SinkEncoder, JsonObjectWithArraysAndIsoTimestamps) {
  EXPECT_EQ(encode(sink_format::json, seed_columns(), seed_row()),
            "{\"user_id\":\"user-27\",\"product_ids\":[\"140\",\"13\",\"137\",\"95\",\"39\",\"138\"],"
            "\"window_end\":\"2024-06-28T13:01:55.000Z\"}");
  std::vector<sink_column> columns = {{"n", sink_kind::integer, true},   {"f", sink_kind::floating, false},
                                      {"g", sink_kind::floating, false}, {"b", sink_kind::boolean, false},
                                      {"j", sink_kind::json, false},     {"z", sink_kind::text, false}};
  std::vector<sink_value> row = {list({"1", std::nullopt, "3"}), text("1.5"), text("NaN"), text("f"),
                                 text("{\"k\": [1]}"),           sink_value{}};
  EXPECT_EQ(encode(sink_format::json, columns, row),
            "{\"n\":[1,null,3],\"f\":1.5,\"g\":null,\"b\":false,\"j\":{\"k\": [1]},\"z\":null}");
}

TEST(SinkEncoder, InfiniteTimestampIsUnencodableInEveryFormat) {
  std::vector<sink_value> row = seed_row();
  row[2] = timestamp(0, true);
  for (sink_format f : {sink_format::csv, sink_format::json, sink_format::avro})
    EXPECT_THROW(encode(f, seed_columns(), row, 7), format_error);
}

TEST(SinkEncoder, AvroIsConfluentFramedAndReadsBackWithItsSchema) {
  std::vector<sink_column> columns = seed_columns();
  columns.push_back({"stock", sink_kind::integer, false});
  columns.push_back({"rating", sink_kind::floating, false});
  std::vector<sink_value> row = seed_row();
  row.push_back(text("12"));
  row.push_back(sink_value{});
  std::string message = encode(sink_format::avro, columns, row, 42);
  confluent::framed_message framed = confluent::parse_frame(message);
  EXPECT_EQ(framed.schema_id, 42);

  avro_schema schema = avro_schema::from_json(avro_value_schema("recs-value", columns));
  avro_generic_value value(schema);
  avro_value_deserializer reader;
  reader.read(framed.payload, value.get());
  avro_value_t field = avro_field(value.get(), 0);
  avro_value_t branch;
  ASSERT_EQ(avro_value_get_current_branch(&field, &branch), 0);
  EXPECT_EQ(get_avro_string(branch), "user-27");
  field = avro_field(value.get(), 1);
  ASSERT_EQ(avro_value_get_current_branch(&field, &branch), 0);
  size_t count = 0;
  ASSERT_EQ(avro_value_get_size(&branch, &count), 0);
  EXPECT_EQ(count, 6u);
  field = avro_field(value.get(), 2);
  ASSERT_EQ(avro_value_get_current_branch(&field, &branch), 0);
  int64_t millis = 0;
  ASSERT_EQ(avro_value_get_long(&branch, &millis), 0);
  EXPECT_EQ(millis, kSeedWindowEnd / 1000);
  field = avro_field(value.get(), 3);
  ASSERT_EQ(avro_value_get_current_branch(&field, &branch), 0);
  ASSERT_EQ(avro_value_get_long(&branch, &millis), 0);
  EXPECT_EQ(millis, 12);
  field = avro_field(value.get(), 4);
  int discriminant = -1;
  ASSERT_EQ(avro_value_get_discriminant(&field, &discriminant), 0);
  EXPECT_EQ(discriminant, 0);  // null
}

TEST(SinkEncoder, AvroRejectsNonIntegerText) {
  EXPECT_THROW(encode(sink_format::avro, {{"n", sink_kind::integer, false}}, {text("12x")}, 1), format_error);
}

TEST(SinkEncoder, AvroSchemaSanitizesNames) {
  EXPECT_EQ(avro_value_schema("flink.recommended-products", {{"1st", sink_kind::boolean, false}}),
            "{\"type\":\"record\",\"name\":\"flink_recommended_products\",\"fields\":[{\"name\":\"_1st\","
            "\"type\":[\"null\",\"boolean\"],\"default\":null}]}");
}

TEST(SinkEncoder, KeysFromOneOrSeveralColumns) {
  EXPECT_EQ(encode_sink_key({seed_columns()[0]}, {text("user-27")}), "user-27");
  EXPECT_EQ(encode_sink_key({seed_columns()[0]}, {sink_value{}}), std::nullopt);
  EXPECT_EQ(encode_sink_key({seed_columns()[0], seed_columns()[2]}, {text("a,b"), timestamp(kSeedWindowEnd)}),
            "\"a,b\",2024-06-28 13:01:55");
}

}  // namespace
}  // namespace streamrec
