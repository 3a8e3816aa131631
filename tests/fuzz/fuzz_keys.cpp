// libFuzzer target: message keys, decoded as each key_format would (text, csv, json, avro).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/formats/change_events.h"
#include "core/formats/format_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (streamrec::key_format format : {streamrec::key_format::text, streamrec::key_format::csv,
                                       streamrec::key_format::json, streamrec::key_format::avro}) {
    try {
      (void)streamrec::decode_key_for_fuzzing(format, bytes);
    } catch (const streamrec::format_error&) {
      // A malformed key: dead-lettered by the source. Anything else thrown is a bug.
    }
  }
  return 0;
}
