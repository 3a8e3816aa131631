#include "core/formats/outbox_rows.h"

#include <cstring>

#include "core/formats/format_error.h"

namespace streamrec {
namespace {

constexpr char kMagic[4] = {'S', 'R', 'O', '1'};
// More columns than a PostgreSQL table may have cannot be a chunk.
constexpr uint64_t kMaxColumns = 1600;

uint64_t zigzag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t unzigzag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Reads a chunk's bytes front to back; every read checks what is left.
class cursor {
 public:
  explicit cursor(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  size_t left() const { return static_cast<size_t>(end_ - p_); }

  uint8_t byte() {
    need(1);
    return static_cast<uint8_t>(*p_++);
  }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b = byte();
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        if (shift == 63 && b > 1) break;
        return v;
      }
    }
    throw format_error("outbox chunk: a malformed number");
  }

  uint64_t fixed(int bytes) {
    need(static_cast<size_t>(bytes));
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += bytes;
    return v;
  }

  std::string_view bytes(uint64_t n) {
    if (n > left()) truncated();
    std::string_view v(p_, static_cast<size_t>(n));
    p_ += n;
    return v;
  }

 private:
  void need(size_t n) const {
    if (n > left()) truncated();
  }
  [[noreturn]] static void truncated() { throw format_error("outbox chunk: truncated"); }

  const char* p_;
  const char* end_;
};

// One non-array value (an array's element, or the value itself).
void read_scalar(cursor& in, outbox_tag tag, outbox_value& out) {
  out.tag = tag;
  switch (tag) {
    case outbox_tag::null:
    case outbox_tag::false_value:
    case outbox_tag::true_value:
      return;
    case outbox_tag::integer:
      out.number = unzigzag(in.varint());
      return;
    case outbox_tag::timestamp:
      out.number = static_cast<int64_t>(in.fixed(8));
      if ((out.number < kOutboxTimestampMin || out.number >= kOutboxTimestampEnd) &&
          out.number != kOutboxTimestampMinusInfinity && out.number != kOutboxTimestampInfinity)
        throw format_error("outbox chunk: a timestamp out of range");
      return;
    case outbox_tag::text:
      out.text = in.bytes(in.varint());
      return;
    default:
      throw format_error("outbox chunk: unknown value tag " + std::to_string(static_cast<int>(tag)));
  }
}

}  // namespace

void outbox_writer::begin(uint32_t column_count) {
  reserve(sizeof kMagic);
  std::memcpy(out_->data + out_->size, kMagic, sizeof kMagic);
  out_->size += sizeof kMagic;
  varint(column_count);
  rows_ = 0;
}

void outbox_writer::column(std::string_view name, uint32_t type, bool array) {
  varint(name.size());
  reserve(name.size());
  std::memcpy(out_->data + out_->size, name.data(), name.size());
  out_->size += name.size();
  fixed32(type);
  put(array ? 1 : 0);
}

void outbox_writer::begin_rows() {
  row_count_at_ = out_->size;
  fixed32(0);  // finish() writes the count here
}

void outbox_writer::integer(int64_t value) {
  put(static_cast<char>(outbox_tag::integer));
  varint(zigzag(value));
}

void outbox_writer::timestamp(int64_t value) {
  put(static_cast<char>(outbox_tag::timestamp));
  fixed64(static_cast<uint64_t>(value));
}

void outbox_writer::text(const char* data, size_t length) {
  put(static_cast<char>(outbox_tag::text));
  varint(length);
  reserve(length);
  if (length > 0) std::memcpy(out_->data + out_->size, data, length);
  out_->size += length;
}

void outbox_writer::begin_array(int count, const int* dimensions) {
  put(static_cast<char>(outbox_tag::array));
  varint(static_cast<uint64_t>(count));
  for (int i = 0; i < count; i++) varint(static_cast<uint64_t>(dimensions[i]));
}

void outbox_writer::finish() {
  size_t at = out_->size;
  out_->size = row_count_at_;
  fixed32(rows_);
  out_->size = at;
}

void outbox_writer::varint(uint64_t value) {
  reserve(10);
  char* p = out_->data + out_->size;
  while (value >= 0x80) {
    *p++ = static_cast<char>((value & 0x7f) | 0x80);
    value >>= 7;
  }
  *p++ = static_cast<char>(value);
  out_->size = static_cast<size_t>(p - out_->data);
}

