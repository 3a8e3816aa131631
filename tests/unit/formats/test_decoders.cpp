// csv and json decoders, and the Kafka metadata columns every format shares: exact COPY lines,
// present masks, header skipping and the exact error kind for bad input.
#include <gtest/gtest.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "tests/unit/formats/decoder_test_support.h"
#include "core/formats/decoder.h"

namespace streamrec {
namespace {

using namespace testing_support;

bool contains(const std::string& text, std::string_view part) { return text.find(part) != std::string::npos; }

// --- csv ---------------------------------------------------------------------------------------------

std::unique_ptr<decoder> csv_decoder_for(std::initializer_list<const char*> names, csv_options options = {}) {
  decoder_config config = text_columns(wire_format::csv, names);
  config.csv = std::move(options);
  return make_decoder(config);
}

TEST(CsvDecoder, PlainRecord) {
  auto d = csv_decoder_for({"user_id", "product_id", "event_type"});
  const decoded out = decode_payload(*d, "user-27,140,page_view");
  EXPECT_TRUE(out.produced);
  EXPECT_EQ(out.line, "user-27\t140\tpage_view\n");
  EXPECT_EQ(out.present, mask({1, 1, 1}));
}

TEST(CsvDecoder, QuotedFieldsWithDelimitersLineBreaksAndDoubledQuotes) {
  auto d = csv_decoder_for({"a", "b", "c", "d"});
  const decoded out = decode_payload(*d, "\"x,y\",\"line1\nline2\r\nline3\",\"say \"\"hi\"\"\",\"\"\"\"");
  EXPECT_EQ(out.line, "x,y\tline1\\nline2\\r\\nline3\tsay \"hi\"\t\"\n");
}

TEST(CsvDecoder, EscapesTabsAndBackslashesForCopy) {
  auto d = csv_decoder_for({"a", "b", "c"});
  EXPECT_EQ(decode_payload(*d, "tab\there,back\\slash,\"q\\\"\"t\"").line, "tab\\there\tback\\\\slash\tq\\\\\"t\n");
}

TEST(CsvDecoder, NullIsUnquotedNullStringAndQuotedEmptyIsEmpty) {
  auto d = csv_decoder_for({"a", "b", "c", "d"});
  const decoded out = decode_payload(*d, ",\"\",x,");
  EXPECT_EQ(out.line, "\\N\t\tx\t\\N\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1}));
}

TEST(CsvDecoder, CustomNullString) {
  csv_options options;
  options.null_string = "NULL";
  auto d = csv_decoder_for({"a", "b", "c"}, options);
  EXPECT_EQ(decode_payload(*d, "NULL,\"NULL\",").line, "\\N\tNULL\t\n");
}

TEST(CsvDecoder, CustomDelimiterAndQuote) {
  csv_options options;
  options.delimiter = ';';
  options.quote = '\'';
  auto d = csv_decoder_for({"a", "b", "c"}, options);
  EXPECT_EQ(decode_payload(*d, "'x;y';'it''s';\"plain\"").line, "x;y\tit's\t\"plain\"\n");
}

TEST(CsvDecoder, TabDelimiter) {
  csv_options options;
  options.delimiter = '\t';
  auto d = csv_decoder_for({"a", "b"}, options);
  EXPECT_EQ(decode_payload(*d, "x,1\t\"y\tz\"").line, "x,1\ty\\tz\n");
}

TEST(CsvDecoder, KeepsSpacesAndUtf8) {
  auto d = csv_decoder_for({"a", "b"});
  EXPECT_EQ(decode_payload(*d, "  padded  ,caf\xc3\xa9").line, "  padded  \tcaf\xc3\xa9\n");
}

TEST(CsvDecoder, OneTrailingLineBreakIsAccepted) {
  auto d = csv_decoder_for({"a", "b"});
  EXPECT_EQ(decode_payload(*d, "x,y\n").line, "x\ty\n");
  EXPECT_EQ(decode_payload(*d, "x,\"y\"\r\n").line, "x\ty\n");
  EXPECT_EQ(decode_payload(*d, "x,\n").line, "x\t\\N\n");
}

TEST(CsvDecoder, SingleColumnEmptyPayloadIsNull) {
  auto d = csv_decoder_for({"a"});
  EXPECT_EQ(decode_payload(*d, "").line, "\\N\n");
  EXPECT_EQ(decode_payload(*d, "\"\"").line, "\n");
}

TEST(CsvDecoder, FieldCountMustMatch) {
  auto d = csv_decoder_for({"user_id", "product_id", "event_type"});
  const std::string fewer = error_of<format_error>([&] { decode_payload(*d, "a,b"); });
  EXPECT_TRUE(contains(fewer, "has 2 fields, expected 3")) << fewer;
  EXPECT_TRUE(contains(fewer, "user_id, product_id, event_type")) << fewer;
  const std::string more = error_of<format_error>([&] { decode_payload(*d, "a,b,c,d"); });
  EXPECT_TRUE(contains(more, "has 4 fields, expected 3")) << more;
}

TEST(CsvDecoder, BadQuotingNamesThePosition) {
  auto d = csv_decoder_for({"a", "b"});
  const std::string unterminated = error_of<format_error>([&] { decode_payload(*d, "x,\"never closed"); });
  EXPECT_TRUE(contains(unterminated, "opened at byte offset 2 is never closed")) << unterminated;
  const std::string after = error_of<format_error>([&] { decode_payload(*d, "\"ab\"c,d"); });
  EXPECT_TRUE(contains(after, "'c' after the closing quote at byte offset 3")) << after;
  const std::string inside = error_of<format_error>([&] { decode_payload(*d, "5\" screen,d"); });
  EXPECT_TRUE(contains(inside, "quote inside an unquoted field at byte offset 1")) << inside;
}

TEST(CsvDecoder, SecondRecordIsAnError) {
  auto d = csv_decoder_for({"a", "b"});
  const std::string error = error_of<format_error>([&] { decode_payload(*d, "x,y\nz,w"); });
  EXPECT_TRUE(contains(error, "more than one record: line break at byte offset 3")) << error;
  error_of<format_error>([&] { decode_payload(*d, "x,y\n\n"); });
  error_of<format_error>([&] { decode_payload(*d, "x,\"y\"\rz"); });
}

TEST(CsvDecoder, TombstoneIsAFormatError) {
  auto d = csv_decoder_for({"a"});
  message_view tombstone = message_with("");
  tombstone.payload.reset();
  const std::string error = error_of<format_error>([&] { decode_one(*d, tombstone); });
  EXPECT_TRUE(contains(error, "tombstone")) << error;
}

TEST(CsvDecoder, HeaderRecordsAreSkipped) {
  csv_options options;
  options.header = true;
  auto d = csv_decoder_for({"user_id", "product_id"}, options);
  std::string line = "kept\n";
  column_mask present = mask({0});
  EXPECT_FALSE(d->decode(message_with("user_id,product_id"), line, present));
  EXPECT_FALSE(d->decode(message_with("\"USER_ID\",Product_Id\r\n"), line, present));
  EXPECT_EQ(line, "kept\n");
  EXPECT_EQ(present, mask({0}));
  // Data still decodes, including a record that merely mentions a column name.
  EXPECT_TRUE(d->decode(message_with("user_id,p1"), line, present));
  EXPECT_EQ(line, "kept\nuser_id\tp1\n");
}

TEST(CsvDecoder, HeaderIsDataWhenHeaderOptionIsOff) {
  auto d = csv_decoder_for({"user_id", "product_id"});
  EXPECT_EQ(decode_payload(*d, "user_id,product_id").line, "user_id\tproduct_id\n");
}

TEST(CsvDecoder, HeaderComparesOnlyCsvFedColumns) {
  decoder_config config = config_for(wire_format::csv, {metadata_column("received", metadata_field::timestamp),
                                                        column("user_id"), column("product_id")});
  config.csv.header = true;
  auto d = make_decoder(config);
  std::string line;
  column_mask present;
  EXPECT_FALSE(d->decode(message_with("user_id,product_id"), line, present));
  EXPECT_TRUE(line.empty());
}

TEST(CsvDecoder, ErrorsLeaveTheLineUntouched) {
  auto d = csv_decoder_for({"a", "b"});
  std::string line = "row one\n";
  column_mask present;
  EXPECT_THROW((void)d->decode(message_with("x,\"y"), line, present), format_error);
  EXPECT_EQ(line, "row one\n");
  // Fails after the first field was already appended.
  EXPECT_THROW((void)d->decode(message_with(std::string_view("x,y\0z", 5)), line, present), format_error);
  EXPECT_EQ(line, "row one\n");
}

TEST(CsvDecoder, LinesPastMaxDecodedBytesAreFormatErrors) {
  decoder_config config = text_columns(wire_format::csv, {"a", "b"});
  config.max_decoded_bytes = 1024;
  auto d = make_decoder(config);
  std::string line = "row one\n";
  column_mask present;
  // Tabs double when COPY-escaped: 600 of them make 1,200 bytes of text.
  const std::string tabs = "x," + std::string(600, '\t');
  const std::string error = error_of<format_error>([&] { (void)d->decode(message_with(tabs), line, present); });
  EXPECT_EQ(error, "the message decodes to more than max_decoded_bytes (1024 bytes; at least 1203 seen)");
  EXPECT_EQ(line, "row one\n");
  EXPECT_TRUE(d->decode(message_with("x," + std::string(500, 'y')), line, present));
  EXPECT_EQ(line, "row one\nx\t" + std::string(500, 'y') + "\n");
}

TEST(JsonDecoder, LinesPastMaxDecodedBytesAreFormatErrors) {
  decoder_config config = text_columns(wire_format::json, {"a"});
  config.max_decoded_bytes = 4096;
  auto d = make_decoder(config);
  const std::string big = "{\"a\": \"" + std::string(5000, 'z') + "\"}";
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, big); }), "max_decoded_bytes (4096 bytes"));
  EXPECT_EQ(decode_payload(*d, R"({"a": "fits"})").line, "fits\n");
}

