// CSV encoding and timestamp text: exact bytes, because COPY and downstream consumers read them.
#include <gtest/gtest.h>

#include <limits>

#include <string>

#include "tools/datagen/prng.h"
#include "core/formats/csv_writer.h"
#include "core/formats/json_writer.h"
#include "core/formats/number_text.h"
#include "core/formats/timestamp_text.h"

namespace streamrec {
namespace {

std::string one_field(std::string_view value, csv_dialect dialect = {}) {
  std::string out;
  dialect.record_terminator.clear();
  csv_writer writer(out, dialect);
  writer.field(value);
  return out;
}

TEST(CsvWriter, QuotesOnlyWhenNeeded) {
  EXPECT_EQ(one_field("abc"), "abc");
  EXPECT_EQ(one_field("home&furniture"), "home&furniture");
  EXPECT_EQ(one_field(" leading and trailing "), " leading and trailing ");
  EXPECT_EQ(one_field("a,b"), "\"a,b\"");
  EXPECT_EQ(one_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(one_field("\""), "\"\"\"\"");
  EXPECT_EQ(one_field("line\nbreak"), "\"line\nbreak\"");
  EXPECT_EQ(one_field("carriage\rreturn"), "\"carriage\rreturn\"");
  EXPECT_EQ(one_field("12\" pan, \"cast\" iron"), "\"12\"\" pan, \"\"cast\"\" iron\"");
}

TEST(CsvWriter, EmptyStringIsNotNull) {
  // COPY reads an unquoted empty field as NULL and "" as the empty string.
  std::string out;
  csv_writer writer(out);
  writer.field("");
  writer.null_field();
  writer.field("x");
  writer.end_record();
  EXPECT_EQ(out, "\"\",,x\n");
}

TEST(CsvWriter, QuotesCopyEndOfDataMarker) {
  EXPECT_EQ(one_field("\\."), "\"\\.\"");
  EXPECT_EQ(one_field("\\.x"), "\\.x");
}

TEST(CsvWriter, CustomDialect) {
  csv_dialect dialect;
  dialect.delimiter = ';';
  dialect.quote = '\'';
  EXPECT_EQ(one_field("a,b", dialect), "a,b");
  EXPECT_EQ(one_field("a;b", dialect), "'a;b'");
  EXPECT_EQ(one_field("it's", dialect), "'it''s'");
  EXPECT_EQ(one_field("say \"hi\"", dialect), "say \"hi\"");

  csv_dialect tabs;
  tabs.delimiter = '\t';
  EXPECT_EQ(one_field("a\tb", tabs), "\"a\tb\"");
}

TEST(CsvWriter, NonEmptyNullString) {
  csv_dialect dialect;
  dialect.null_string = "\\N";
  dialect.record_terminator = "\r\n";
  std::string out;
  csv_writer writer(out, dialect);
  writer.null_field();
  writer.field("\\N");  // the literal text must not read back as NULL
  writer.field("");     // no longer ambiguous: stays unquoted
  writer.end_record();
  EXPECT_EQ(out, "\\N,\"\\N\",\r\n");
}

TEST(CsvWriter, RecordsAndTypedFields) {
  std::string out;
  csv_writer writer(out);
  writer.int_field(-42);
  writer.decimal_field(1234, 2);
  writer.decimal_field(-5, 2);
  writer.double_field(0.1);
  writer.timestamp_field(int64_t{1719579715} * 1'000'000);
  writer.end_record();
  writer.plain_field("next");
  writer.end_record();
  EXPECT_EQ(out, "-42,12.34,-0.05,0.1,2024-06-28 13:01:55\nnext\n");
}

TEST(CsvWriter, ReproducesSeedRecommendationLine) {
  // The similar_products sink must emit this value byte for byte: consumers of the Flink job's topic parse it.
  std::string out;
  csv_dialect dialect;
  dialect.record_terminator.clear();
  csv_writer writer(out, dialect);
  writer.field("user-27");
  writer.field("140,13,137,95,39,138");
  writer.quoted_field(format_sql_timestamp(int64_t{1719579715} * 1'000'000));
  EXPECT_EQ(out, "user-27,\"140,13,137,95,39,138\",\"2024-06-28 13:01:55\"");
}

TEST(CsvWriter, SetOutputStartsNewRecord) {
  std::string first;
  std::string second;
  csv_dialect dialect;
  dialect.record_terminator.clear();
  csv_writer writer(first, dialect);
  writer.field("a");
  writer.field("b");
  writer.set_output(second);
  writer.field("c");
  EXPECT_EQ(first, "a,b");
  EXPECT_EQ(second, "c");
}

TEST(NumberText, Decimals) {
  std::string out;
  append_decimal(out, 7, 0);
  out += ' ';
  append_decimal(out, 1230, 2);
  out += ' ';
  append_decimal(out, -100, 3);
  out += ' ';
  append_decimal(out, INT64_MIN, 2);
  EXPECT_EQ(out, "7 12.30 -0.100 -92233720368547758.08");
  out.clear();
  append_double(out, 1e300);
  out += ' ';
  append_double(out, -0.5);
  EXPECT_EQ(out, "1e+300 -0.5");
}

TEST(TimestampText, SqlFormat) {
  EXPECT_EQ(format_sql_timestamp(0), "1970-01-01 00:00:00");
  EXPECT_EQ(format_sql_timestamp(int64_t{1719579715} * 1'000'000), "2024-06-28 13:01:55");
  EXPECT_EQ(format_sql_timestamp(int64_t{1709251199} * 1'000'000 + 999'999), "2024-02-29 23:59:59");
  EXPECT_EQ(format_sql_timestamp(int64_t{1709251199} * 1'000'000 + 999'999, time_precision::millis),
            "2024-02-29 23:59:59.999");
  EXPECT_EQ(format_sql_timestamp(int64_t{1709251199} * 1'000'000 + 999'999, time_precision::micros),
            "2024-02-29 23:59:59.999999");
  EXPECT_EQ(format_sql_timestamp(int64_t{946684800} * 1'000'000), "2000-01-01 00:00:00");
}

TEST(TimestampText, BeforeEpochFloorsToEarlierInstant) {
  EXPECT_EQ(format_sql_timestamp(-1, time_precision::micros), "1969-12-31 23:59:59.999999");
  EXPECT_EQ(format_sql_timestamp(-1), "1969-12-31 23:59:59");
  EXPECT_EQ(format_sql_timestamp(int64_t{-2203891200} * 1'000'000), "1900-03-01 00:00:00");
}

TEST(TimestampText, Iso8601Format) {
  const int64_t t = int64_t{1719579715} * 1'000'000 + 123'456;
  EXPECT_EQ(format_iso8601(t), "2024-06-28T13:01:55.123Z");
  EXPECT_EQ(format_iso8601(t, time_precision::micros), "2024-06-28T13:01:55.123456Z");
  EXPECT_EQ(format_iso8601(t, time_precision::seconds), "2024-06-28T13:01:55Z");
  EXPECT_EQ(format_iso8601(0), "1970-01-01T00:00:00.000Z");
}

TEST(TimestampText, ParseIso8601) {
  const int64_t t = int64_t{1719579715} * 1'000'000;
  EXPECT_EQ(parse_iso8601("2024-06-28T13:01:55Z"), t);
  EXPECT_EQ(parse_iso8601("2024-06-28 13:01:55"), t);
  EXPECT_EQ(parse_iso8601("2024-06-28T15:01:55+02:00"), t);
  EXPECT_EQ(parse_iso8601("2024-06-28T08:31:55-0430"), t);
  EXPECT_EQ(parse_iso8601("2024-06-28T14:01:55+01"), t);
  EXPECT_EQ(parse_iso8601("2024-06-28T13:01:55.5Z"), t + 500'000);
  EXPECT_EQ(parse_iso8601("2024-06-28T13:01:55.1234567Z"), t + 123'456);
  EXPECT_EQ(parse_iso8601("2024-06-28T13:01Z"), t - 55'000'000);
  EXPECT_EQ(parse_iso8601("2024-06-28"), int64_t{1719532800} * 1'000'000);
  EXPECT_EQ(parse_iso8601("1969-12-31T23:59:59.999999Z"), -1);

  for (const char* bad :
       {"", "2024", "2024-13-01", "2023-02-29", "2024-06-31", "2024-06-28T24:00:00Z", "2024-06-28T13:01:55.Z",
        "2024-06-28T13:01:55+02:", "2024-06-28T13:01:55 UTC", "2024/06/28", "2024-06-28T13", "24-06-28"}) {
    EXPECT_FALSE(parse_iso8601(bad).has_value()) << bad;
  }
}

TEST(TimestampText, CivilDaysRoundTrip) {
  for (int64_t days = -800'000; days <= 800'000; days += 37) {
    int64_t year;
    unsigned month;
    unsigned day;
    civil_from_days(days, year, month, day);
    ASSERT_EQ(days_from_civil(year, month, day), days);
  }
}

TEST(TimestampText, EveryInt64InstantFormatsWithoutOverflow) {
  // The second of an instant near INT64_MIN microseconds has no microsecond count of its own
  // (found by fuzz_avro: a timestamp-micros of -2^63 overflowed computing it).
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  const int64_t highest = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(format_iso8601(lowest, time_precision::micros), "-290308-12-21T19:59:05.224192Z");
  EXPECT_EQ(format_iso8601(highest, time_precision::micros), "294247-01-10T04:00:54.775807Z");
  EXPECT_EQ(format_sql_timestamp(lowest + 1, time_precision::micros), "-290308-12-21 19:59:05.224193");
  timestamp_formatter formatter;
  for (const int64_t t : {lowest, lowest + 1, int64_t{-9223372036854774000}, highest, lowest}) {
    std::string cached;
    formatter.append_iso(cached, t, time_precision::micros);
    EXPECT_EQ(cached, format_iso8601(t, time_precision::micros));
  }
}

TEST(TimestampText, FormatterMatchesFreeFunctions) {
  // The cached formatter must agree with the stateless one for any sequence, in and out of order.
  timestamp_formatter formatter;
  datagen::rng r(7, 0, 0);
  int64_t t = int64_t{1719579715} * 1'000'000;
  for (int i = 0; i < 20000; ++i) {
    t = (i % 100 == 0) ? static_cast<int64_t>(r.below(uint64_t{1} << 52)) - (int64_t{1} << 51)
                       : t + static_cast<int64_t>(r.below(300'000));
    std::string a;
    std::string b;
    formatter.append_sql(a, t, time_precision::millis);
    append_sql_timestamp(b, t, time_precision::millis);
    ASSERT_EQ(a, b);
    a.clear();
    b.clear();
    formatter.append_iso(a, t, time_precision::micros);
    append_iso8601(b, t, time_precision::micros);
    ASSERT_EQ(a, b);
  }
}

TEST(JsonWriter, EscapesStrings) {
  std::string out;
  append_json_string(out, std::string_view("a\"b\\c\nd\te\x01"
                                           "f\x7f\xc3\xa9",
                                           14));
  EXPECT_EQ(out, "\"a\\\"b\\\\c\\nd\\te\\u0001f\x7f\xc3\xa9\"");
}

TEST(JsonWriter, FlatObject) {
  std::string out;
  json_object_writer object(out);
  object.string_field("user_id", "user-27");
  object.null_field("query");
  object.int_field("stock", 0);
  object.decimal_field("unit_cost", 1999, 2);
  object.double_field("bad", 1.0 / 0.0);
  object.bool_field("ok", true);
  object.timestamp_field("event_time", int64_t{1719579715} * 1'000'000 + 100'000);
  object.raw_field("ids", "[\"140\",\"13\"]");
  object.finish();
  EXPECT_EQ(out,
            "{\"user_id\":\"user-27\",\"query\":null,\"stock\":0,\"unit_cost\":19.99,\"bad\":null,\"ok\":true,"
            "\"event_time\":\"2024-06-28T13:01:55.100Z\",\"ids\":[\"140\",\"13\"]}");
}

}  // namespace
}  // namespace streamrec
