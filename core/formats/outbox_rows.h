// The binary row format of a sink's outbox chunks: the rows one statement inserted, typed, with
// the column names and types written once per chunk. The capture trigger writes it straight from
// the transition table and the sink worker reads the values back without any parsing of text
// (integers stay integers, timestamps stay microseconds), where a jsonb chunk made both sides
// build and walk a jsonb document per row.
//
// Layout (integers little-endian; a varint is LEB128, a signed one zigzag-coded first):
//   "SRO1"                                      magic and version
//   varint column count, then per column:       varint name length, name bytes,
//                                               uint32 PostgreSQL type oid (the element type for
//                                               an array column), one flags byte (1: array)
//   uint32 row count
//   per row, per column, one value:             a tag byte, then
//     0 null | 1 false | 2 true
//     3 integer    signed varint
//     4 timestamp  int64: microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's own count;
//                  INT64_MIN and INT64_MAX are -infinity and infinity; nothing else outside
//                  PostgreSQL's range)
//     5 text       varint length, bytes
//     6 array      varint number of dimensions (0 to 6), a varint length per dimension, then
//                  that many elements in storage order, each a value of tags 0 to 5
//
// What a value of each PostgreSQL type becomes is the capture's business (see
// extension/sink_capture.cpp); this codec only carries typed values. The reader refuses any
// input that is not a whole chunk (truncated, an unknown tag, counts that do not add up) with
// format_error, before anyone reads a value of it.
#pragma once

#include "core/postgres_free.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace streamrec {

enum class outbox_tag : uint8_t {
  null = 0,
  false_value = 1,
  true_value = 2,
  integer = 3,
  timestamp = 4,
  text = 5,
  array = 6
};

constexpr int kOutboxMaxDimensions = 6;
constexpr int64_t kOutboxTimestampMinusInfinity = INT64_MIN;
constexpr int64_t kOutboxTimestampInfinity = INT64_MAX;
// PostgreSQL's range of finite timestamps (4714-11-24 BC to 294277 AD, exclusive): a chunk holding
// another value is damaged, and the reader refuses it.
constexpr int64_t kOutboxTimestampMin = -211813488000000000;
constexpr int64_t kOutboxTimestampEnd = 9223371331200000000;

struct outbox_column {
  std::string name;
  uint32_t type = 0;  // the PostgreSQL type the capture wrote (the element type for arrays)
  bool array = false;
};

// One value of a chunk read by outbox_chunk; text points into the chunk's bytes.
struct outbox_value {
  outbox_tag tag = outbox_tag::null;
  int64_t number = 0;     // integer, timestamp
  std::string_view text;  // text
  uint32_t first = 0;     // array: its elements are elements()[first, first + count)
  uint32_t count = 0;
  uint32_t first_dimension = 0;  // array: its lengths are dimensions()[first_dimension, + dimension_count)
  uint32_t dimension_count = 0;

  bool null() const { return tag == outbox_tag::null; }
};

// Memory the writer appends to, supplied by its owner (palloc'd in the capture trigger, malloc'd
// in tests): `grow` makes room for at least `capacity` bytes, keeping the contents. Plain data,
// so that a writer may live where PostgreSQL may longjmp.
struct outbox_buffer {
  char* data = nullptr;
  size_t size = 0;
  size_t capacity = 0;
  void (*grow)(outbox_buffer& buffer, size_t capacity) = nullptr;
  void* owner = nullptr;  // for grow
};

// Writes one chunk: begin(columns), column() for each, begin_rows(), then per row a value per column (an array
// is begin_array() followed by its elements) and end_row(), and finish().
class outbox_writer {
 public:
  explicit outbox_writer(outbox_buffer& out) : out_(&out) {}

  void begin(uint32_t column_count);
  void column(std::string_view name, uint32_t type, bool array);
  void begin_rows();
  void null() { put(static_cast<char>(outbox_tag::null)); }
  void boolean(bool value) { put(static_cast<char>(value ? outbox_tag::true_value : outbox_tag::false_value)); }
  void integer(int64_t value);
  void timestamp(int64_t value);
  void text(const char* data, size_t length);
  // dimensions: `count` lengths; the product of them elements follow.
  void begin_array(int count, const int* dimensions);
  void end_row() { rows_++; }
  // Writes the row count; the chunk is out_->data[0, out_->size).
  void finish();
  uint32_t rows() const { return rows_; }

 private:
  void reserve(size_t more) {
    if (out_->size + more > out_->capacity) out_->grow(*out_, (out_->size + more) * 2);
  }
  void put(char c) {
    reserve(1);
    out_->data[out_->size++] = c;
  }
  void varint(uint64_t value);
  void fixed32(uint32_t value);
  void fixed64(uint64_t value);

  outbox_buffer* out_;
  size_t row_count_at_ = 0;
  uint32_t rows_ = 0;
};

static_assert(std::is_trivially_destructible_v<outbox_writer>,
              "the capture runs the writer where PostgreSQL may longjmp");

// A chunk read whole (and checked whole) from its bytes, which must outlive it. Reusable: read()
// again for the next chunk keeps the vectors' memory.
class outbox_chunk {
 public:
  // Throws format_error when `bytes` is not a complete, well-formed chunk.
  void read(std::string_view bytes);

  const std::vector<outbox_column>& columns() const { return columns_; }
  size_t rows() const { return rows_; }
  const outbox_value& value(size_t row, size_t column) const { return values_[row * columns_.size() + column]; }
  const std::vector<outbox_value>& elements() const { return elements_; }
  const std::vector<uint32_t>& dimensions() const { return dimensions_; }
  // The column of that name, or -1.
  int column_index(std::string_view name) const;

 private:
  std::vector<outbox_column> columns_;
  size_t rows_ = 0;
  std::vector<outbox_value> values_;
  std::vector<outbox_value> elements_;
  std::vector<uint32_t> dimensions_;
};

}  // namespace streamrec