TEST(CsvDecoder, NulByteIsAFormatError) {
  auto d = csv_decoder_for({"a", "b"});
  EXPECT_THROW(decode_payload(*d, std::string_view("x,y\0z", 5)), format_error);
}

TEST(CsvDecoder, InvalidOptionsAreRejected) {
  csv_options same;
  same.delimiter = '"';
  EXPECT_THROW(csv_decoder_for({"a"}, same), std::invalid_argument);
  csv_options newline;
  newline.delimiter = '\n';
  EXPECT_THROW(csv_decoder_for({"a"}, newline), std::invalid_argument);
}

TEST(CsvDecoder, ManyMessagesIntoOneBatchBuffer) {
  auto d = csv_decoder_for({"a", "b"});
  std::string batch;
  column_mask present;
  for (int i = 0; i < 3; ++i) {
    const std::string payload = "k" + std::to_string(i) + ",\"v\"\"" + std::to_string(i) + "\"";
    ASSERT_TRUE(d->decode(message_with(payload), batch, present));
  }
  EXPECT_EQ(batch, "k0\tv\"0\nk1\tv\"1\nk2\tv\"2\n");
}

// --- metadata (shared by every format) ------------------------------------------------------------------

std::vector<column_binding> metadata_columns() {
  return {column("user_id"),
          metadata_column("kafka_time", metadata_field::timestamp, column_kind::timestamp),
          metadata_column("kafka_key", metadata_field::key),
          metadata_column("kafka_partition", metadata_field::partition),
          column("product_id"),
          metadata_column("kafka_offset", metadata_field::offset),
          metadata_column("kafka_topic", metadata_field::topic)};
}

