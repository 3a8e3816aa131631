// The binary outbox chunk: what the capture writes the sink worker reads back value for value,
// and anything that is not a whole chunk is refused with format_error (never a crash or a read
// past the bytes: the worker sets such a chunk aside).
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>

#include "core/formats/format_error.h"
#include "core/formats/outbox_rows.h"

namespace streamrec {
namespace {

void grow_with_realloc(outbox_buffer& buffer, size_t capacity) {
  buffer.data = static_cast<char*>(std::realloc(buffer.data, capacity));
  if (buffer.data == nullptr) std::abort();
  buffer.capacity = capacity;
}

// A chunk's bytes from a writer, in memory the test owns.
class chunk_bytes {
 public:
  chunk_bytes() { buffer_.grow = grow_with_realloc; }
  ~chunk_bytes() { std::free(buffer_.data); }
  outbox_buffer& buffer() { return buffer_; }
  std::string str() const { return std::string(buffer_.data, buffer_.size); }

 private:
  outbox_buffer buffer_;
};

constexpr uint32_t kText = 25, kInt8 = 20, kBool = 16, kTimestamptz = 1184;

// Three columns (text, int8[], timestamptz, bool) and three rows covering every tag.
std::string sample_chunk() {
  chunk_bytes bytes;
  outbox_writer w(bytes.buffer());
  w.begin(4);
  w.column("user_id", kText, false);
  w.column("ids", kInt8, true);
  w.column("at", kTimestamptz, false);
  w.column("ok", kBool, false);
  w.begin_rows();
  w.text("user-27", 7);
  int one[1] = {3};
  w.begin_array(1, one);
  w.integer(140);
  w.null();
  w.integer(-9007199254740993);
  w.timestamp(772808515000000);
  w.boolean(true);
  w.end_row();
  w.text("", 0);
  int two[2] = {2, 2};
  w.begin_array(2, two);
  w.integer(INT64_MIN);
  w.integer(INT64_MAX);
  w.integer(0);
  w.integer(-1);
  w.timestamp(kOutboxTimestampInfinity);
  w.boolean(false);
  w.end_row();
  w.null();
  w.begin_array(0, nullptr);
  w.timestamp(kOutboxTimestampMinusInfinity);
  w.null();
  w.end_row();
  w.finish();
  EXPECT_EQ(w.rows(), 3u);
  return bytes.str();
}

TEST(OutboxRows, RoundTripsEveryKindOfValue) {
  std::string bytes = sample_chunk();
  outbox_chunk chunk;
  chunk.read(bytes);
  ASSERT_EQ(chunk.columns().size(), 4u);
  EXPECT_EQ(chunk.columns()[0].name, "user_id");
  EXPECT_EQ(chunk.columns()[0].type, kText);
  EXPECT_FALSE(chunk.columns()[0].array);
  EXPECT_EQ(chunk.columns()[1].name, "ids");
  EXPECT_TRUE(chunk.columns()[1].array);
  EXPECT_EQ(chunk.columns()[2].type, kTimestamptz);
  EXPECT_EQ(chunk.column_index("at"), 2);
  EXPECT_EQ(chunk.column_index("missing"), -1);
  ASSERT_EQ(chunk.rows(), 3u);

  EXPECT_EQ(chunk.value(0, 0).tag, outbox_tag::text);
  EXPECT_EQ(chunk.value(0, 0).text, "user-27");
  const outbox_value& ids = chunk.value(0, 1);
  ASSERT_EQ(ids.tag, outbox_tag::array);
  ASSERT_EQ(ids.count, 3u);
  ASSERT_EQ(ids.dimension_count, 1u);
  EXPECT_EQ(chunk.dimensions()[ids.first_dimension], 3u);
  EXPECT_EQ(chunk.elements()[ids.first].number, 140);
  EXPECT_TRUE(chunk.elements()[ids.first + 1].null());
  EXPECT_EQ(chunk.elements()[ids.first + 2].number, -9007199254740993);
  EXPECT_EQ(chunk.value(0, 2).tag, outbox_tag::timestamp);
  EXPECT_EQ(chunk.value(0, 2).number, 772808515000000);
  EXPECT_EQ(chunk.value(0, 3).tag, outbox_tag::true_value);

  EXPECT_EQ(chunk.value(1, 0).tag, outbox_tag::text);
  EXPECT_EQ(chunk.value(1, 0).text, "");
  const outbox_value& square = chunk.value(1, 1);
  ASSERT_EQ(square.dimension_count, 2u);
  ASSERT_EQ(square.count, 4u);
  EXPECT_EQ(chunk.dimensions()[square.first_dimension + 1], 2u);
  EXPECT_EQ(chunk.elements()[square.first].number, INT64_MIN);
  EXPECT_EQ(chunk.elements()[square.first + 1].number, INT64_MAX);
  EXPECT_EQ(chunk.elements()[square.first + 3].number, -1);
  EXPECT_EQ(chunk.value(1, 2).number, kOutboxTimestampInfinity);
  EXPECT_EQ(chunk.value(1, 3).tag, outbox_tag::false_value);

  EXPECT_TRUE(chunk.value(2, 0).null());
  EXPECT_EQ(chunk.value(2, 1).tag, outbox_tag::array);
  EXPECT_EQ(chunk.value(2, 1).count, 0u);
  EXPECT_EQ(chunk.value(2, 2).number, kOutboxTimestampMinusInfinity);
  EXPECT_TRUE(chunk.value(2, 3).null());

  // Reading the next chunk into the same object starts afresh.
  chunk_bytes empty;
  outbox_writer w(empty.buffer());
  w.begin(1);
  w.column("only", kText, false);
  w.begin_rows();
  w.finish();
  std::string none = empty.str();
  chunk.read(none);
  EXPECT_EQ(chunk.rows(), 0u);
  EXPECT_EQ(chunk.columns().size(), 1u);
  EXPECT_TRUE(chunk.elements().empty());
}

TEST(OutboxRows, LargeTextAndManyRows) {
  chunk_bytes bytes;
  outbox_writer w(bytes.buffer());
  w.begin(2);
  w.column("n", kInt8, false);
  w.column("body", kText, false);
  w.begin_rows();
  std::string big(300000, 'x');
  for (int i = 0; i < 1000; i++) {
    w.integer(i * 1000003LL - 500000000);
    if (i == 500)
      w.text(big.data(), big.size());
    else
      w.text("r", 1);
    w.end_row();
  }
  w.finish();
  std::string s = bytes.str();
  outbox_chunk chunk;
  chunk.read(s);
  ASSERT_EQ(chunk.rows(), 1000u);
  for (int i = 0; i < 1000; i++) EXPECT_EQ(chunk.value(static_cast<size_t>(i), 0).number, i * 1000003LL - 500000000);
  EXPECT_EQ(chunk.value(500, 1).text.size(), big.size());
  EXPECT_EQ(chunk.value(999, 1).text, "r");
}

TEST(OutboxRows, EveryTruncationIsRefused) {
  std::string bytes = sample_chunk();
  outbox_chunk chunk;
  for (size_t n = 0; n < bytes.size(); n++) {
    std::string prefix = bytes.substr(0, n);
    EXPECT_THROW(chunk.read(prefix), format_error) << "prefix of " << n << " bytes";
  }
  std::string longer = bytes + "x";
  EXPECT_THROW(chunk.read(longer), format_error);
}

TEST(OutboxRows, MalformedHeadersAndCountsAreRefused) {
  outbox_chunk chunk;
  EXPECT_THROW(chunk.read("[{\"user_id\": \"u\"}]"), format_error);  // a jsonb chunk's text
  EXPECT_THROW(chunk.read(std::string("SRO2\x00\x00\x00\x00\x00", 9)), format_error);
  // 2,000 columns, more than a table may have.
  EXPECT_THROW(chunk.read(std::string("SRO1\xd0\x0f", 6)), format_error);
  // One column and a row count of 4 billion in a few bytes: refused before allocating.
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\xff\xff\xff\xff\x00", 16)), format_error);
  // No columns and a huge row count.
  EXPECT_THROW(chunk.read(std::string("SRO1\x00\xff\xff\xff\xff", 9)), format_error);
  // A value tag that does not exist.
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\x01\x00\x00\x00\x09", 17)), format_error);
  // An array in a scalar column, and a scalar in an array column.
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\x01\x00\x00\x00\x06\x00", 18)), format_error);
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x01\x01\x00\x00\x00\x05\x00", 18)), format_error);
  // An array of 7 dimensions, one whose lengths multiply past its bytes, one inside an array.
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x01\x01\x00\x00\x00\x06\x07", 18)), format_error);
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x01\x01\x00\x00\x00\x06\x02\xff\xff\x03\xff\xff"
                                      "\x03\x00",
                                      24)),
               format_error);
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x01\x01\x00\x00\x00\x06\x01\x01\x06\x00", 20)),
               format_error);
  // A varint that never ends, and one past 64 bits.
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\x01\x00\x00\x00\x03\xff\xff", 19)),
               format_error);
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\x01\x00\x00\x00\x03"
                                      "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f",
                                      27)),
               format_error);
  // A timestamp outside PostgreSQL's range (one microsecond before infinity).
  EXPECT_THROW(chunk.read(std::string("SRO1\x01\x01x\xa0\x04\x00\x00\x00\x01\x00\x00\x00\x04"
                                      "\xfe\xff\xff\xff\xff\xff\xff\x7f",
                                      25)),
               format_error);
  // A well-formed one-value chunk, for contrast.
  chunk.read(std::string("SRO1\x01\x01x\x19\x00\x00\x00\x00\x01\x00\x00\x00\x03\x54", 18));
  EXPECT_EQ(chunk.value(0, 0).number, 42);
}

TEST(OutboxRows, DamagedBytesAreRefusedOrReadWithinBounds) {
  // Flipped bytes anywhere: read() either refuses or returns values that lie inside the input.
  std::string bytes = sample_chunk();
  std::mt19937 random(7);
  outbox_chunk chunk;
  for (int trial = 0; trial < 20000; trial++) {
    std::string damaged = bytes;
    int flips = 1 + static_cast<int>(random() % 3);
    for (int f = 0; f < flips; f++) damaged[random() % damaged.size()] = static_cast<char>(random());
    try {
      chunk.read(damaged);
    } catch (const format_error&) {
      continue;
    }
    for (size_t r = 0; r < chunk.rows(); r++)
      for (size_t c = 0; c < chunk.columns().size(); c++) {
        const outbox_value& v = chunk.value(r, c);
        if (v.tag == outbox_tag::text) {
          EXPECT_TRUE(v.text.data() >= damaged.data() &&
                      v.text.data() + v.text.size() <= damaged.data() + damaged.size());
        }
        if (v.tag == outbox_tag::array) {
          EXPECT_LE(v.first + v.count, chunk.elements().size());
        }
      }
  }
}

}  // namespace
}  // namespace streamrec
