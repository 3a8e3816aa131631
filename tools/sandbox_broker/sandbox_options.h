// Command line of streamrec-sandbox, and the checks it shares with the admin endpoints.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace streamrec {

// The mock cluster numbers brokers 1..N; a handful is enough to test failover.
constexpr int kMaxSandboxBrokers = 32;
// The mock keeps every partition in memory; this only stops a typo from allocating millions.
constexpr int kMaxSandboxPartitions = 10000;

struct SandboxTopic {
  std::string name;
  int partitions = 1;
};

struct SandboxOptions {
  std::string bootstrap_file;
  std::string registry_url_file;
  std::string pid_file;
  std::string kafka_debug;  // librdkafka `debug` contexts for the mock's handle, e.g. "mock"
  std::vector<SandboxTopic> topics;
  int brokers = 1;
  int registry_port = 0;  // 0: the kernel picks a free port
  bool help = false;
};

// Kafka's rule: 1..249 characters from [a-zA-Z0-9._-], and not "." or "..".
bool is_valid_topic_name(std::string_view name);

// "name" or "name:partitions"; nothing when either part is invalid.
std::optional<SandboxTopic> parse_topic_spec(std::string_view spec);

// Parses argv[1..]. Throws std::invalid_argument with a message meant for the user.
SandboxOptions parse_sandbox_options(const std::vector<std::string> &args);

std::string sandbox_usage(std::string_view program);

// Writes via a temporary file in the same directory and rename(2), so that a reader polling
// for `path` sees either nothing or the whole content. Throws std::system_error.
void write_file_atomically(const std::string &path, const std::string &content);

}  // namespace streamrec