TEST(MetadataDecoder, CsvInterleavesMetadataWithFields) {
  auto d = make_decoder(config_for(wire_format::csv, metadata_columns()));
  message_view message = message_with("u1,p1");
  message.key = "user\t1";
  const decoded out = decode_one(*d, message);
  EXPECT_EQ(out.line, "u1\t2024-06-28T13:01:55.123Z\tuser\\t1\t3\tp1\t1234\tclicks\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 1, 1, 1}));
}

TEST(MetadataDecoder, MissingTimestampAndKeyAreNull) {
  auto d = make_decoder(config_for(wire_format::json, metadata_columns()));
  message_view message = message_with(R"({"user_id":"u1"})");
  message.timestamp_ms = -1;
  message.key.reset();
  const decoded out = decode_one(*d, message);
  EXPECT_EQ(out.line, "u1\t\\N\t\\N\t3\t1234\tclicks\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 0, 1, 1}));
}

TEST(MetadataDecoder, KeyAsByteaAndEmptyKey) {
  auto d = make_decoder(config_for(wire_format::csv, {metadata_column("k", metadata_field::key, column_kind::bytea),
                                                      metadata_column("t", metadata_field::key), column("a")}));
  message_view message = message_with("x");
  message.key = "\x01\xfe\x7f";
  EXPECT_EQ(decode_one(*d, message).line, "\\\\x01fe7f\t\x01\xfe\x7f\tx\n");
  message.key = "";
  EXPECT_EQ(decode_one(*d, message).line, "\\\\x\t\tx\n");
}

TEST(MetadataDecoder, TimestampsBeforeTheEpoch) {
  auto d = make_decoder(config_for(wire_format::json, {metadata_column("t", metadata_field::timestamp)}));
  message_view message = message_with("{}");
  message.timestamp_ms = -1001;  // not the "none" marker
  EXPECT_EQ(decode_one(*d, message).line, "1969-12-31T23:59:58.999Z\n");
  message.timestamp_ms = 0;
  EXPECT_EQ(decode_one(*d, message).line, "1970-01-01T00:00:00.000Z\n");
}

// --- json ----------------------------------------------------------------------------------------------

std::unique_ptr<decoder> json_decoder_for(std::vector<column_binding> columns) {
  return make_decoder(config_for(wire_format::json, std::move(columns)));
}

TEST(JsonDecoder, FlatObjectInColumnOrder) {
  auto d = json_decoder_for({column("user_id"), column("product_id"), column("views")});
  const decoded out =
      decode_payload(*d, R"({"views": 3, "product_id": "p9", "ignored": [1, {"x": null}], "user_id": "u1"})");
  EXPECT_EQ(out.line, "u1\tp9\t3\n");
  EXPECT_EQ(out.present, mask({1, 1, 1}));
}

TEST(JsonDecoder, AbsentFieldsAreLeftOutNullsAreNull) {
  auto d = json_decoder_for({column("a"), column("b"), column("c")});
  const decoded out = decode_payload(*d, R"({"c": null, "a": "x"})");
  EXPECT_EQ(out.line, "x\t\\N\n");
  EXPECT_EQ(out.present, mask({1, 0, 1}));
  const decoded none = decode_payload(*d, "{}");
  EXPECT_EQ(none.line, "\n");
  EXPECT_EQ(none.present, mask({0, 0, 0}));
}

TEST(JsonDecoder, StringsAreUnescapedThenCopyEscaped) {
  auto d = json_decoder_for({column("s")});
  EXPECT_EQ(decode_payload(*d, R"({"s": "a\tb\nc\\d\"e\u00e9\/f\r"})").line, "a\\tb\\nc\\\\d\"e\xc3\xa9/f\\r\n");
  EXPECT_EQ(decode_payload(*d, R"({"s": ""})").line, "\n");
  EXPECT_EQ(decode_payload(*d, R"({"s": "\\N"})").line, "\\\\N\n");
}

TEST(JsonDecoder, NumbersKeepTheirExactText) {
  auto d = json_decoder_for({column("a"), column("b"), column("c"), column("d"), column("e"), column("f")});
  EXPECT_EQ(decode_payload(*d, R"({"a": 12.30, "b": 123456789012345678901234567890, "c": -0.0, "d": 1e400,
                                  "e": 1E+2, "f": -7})")
                .line,
            "12.30\t123456789012345678901234567890\t-0.0\t1e400\t1E+2\t-7\n");
}

