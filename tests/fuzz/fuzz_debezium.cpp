// libFuzzer target: Debezium change events, as json (with or without the schema/payload
// wrapper) and as plain Avro of the envelope.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/formats/change_events.h"
#include "core/formats/format_error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    (void)streamrec::decode_debezium_json_for_fuzzing(bytes);
  } catch (const streamrec::format_error&) {
    // A malformed event: dead-lettered by the source. Anything else thrown is a bug.
  }
  try {
    (void)streamrec::decode_debezium_avro_for_fuzzing(bytes);
  } catch (const streamrec::format_error&) {
  }
  return 0;
}
