// A fixed Protobuf schema and decoders over it, for fuzzing and tests: every mapping the protobuf
// decoder has (scalars of each wire type, enums, repeated and packed fields, nested messages
// reached by dotted paths and rendered as JSON, maps, google.protobuf.Timestamp, wrappers, proto3
// optional fields, an import through registry references, nested message types).
#pragma once

#include "core/postgres_free.h"

#include <string_view>

namespace streamrec {

// Decodes `bytes` twice: as plain Protobuf of the sample's root message, and as a
// Confluent-framed message whose schema id 1 resolves to the sample (any other id is unknown).
// Returns how many of the two decoded to a line; a format_error (the bytes are not a valid
// message) counts as not decoded. Anything else thrown is a bug in the decoder.
int decode_protobuf_sample(std::string_view bytes);

}  // namespace streamrec