TEST(JsonDecoder, BooleansAreTF) {
  auto d = json_decoder_for({column("a", column_kind::boolean), column("b")});
  EXPECT_EQ(decode_payload(*d, R"({"a": true, "b": false})").line, "t\tf\n");
}

TEST(JsonDecoder, NestedPaths) {
  auto d = json_decoder_for({column("city", column_kind::text, "address.city"),
                             column("zip", column_kind::text, "address.geo.zip"), column("name")});
  const decoded out =
      decode_payload(*d, R"({"name": "n", "address": {"street": "s", "geo": {"zip": "12345"}, "city": "Paris"}})");
  EXPECT_EQ(out.line, "Paris\t12345\tn\n");
  EXPECT_EQ(out.present, mask({1, 1, 1}));
}

TEST(JsonDecoder, PathThroughMissingNullOrScalarIsAbsent) {
  auto d = json_decoder_for({column("city", column_kind::text, "address.city")});
  EXPECT_EQ(decode_payload(*d, R"({"other": 1})").present, mask({0}));
  EXPECT_EQ(decode_payload(*d, R"({"address": null})").present, mask({0}));
  EXPECT_EQ(decode_payload(*d, R"({"address": "Paris"})").present, mask({0}));
  EXPECT_EQ(decode_payload(*d, R"({"address": [{"city": "x"}]})").present, mask({0}));
  EXPECT_EQ(decode_payload(*d, R"({"address": {}})").present, mask({0}));
  const decoded null_city = decode_payload(*d, R"({"address": {"city": null}})");
  EXPECT_EQ(null_city.present, mask({1}));
  EXPECT_EQ(null_city.line, "\\N\n");
}

