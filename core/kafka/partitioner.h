// The partition a keyed message goes to under the Java clients' default partitioner (murmur2 of
// the key bytes, made positive, modulo the partition count), which librdkafka gives with
// partitioner=murmur2_random and pg_streamrec's sinks use. Partition-parallel servers need it to
// tell, inside the database, which partition (and so which server) a key belongs to.
#pragma once

#include "core/postgres_free.h"

#include <cstdint>
#include <string_view>

namespace streamrec {

// Kafka's murmur2 (seed 0x9747b28c) of the bytes, as org.apache.kafka.common.utils.Utils.murmur2.
std::uint32_t kafka_murmur2(std::string_view bytes);

// The partition of `key` among `partition_count` (> 0) partitions.
std::int32_t kafka_key_partition(std::string_view key, std::int32_t partition_count);

}  // namespace streamrec
