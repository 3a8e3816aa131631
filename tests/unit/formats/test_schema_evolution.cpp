// Schema evolution: messages of one subject written with different schema versions, decoded
// interleaved by one decoder. Every value goes to its column by field name, whatever the
// version's field order; a field no column takes is skipped; a column the version lacks is left
// out of the line (its DEFAULT applies); promoted and nullable types keep their values. Whether
// a value fits its column (a string where the column is an integer) is PostgreSQL's to say when
// the row is stored, so such a message decodes and only its row is refused later.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "tests/unit/formats/decoder_test_support.h"
#include "core/formats/confluent_avro.h"
#include "core/formats/decoder.h"

namespace streamrec {
namespace {

using namespace testing_support;

// Avro binary encoding written by hand, so each test states its exact bytes.
class avro_writer {
 public:
  avro_writer& long_value(int64_t value) {
    uint64_t zigzag = (static_cast<uint64_t>(value) << 1) ^ static_cast<uint64_t>(value >> 63);
    while (zigzag >= 0x80) {
      out_.push_back(static_cast<char>(zigzag | 0x80));
      zigzag >>= 7;
    }
    out_.push_back(static_cast<char>(zigzag));
    return *this;
  }
  avro_writer& string_value(std::string_view text) {
    long_value(static_cast<int64_t>(text.size()));
    out_.append(text);
    return *this;
  }
  avro_writer& float_value(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  avro_writer& double_value(double value) {
    uint64_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(bits >> (8 * i)));
    return *this;
  }
  std::string framed(int32_t schema_id) const { return confluent::frame(schema_id, out_); }

 private:
  std::string out_;
};

// Three versions of the subject "items-value", as a producer would register them.
// v1: the first schema.
constexpr std::string_view items_v1 = R"({"type": "record", "name": "item", "fields": [
  {"name": "id", "type": "int"},
  {"name": "name", "type": "string"},
  {"name": "price", "type": "float"},
  {"name": "qty", "type": "int"}]})";
// v2: fields reordered, int promoted to long, float to double, name widened with null, a field
// added with a default (color).
constexpr std::string_view items_v2 = R"({"type": "record", "name": "item", "fields": [
  {"name": "qty", "type": "long"},
  {"name": "id", "type": "long"},
  {"name": "price", "type": "double"},
  {"name": "name", "type": ["null", "string"], "default": null},
  {"name": "color", "type": "string", "default": "red"}]})";
// v3: name, price and color removed, a field no column takes (note), and an incompatible change:
// qty is a string.
constexpr std::string_view items_v3 = R"({"type": "record", "name": "item", "fields": [
  {"name": "note", "type": "string"},
  {"name": "id", "type": "long"},
  {"name": "qty", "type": "string"}]})";

// The target's columns: region is in no version (always its DEFAULT).
std::vector<column_binding> item_columns() {
  return {column("id"), column("name"), column("price"), column("qty"), column("color"), column("region")};
}

std::string v1(int32_t id, std::string_view name, float price, int32_t qty) {
  return avro_writer().long_value(id).string_value(name).float_value(price).long_value(qty).framed(1);
}

std::string v2(int64_t id, const char* name, double price, int64_t qty, std::string_view color) {
  avro_writer w;
  w.long_value(qty).long_value(id).double_value(price);
  if (name == nullptr) {
    w.long_value(0);
  } else {
    w.long_value(1).string_value(name);
  }
  return w.string_value(color).framed(2);
}

std::string v3(int64_t id, std::string_view qty, std::string_view note) {
  return avro_writer().string_value(note).long_value(id).string_value(qty).framed(3);
}

struct registry {
  std::map<int32_t, std::string> schemas = {
      {1, std::string(items_v1)}, {2, std::string(items_v2)}, {3, std::string(items_v3)}};
  std::map<int32_t, int> fetches;
  schema_fetcher function() {
    return [this](int32_t id) {
      ++fetches[id];
      return schemas.at(id);
    };
  }
};