void outbox_writer::fixed32(uint32_t value) {
  reserve(4);
  for (int i = 0; i < 4; i++) out_->data[out_->size++] = static_cast<char>(value >> (8 * i));
}

void outbox_writer::fixed64(uint64_t value) {
  reserve(8);
  for (int i = 0; i < 8; i++) out_->data[out_->size++] = static_cast<char>(value >> (8 * i));
}

void outbox_chunk::read(std::string_view bytes) {
  columns_.clear();
  values_.clear();
  elements_.clear();
  dimensions_.clear();
  rows_ = 0;
  cursor in(bytes);
  if (in.left() < sizeof kMagic || std::memcmp(in.bytes(sizeof kMagic).data(), kMagic, sizeof kMagic) != 0)
    throw format_error("outbox chunk: not a binary outbox chunk (no SRO1 header)");
  uint64_t column_count = in.varint();
  if (column_count > kMaxColumns)
    throw format_error("outbox chunk: " + std::to_string(column_count) + " columns is more than a table has");
  columns_.resize(static_cast<size_t>(column_count));
  for (outbox_column& c : columns_) {
    c.name.assign(in.bytes(in.varint()));
    c.type = static_cast<uint32_t>(in.fixed(4));
    uint8_t flags = in.byte();
    if (flags > 1) throw format_error("outbox chunk: unknown column flags");
    c.array = flags == 1;
  }
  uint64_t rows = in.fixed(4);
  // Every value takes at least a byte: a count the bytes cannot hold is a damaged chunk (and
  // allocates nothing).
  if (column_count > 0 ? rows > in.left() / column_count : rows > in.left() + 1)
    throw format_error("outbox chunk: " + std::to_string(rows) + " rows do not fit in its bytes");
  values_.resize(static_cast<size_t>(rows * column_count));
  size_t column_at = 0;
  for (outbox_value& v : values_) {
    auto tag = static_cast<outbox_tag>(in.byte());
    const outbox_column& column = columns_[column_at];
    column_at = column_at + 1 == columns_.size() ? 0 : column_at + 1;
    if (tag != outbox_tag::array) {
      if (column.array && tag != outbox_tag::null)
        throw format_error("outbox chunk: column \"" + column.name + "\" holds a non-array value");
      read_scalar(in, tag, v);
      continue;
    }
    if (!column.array) throw format_error("outbox chunk: column \"" + column.name + "\" holds an array");
    v.tag = tag;
    uint64_t dimensions = in.varint();
    if (dimensions > static_cast<uint64_t>(kOutboxMaxDimensions))
      throw format_error("outbox chunk: an array of " + std::to_string(dimensions) + " dimensions");
    v.first_dimension = static_cast<uint32_t>(dimensions_.size());
    v.dimension_count = static_cast<uint32_t>(dimensions);
    uint64_t count = dimensions > 0 ? 1 : 0;
    for (uint64_t d = 0; d < dimensions; d++) {
      uint64_t length = in.varint();
      // Each element takes at least a byte.
      if (length > in.left() || (length > 0 && count > in.left() / length))
        throw format_error("outbox chunk: an array longer than its bytes");
      count *= length;
      dimensions_.push_back(static_cast<uint32_t>(length));
    }
    if (count > in.left()) throw format_error("outbox chunk: an array longer than its bytes");
    v.first = static_cast<uint32_t>(elements_.size());
    v.count = static_cast<uint32_t>(count);
    for (uint64_t e = 0; e < count; e++) {
      auto element_tag = static_cast<outbox_tag>(in.byte());
      if (element_tag == outbox_tag::array) throw format_error("outbox chunk: an array inside an array");
      read_scalar(in, element_tag, elements_.emplace_back());
    }
  }
  if (in.left() != 0) throw format_error("outbox chunk: " + std::to_string(in.left()) + " bytes after the last row");
  rows_ = static_cast<size_t>(rows);
}

int outbox_chunk::column_index(std::string_view name) const {
  for (size_t i = 0; i < columns_.size(); i++)
    if (columns_[i].name == name) return static_cast<int>(i);
  return -1;
}

}  // namespace streamrec
