// libFuzzer target: Protobuf values, plain and Confluent-framed, against a fixed schema that has
// every mapping of the decoder (see core/formats/protobuf_sample.h).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/formats/protobuf_sample.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Malformed bytes are format_errors, counted inside; anything else thrown escapes and is a bug.
  (void)streamrec::decode_protobuf_sample(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