TEST(JsonDecoder, FieldNamesWithEscapesMatch) {
  auto d = json_decoder_for({column("user")});
  EXPECT_EQ(decode_payload(*d, R"({"us\u0065r": "x"})").line, "x\n");
}

TEST(JsonDecoder, ArraysBecomeArrayLiterals) {
  auto d = json_decoder_for({column("tags", column_kind::array)});
  EXPECT_EQ(decode_payload(*d, R"({"tags": ["a", "b,c", null, 1.50, true, "NULL", "", "x y", "q\"", "b\\s"]})").line,
            R"({a,"b,c",NULL,1.50,t,"NULL","","x y","q\\"","b\\\\s"})"
            "\n");
  EXPECT_EQ(decode_payload(*d, R"({"tags": []})").line, "{}\n");
  EXPECT_EQ(decode_payload(*d, R"({"tags": [[1, 2], [3, 4]]})").line, "{{1,2},{3,4}}\n");
  EXPECT_EQ(decode_payload(*d, R"({"tags": ["tab\there"]})").line, "{\"tab\\there\"}\n");
}

TEST(JsonDecoder, ArrayOfObjectsHoldsJsonElements) {
  auto d = json_decoder_for({column("items", column_kind::array)});
  // Element text {"k":1} is quoted with \" inside the literal; COPY then doubles the backslash.
  EXPECT_EQ(decode_payload(*d, R"({"items": [{"k":1}, {"k":[2]}]})").line, R"({"{\\"k\\":1}","{\\"k\\":[2]}"})"
                                                                           "\n");
}