TEST(SchemaEvolution, VersionsInterleavedLandByFieldName) {
  registry r;
  auto d = make_decoder(config_for(wire_format::avro, item_columns()), r.function());
  struct expectation {
    std::string message;
    std::string line;
    column_mask present;
  };
  const std::vector<expectation> stream = {
      {v1(1, "one", 1.5f, 10), "1\tone\t1.5\t10\n", mask({1, 1, 1, 1, 0, 0})},
      // Promoted types keep their values: a long past 32 bits, a double's shortest text.
      {v2(2, "two", 0.1, 20, "blue"), "2\ttwo\t0.1\t20\tblue\n", mask({1, 1, 1, 1, 1, 0})},
      {v3(3, "30", "the note is no column"), "3\t30\n", mask({1, 0, 0, 1, 0, 0})},
      {v1(4, "four", 0.1f, -4), "4\tfour\t0.1\t-4\n", mask({1, 1, 1, 1, 0, 0})},
      // The widened union's null branch is NULL, not the column's DEFAULT.
      {v2(5, nullptr, -2.5, 3000000000, "green"), "5\t\\N\t-2.5\t3000000000\tgreen\n", mask({1, 1, 1, 1, 1, 0})},
      // Incompatible: the text reaches PostgreSQL, whose integer input refuses it for this row only.
      {v3(6, "seven", "x"), "6\tseven\n", mask({1, 0, 0, 1, 0, 0})},
      {v2(1099511627776, "big", 1e300, 7, ""), "1099511627776\tbig\t1e+300\t7\t\n", mask({1, 1, 1, 1, 1, 0})},
      {v1(8, "eight\t", 3.25f, 8), "8\teight\\t\t3.25\t8\n", mask({1, 1, 1, 1, 0, 0})},
  };
  for (const expectation& e : stream) {
    const decoded out = decode_payload(*d, e.message);
    EXPECT_TRUE(out.produced);
    EXPECT_EQ(out.line, e.line);
    EXPECT_EQ(out.present, e.present) << e.line;
  }
  // Each version's schema is fetched and compiled once, however the versions interleave.
  EXPECT_EQ(r.fetches, (std::map<int32_t, int>{{1, 1}, {2, 1}, {3, 1}}));
}

TEST(SchemaEvolution, NestedPathsFollowEachVersion) {
  registry r;
  r.schemas[1] = R"({"type": "record", "name": "order", "fields": [
    {"name": "id", "type": "long"},
    {"name": "customer", "type": {"type": "record", "name": "customer", "fields": [
      {"name": "name", "type": "string"}, {"name": "city", "type": "string"}]}}]})";
  // customer made nullable and its fields reordered; city dropped, zip added.
  r.schemas[2] = R"({"type": "record", "name": "order", "fields": [
    {"name": "customer", "type": ["null", {"type": "record", "name": "customer", "fields": [
      {"name": "zip", "type": "string"}, {"name": "name", "type": "string"}]}], "default": null},
    {"name": "id", "type": "long"}]})";
  auto d = make_decoder(config_for(wire_format::avro, {column("id"), column("who", column_kind::text, "customer.name"),
                                                       column("city", column_kind::text, "customer.city")}),
                        r.function());
  const decoded first =
      decode_payload(*d, avro_writer().long_value(1).string_value("Ada").string_value("Oslo").framed(1));
  EXPECT_EQ(first.line, "1\tAda\tOslo\n");
  EXPECT_EQ(first.present, mask({1, 1, 1}));
  const decoded second =
      decode_payload(*d, avro_writer().long_value(1).string_value("0150").string_value("Bo").long_value(2).framed(2));
  EXPECT_EQ(second.line, "2\tBo\n");
  EXPECT_EQ(second.present, mask({1, 1, 0}));  // city: the column's DEFAULT
  const decoded third = decode_payload(*d, avro_writer().long_value(0).long_value(3).framed(2));
  EXPECT_EQ(third.line, "3\t\\N\n");  // no customer: its name is NULL
  EXPECT_EQ(third.present, mask({1, 1, 0}));
}

TEST(SchemaEvolution, JsonFieldsByNameWhateverTheirOrderOrCompany) {
  auto d = make_decoder(config_for(wire_format::json, item_columns()));
  const decoded first = decode_payload(*d, R"({"id": 1, "name": "one", "price": 1.5, "qty": 10})");
  EXPECT_EQ(first.line, "1\tone\t1.5\t10\n");
  EXPECT_EQ(first.present, mask({1, 1, 1, 1, 0, 0}));
  const decoded second =
      decode_payload(*d, R"({"qty": 3000000000, "id": 2, "price": 0.1, "name": null, "color": "red", "extra": [1]})");
  EXPECT_EQ(second.line, "2\t\\N\t0.1\t3000000000\tred\n");
  EXPECT_EQ(second.present, mask({1, 1, 1, 1, 1, 0}));
  const decoded third = decode_payload(*d, R"({"note": {"a": 1}, "id": 3, "qty": "seven"})");
  EXPECT_EQ(third.line, "3\tseven\n");
  EXPECT_EQ(third.present, mask({1, 0, 0, 1, 0, 0}));
}

}  // namespace
}  // namespace streamrec
