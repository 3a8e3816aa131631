#include "core/formats/copy_text.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/formats/format_error.h"

namespace streamrec {

namespace {

// Bytes COPY text cannot carry literally, mapped to the letter of their escape (0: none).
constexpr std::array<char, 256> make_copy_escapes() {
  std::array<char, 256> table{};
  table[static_cast<unsigned char>('\\')] = '\\';
  table[static_cast<unsigned char>('\t')] = 't';
  table[static_cast<unsigned char>('\n')] = 'n';
  table[static_cast<unsigned char>('\r')] = 'r';
  table[0] = '0';  // never written: rejected below
  return table;
}
constexpr std::array<char, 256> copy_escapes = make_copy_escapes();

// Bytes that force quotes around an array element (array_out's rule, plus its white space set).
constexpr std::array<bool, 256> make_array_specials() {
  std::array<bool, 256> table{};
  for (const char c : {'{', '}', ',', '"', '\\', ' ', '\t', '\n', '\r', '\v', '\f'}) {
    table[static_cast<unsigned char>(c)] = true;
  }
  return table;
}
constexpr std::array<bool, 256> array_specials = make_array_specials();

constexpr char hex_digits[] = "0123456789abcdef";

// Nonzero when some byte of `word` is below 0x0e (NUL, tab, LF, CR among them) or is a
// backslash. The classic "has byte less than" bit trick; borrows can flag extra bytes.
inline uint64_t may_need_copy_escape(uint64_t word) {
  constexpr uint64_t ones = 0x0101010101010101ULL;
  constexpr uint64_t highs = 0x8080808080808080ULL;
  const uint64_t below = (word - ones * 0x0e) & ~word & highs;
  const uint64_t flipped = word ^ (ones * '\\');
  const uint64_t backslash = (flipped - ones) & ~flipped & highs;
  return below | backslash;
}

}  // namespace

void append_copy_escaped(std::string& out, std::string_view value) {
  const char* const begin = value.data();
  const char* const end = begin + value.size();
  const char* run = begin;  // start of the bytes not yet appended
  const auto escape_at = [&](const char* p, char escape) {
    if (*p == '\0') {
      throw format_error("value contains a NUL byte at offset " + std::to_string(p - begin) +
                         ", which PostgreSQL text cannot store");
    }
    out.append(run, static_cast<size_t>(p - run));
    out.push_back('\\');
    out.push_back(escape);
    run = p + 1;
  };
  // Eight bytes at a time: most values have nothing to escape, and a word test is far cheaper
  // than eight table lookups. The test may report false positives, never misses.
  const char* p = begin;
  for (; end - p >= 8; p += 8) {
    uint64_t word;
    std::memcpy(&word, p, sizeof word);
    if (may_need_copy_escape(word)) {
      for (int i = 0; i < 8; ++i) {
        if (const char escape = copy_escapes[static_cast<unsigned char>(p[i])]) escape_at(p + i, escape);
      }
    }
  }
  for (; p != end; ++p) {
    if (const char escape = copy_escapes[static_cast<unsigned char>(*p)]) escape_at(p, escape);
  }
  out.append(run, static_cast<size_t>(end - run));
}

void append_bytea_hex(std::string& out, std::string_view bytes) {
  const size_t start = out.size();
  out.resize(start + 2 + 2 * bytes.size());
  char* p = &out[start];
  *p++ = '\\';
  *p++ = 'x';
  for (const char c : bytes) {
    const auto b = static_cast<unsigned char>(c);
    *p++ = hex_digits[b >> 4];
    *p++ = hex_digits[b & 0xf];
  }
}

void append_copy_bytea(std::string& out, std::string_view bytes) {
  // The backslash of \x is doubled for COPY; hex digits need no escaping.
  out.push_back('\\');
  append_bytea_hex(out, bytes);
}

bool pg_array_element_needs_quotes(std::string_view element) {
  if (element.empty()) return true;
  if (element.size() == 4 && (element[0] | 0x20) == 'n' && (element[1] | 0x20) == 'u' && (element[2] | 0x20) == 'l' &&
      (element[3] | 0x20) == 'l') {
    return true;
  }
  for (const char c : element) {
    if (array_specials[static_cast<unsigned char>(c)]) return true;
  }
  return false;
}

void pg_array_literal::element(std::string_view text) {
  separate();
  if (!pg_array_element_needs_quotes(text)) {
    out_->append(text);
    return;
  }
  out_->push_back('"');
  const char* run = text.data();
  const char* const end = run + text.size();
  for (const char* p = run; p != end; ++p) {
    if (*p == '"' || *p == '\\') {
      out_->append(run, static_cast<size_t>(p - run));
      out_->push_back('\\');
      run = p;  // the character itself starts the next run
    }
  }
  out_->append(run, static_cast<size_t>(end - run));
  out_->push_back('"');
}

}  // namespace streamrec