TEST(JsonDecoder, JsonColumnsGetJsonText) {
  auto d = json_decoder_for({column("doc", column_kind::json), column("list", column_kind::json),
                             column("str", column_kind::json), column("num", column_kind::json),
                             column("flag", column_kind::json), column("none", column_kind::json)});
  const decoded out =
      decode_payload(*d, R"({"doc": {"x": [1, 2], "y": "a\tb"} , "list": [1, "two"], "str": "say \"hi\"", "num": 1.0,
             "flag": false, "none": null})");
  EXPECT_EQ(out.line, "{\"x\": [1, 2], \"y\": \"a\\\\tb\"}\t[1, \"two\"]\t\"say \\\\\"hi\\\\\"\"\t1.0\tfalse\t\\N\n");
}

TEST(JsonDecoder, ObjectsIntoTextColumnsAreJsonText) {
  auto d = json_decoder_for({column("doc")});
  EXPECT_EQ(decode_payload(*d, R"({"doc": {"a": {"b": true}}})").line, "{\"a\": {\"b\": true}}\n");
}

TEST(JsonDecoder, TimestampColumnsTakeEpochMillisOrText) {
  auto d = json_decoder_for({column("ts", column_kind::timestamp)});
  EXPECT_EQ(decode_payload(*d, R"({"ts": 1719579715123})").line, "2024-06-28T13:01:55.123Z\n");
  EXPECT_EQ(decode_payload(*d, R"({"ts": 0})").line, "1970-01-01T00:00:00.000Z\n");
  EXPECT_EQ(decode_payload(*d, R"({"ts": -1})").line, "1969-12-31T23:59:59.999Z\n");
  EXPECT_EQ(decode_payload(*d, R"({"ts": 1719579715123.5})").line, "2024-06-28T13:01:55.123500Z\n");
  EXPECT_EQ(decode_payload(*d, R"({"ts": 1.7e12})").line, "2023-11-14T22:13:20.000Z\n");
  EXPECT_EQ(decode_payload(*d, R"({"ts": "2024-06-28 13:01:55+02"})").line, "2024-06-28 13:01:55+02\n");
  EXPECT_THROW(decode_payload(*d, R"({"ts": 99999999999999999999})"), format_error);
  EXPECT_THROW(decode_payload(*d, R"({"ts": 9223372036854775807})"), format_error);
}

TEST(JsonDecoder, DuplicateKeysLastWins) {
  auto d = json_decoder_for({column("a"), column("b")});
  EXPECT_EQ(decode_payload(*d, R"({"a": "first", "b": 1, "a": "second"})").line, "second\t1\n");
}

TEST(JsonDecoder, OneFieldFeedsSeveralColumns) {
  auto d = json_decoder_for({column("raw", column_kind::json, "event"), column("kind", column_kind::text, "event.kind"),
                             column("copy", column_kind::text, "event.kind"),
                             column("deep", column_kind::text, "event.detail.n"), column("user")});
  const decoded out = decode_payload(*d, R"({"user": "u", "event": {"kind": "view", "detail": {"n": 5, "m": [1]}}})");
  EXPECT_EQ(out.line, "{\"kind\": \"view\", \"detail\": {\"n\": 5, \"m\": [1]}}\tview\tview\t5\tu\n");
  EXPECT_EQ(out.present, mask({1, 1, 1, 1, 1}));
}

TEST(JsonDecoder, NestedMultiUseAtSeveralLevels) {
  auto d = json_decoder_for({column("a", column_kind::json, "a"), column("b", column_kind::json, "a.b"),
                             column("c", column_kind::text, "a.b.c"), column("d", column_kind::text, "a.d")});
  const decoded out = decode_payload(*d, R"({"a": {"b": {"c": "x"}, "d": 2}})");
  EXPECT_EQ(out.line, "{\"b\": {\"c\": \"x\"}, \"d\": 2}\t{\"c\": \"x\"}\tx\t2\n");
}

