// CSV (RFC 4180) messages, one record per message, into COPY text lines.
//
// A record is scanned once into field spans; nothing is copied until the line is written, where
// each field is COPY-escaped straight from the payload (and doubled quotes are collapsed on the
// way). Strict about quoting: a quote inside an unquoted field, text after a closing quote and an
// unterminated quoted field are format errors with their byte offset, because guessing there
// would silently change values (PostgreSQL's own CSV reader would read them differently).
#include <array>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/formats/copy_text.h"
#include "core/formats/decoder_support.h"

namespace streamrec {

namespace {

std::string describe_byte(char c) {
  if (c == '\n') return "a line feed";
  if (c == '\r') return "a carriage return";
  if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
    return "byte " + std::to_string(static_cast<unsigned char>(c));
  }
  return std::string("'") + c + "'";
}

bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

class csv_decoder final : public decoder {
 public:
  explicit csv_decoder(const decoder_config& config) : bindings_(config.columns), options_(config.csv) {
    if (options_.delimiter == options_.quote) {
      throw std::invalid_argument("csv delimiter and quote must be different characters");
    }
    for (const char c : {options_.delimiter, options_.quote}) {
      if (c == '\n' || c == '\r' || c == '\0') {
        throw std::invalid_argument("csv delimiter and quote cannot be a line break or NUL");
      }
    }
    for (const column_binding& binding : bindings_) {
      if (binding.metadata == metadata_field::none) field_columns_.push_back(binding.column);
    }
    stops_[static_cast<unsigned char>(options_.delimiter)] = true;
    stops_[static_cast<unsigned char>(options_.quote)] = true;
    stops_[static_cast<unsigned char>('\n')] = true;
    stops_[static_cast<unsigned char>('\r')] = true;
  }

 protected:
  bool decode_into(const message_view& message, std::string& line, column_mask& present) override {
    if (!message.payload) throw format_error("csv message has a null payload (tombstone)");
    const std::string_view record = *message.payload;
    split(record);
    if (field_count_ != field_columns_.size()) {
      throw format_error("csv record has " + std::to_string(field_count_) + " fields, expected " +
                         std::to_string(field_columns_.size()) + " (" + column_list() + ")");
    }
    if (options_.header && is_header(record)) return false;

    present.assign(bindings_.size(), true);
    copy_line out(line);
    size_t next_field = 0;
    for (const column_binding& binding : bindings_) {
      if (binding.metadata != metadata_field::none) {
        append_metadata_field(out.begin_field(), binding, message, kafka_timestamps_);
        continue;
      }
      const field_span& field = fields_[next_field++];
      const std::string_view text = record.substr(field.begin, field.end - field.begin);
      if (!field.quoted && text == options_.null_string) {
        out.null();
      } else if (!field.doubled_quotes) {
        out.text(text);
      } else {
        append_collapsing_quotes(out.begin_field(), text);
      }
    }
    out.finish();
    return true;
  }

 private:
  struct field_span {
    uint32_t begin;
    uint32_t end;
    bool quoted;
    bool doubled_quotes;  // a quoted field holding "" pairs, collapsed when written
  };

  // Splits one record into fields_. A single trailing line break ("\n" or "\r\n") is allowed;
  // any other line break outside quotes means a second record.
  void split(std::string_view record) {
    field_count_ = 0;
    const size_t size = record.size();
    if (size > UINT32_MAX) throw format_error("csv message larger than 4 GiB");
    const char* const data = record.data();
    const char delimiter = options_.delimiter;
    const char quote = options_.quote;
    size_t pos = 0;
    while (true) {
      if (pos < size && data[pos] == quote) {
        const size_t opened = pos;
        const size_t begin = ++pos;
        bool doubled = false;
        size_t end;
        while (true) {
          const void* found = pos < size ? std::memchr(data + pos, quote, size - pos) : nullptr;
          if (found == nullptr) {
            throw format_error("csv quoted field opened at byte offset " + std::to_string(opened) + " is never closed");
          }
          const size_t at = static_cast<size_t>(static_cast<const char*>(found) - data);
          if (at + 1 < size && data[at + 1] == quote) {
            doubled = true;
            pos = at + 2;
            continue;
          }
          end = at;
          pos = at + 1;
          break;
        }
        add_field(begin, end, true, doubled);
        if (pos == size) return;
        if (data[pos] == delimiter) {
          ++pos;
          continue;
        }
        if (data[pos] == '\n' || data[pos] == '\r') {
          expect_record_end(record, pos);
          return;
        }
        throw format_error("csv has " + describe_byte(data[pos]) + " after the closing quote at byte offset " +
                           std::to_string(pos - 1) + " (expected the delimiter or the end of the record)");
      }
      const size_t begin = pos;
      pos = unquoted_end(data, pos, size);
      add_field(begin, pos, false, false);
      if (pos == size) return;
      const char stop = data[pos];
      if (stop == delimiter) {
        ++pos;
        continue;
      }
      if (stop == quote) {
        throw format_error("csv has a quote inside an unquoted field at byte offset " + std::to_string(pos) +
                           " (quote the whole field and double the quote)");
      }
      expect_record_end(record, pos);
      return;
    }
  }