TEST(JsonDecoder, FieldDefaultsToColumnName) {
  auto d = json_decoder_for({column("product_id", column_kind::text, "item.id"), column("user_id")});
  EXPECT_EQ(decode_payload(*d, R"({"user_id": "u", "item": {"id": "p"}, "product_id": "wrong"})").line, "p\tu\n");
}

TEST(JsonDecoder, NotAnObjectIsAFormatError) {
  auto d = json_decoder_for({column("a")});
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, "[1, 2]"); }), "is an array, not an object"));
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, "\"text\""); }), "is a string, not an object"));
  EXPECT_TRUE(contains(error_of<format_error>([&] { decode_payload(*d, "42"); }), "is a number, not an object"));
}

TEST(JsonDecoder, InvalidJsonIsAFormatErrorWithSimdjsonsMessage) {
  auto d = json_decoder_for({column("a")});
  const std::string empty = error_of<format_error>([&] { decode_payload(*d, ""); });
  EXPECT_TRUE(contains(empty, "invalid JSON")) << empty;
  for (const char* bad : {R"({"a": 1)",
                          R"({"a" 1})",
                          R"({"a": 1,})",
                          R"({"a": [1})",
                          R"({"a": "x\q"})",
                          R"({"a": 01})",
                          R"({"a": 1.})",
                          R"({"a": -})",
                          R"({"a": tru})",
                          R"({"a": nul})",
                          R"({"a": 1e5x})",
                          R"({a: 1})",
                          "{\"a\": \"\xff\"}",
                          R"({"a": 1} x)",
                          R"({"a": 1}})",
                          R"({"a": 1}{"b": 2})",
                          R"({"a": "ok", "skipped": tru})",
                          R"({"skipped": [1, 02]})",
                          R"({"skipped": {"x": "\u12"}})",
                          "not json"}) {
    const std::string error = error_of<format_error>([&] { decode_payload(*d, bad); });
    EXPECT_TRUE(contains(error, "JSON") || contains(error, "json")) << bad << " -> " << error;
  }
}

TEST(JsonDecoder, NamesTheFieldInErrors) {
  auto d = json_decoder_for({column("a")});
  const std::string error = error_of<format_error>([&] { decode_payload(*d, R"({"views": 0x10})"); });
  EXPECT_TRUE(contains(error, "at field views")) << error;
}

TEST(JsonDecoder, DeepNestingIsRejected) {
  auto d = json_decoder_for({column("a")});
  std::string deep = "{\"x\":";
  for (int i = 0; i < 200; ++i) deep += "[";
  for (int i = 0; i < 200; ++i) deep += "]";
  deep += "}";
  EXPECT_THROW(decode_payload(*d, deep), format_error);
}

TEST(JsonDecoder, TombstoneIsAFormatError) {
  auto d = json_decoder_for({column("a")});
  message_view tombstone = message_with("");
  tombstone.payload.reset();
  EXPECT_THROW(decode_one(*d, tombstone), format_error);
}

TEST(JsonDecoder, NulCharacterIsAFormatError) {
  auto d = json_decoder_for({column("a")});
  EXPECT_THROW(decode_payload(*d, R"({"a": "x\u0000y"})"), format_error);
}

TEST(JsonDecoder, ErrorsLeaveTheLineUntouched) {
  auto d = json_decoder_for({column("a"), column("b")});
  std::string line = "row one\n";
  column_mask present;
  EXPECT_THROW((void)d->decode(message_with(R"({"a": "x", "b": tru})"), line, present), format_error);
  EXPECT_EQ(line, "row one\n");
}

TEST(JsonDecoder, PayloadLargerThanEarlierOnes) {
  auto d = json_decoder_for({column("a")});
  EXPECT_EQ(decode_payload(*d, R"({"a": "small"})").line, "small\n");
  const std::string big(100000, 'z');
  EXPECT_EQ(decode_payload(*d, "{\"a\": \"" + big + "\"}").line, big + "\n");
  EXPECT_EQ(decode_payload(*d, R"({"a": "small again"})").line, "small again\n");
}

}  // namespace
}  // namespace streamrec