  // Writes the span in place: building a field_span on the stack and copying it into a vector
  // stalled on store forwarding, a third of the decode time of a short record.
  void add_field(size_t begin, size_t end, bool quoted, bool doubled) {
    if (field_count_ == fields_.size()) fields_.resize(fields_.size() * 2 + 8);
    field_span& field = fields_[field_count_++];
    field.begin = static_cast<uint32_t>(begin);
    field.end = static_cast<uint32_t>(end);
    field.quoted = quoted;
    field.doubled_quotes = doubled;
  }

  // The offset of the first delimiter, quote or line break at or after `pos` (or `size`).
  size_t unquoted_end(const char* data, size_t pos, size_t size) const {
    // Eight bytes at a time while none of them can stop the field.
    while (size - pos >= 8) {
      uint64_t word;
      std::memcpy(&word, data + pos, sizeof word);
      if (has_byte(word, options_.delimiter) || has_byte(word, options_.quote) || has_byte(word, '\n') ||
          has_byte(word, '\r')) {
        break;
      }
      pos += 8;
    }
    while (pos < size && !stops_[static_cast<unsigned char>(data[pos])]) ++pos;
    return pos;
  }

  static bool has_byte(uint64_t word, char byte) {
    constexpr uint64_t ones = 0x0101010101010101ULL;
    const uint64_t x = word ^ (ones * static_cast<unsigned char>(byte));
    return ((x - ones) & ~x & (ones << 7)) != 0;
  }

  static void expect_record_end(std::string_view record, size_t pos) {
    const std::string_view rest = record.substr(pos);
    if (rest == "\n" || rest == "\r\n") return;
    throw format_error("csv message holds more than one record: line break at byte offset " + std::to_string(pos) +
                       " (one record per message; quote fields that contain line breaks)");
  }

  void append_collapsing_quotes(std::string& out, std::string_view text) const {
    size_t start = 0;
    while (true) {
      const size_t at = text.find(options_.quote, start);
      if (at == std::string_view::npos) break;
      // `at` is the first of a pair: keep it, drop its twin.
      append_copy_escaped(out, text.substr(start, at + 1 - start));
      start = at + 2;
    }
    append_copy_escaped(out, text.substr(start));
  }

  bool is_header(std::string_view record) const {
    for (size_t i = 0; i < field_count_; ++i) {
      const field_span& field = fields_[i];
      if (field.doubled_quotes) return false;  // no column name contains a quote we would accept
      if (!ascii_iequals(record.substr(field.begin, field.end - field.begin), field_columns_[i])) return false;
    }
    return true;
  }

  std::string column_list() const {
    std::string list;
    for (const std::string& column : field_columns_) {
      if (!list.empty()) list += ", ";
      list += column;
    }
    return list.empty() ? "no columns" : "columns " + list;
  }

  std::vector<column_binding> bindings_;
  csv_options options_;
  std::vector<std::string> field_columns_;  // names of the csv-fed columns, in field order
  std::array<bool, 256> stops_{};           // bytes that end an unquoted run
  std::vector<field_span> fields_;          // the first field_count_ are this record's
  size_t field_count_ = 0;
  timestamp_formatter kafka_timestamps_;
};

}  // namespace

std::unique_ptr<decoder> make_csv_decoder(const decoder_config& config) {
  return std::make_unique<csv_decoder>(config);
}

}  // namespace streamrec
