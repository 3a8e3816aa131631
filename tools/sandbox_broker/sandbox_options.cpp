#include "tools/sandbox_broker/sandbox_options.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

#include "tools/sandbox_broker/http_text.h"

namespace streamrec {

bool is_valid_topic_name(std::string_view name) {
  if (name.empty() || name.size() > 249 || name == "." || name == "..") return false;
  for (char c : name) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<SandboxTopic> parse_topic_spec(std::string_view spec) {
  SandboxTopic topic;
  const size_t colon = spec.find(':');
  topic.name = std::string(spec.substr(0, colon));
  if (!is_valid_topic_name(topic.name)) return std::nullopt;
  if (colon != std::string_view::npos) {
    auto partitions = parse_bounded_integer(spec.substr(colon + 1), 1, kMaxSandboxPartitions);
    if (!partitions) return std::nullopt;
    topic.partitions = static_cast<int>(*partitions);
  }
  return topic;
}

namespace {

// Accepts "--name value" and "--name=value".
class ArgumentReader {
 public:
  explicit ArgumentReader(const std::vector<std::string> &args) : args_(args) {}

  bool next() {
    if (index_ >= args_.size()) return false;
    const std::string &arg = args_[index_++];
    const size_t equals = arg.find('=');
    if (arg.rfind("--", 0) == 0 && equals != std::string::npos) {
      name_ = arg.substr(0, equals);
      inline_value_ = arg.substr(equals + 1);
    } else {
      name_ = arg;
      inline_value_.reset();
    }
    return true;
  }

  const std::string &name() const { return name_; }

  std::string value() {
    if (inline_value_) return *inline_value_;
    if (index_ >= args_.size()) throw std::invalid_argument(name_ + " needs a value");
    return args_[index_++];
  }

 private:
  const std::vector<std::string> &args_;
  size_t index_ = 0;
  std::string name_;
  std::optional<std::string> inline_value_;
};

int integer_option(const std::string &name, const std::string &value, int min, int max) {
  auto number = parse_bounded_integer(value, min, max);
  if (!number) {
    throw std::invalid_argument(name + " must be an integer from " + std::to_string(min) + " to " +
                                std::to_string(max) + ", got '" + value + "'");
  }
  return static_cast<int>(*number);
}

}  // namespace

SandboxOptions parse_sandbox_options(const std::vector<std::string> &args) {
  SandboxOptions options;
  ArgumentReader reader(args);
  while (reader.next()) {
    const std::string &name = reader.name();
    if (name == "-h" || name == "--help") {
      options.help = true;
    } else if (name == "--bootstrap-file") {
      options.bootstrap_file = reader.value();
    } else if (name == "--registry-url-file") {
      options.registry_url_file = reader.value();
    } else if (name == "--pid-file") {
      options.pid_file = reader.value();
    } else if (name == "--kafka-debug") {
      options.kafka_debug = reader.value();
    } else if (name == "--brokers") {
      options.brokers = integer_option(name, reader.value(), 1, kMaxSandboxBrokers);
    } else if (name == "--registry-port") {
      options.registry_port = integer_option(name, reader.value(), 0, 65535);
    } else if (name == "--topic") {
      const std::string spec = reader.value();
      auto topic = parse_topic_spec(spec);
      if (!topic) {
        throw std::invalid_argument(
            "--topic expects NAME[:PARTITIONS] with a Kafka topic name "
            "([a-zA-Z0-9._-], at most 249 characters) and 1 to " +
            std::to_string(kMaxSandboxPartitions) + " partitions, got '" + spec + "'");
      }
      for (const SandboxTopic &earlier : options.topics) {
        if (earlier.name == topic->name) {
          throw std::invalid_argument("--topic " + topic->name + " is given twice");
        }
      }
      options.topics.push_back(*topic);
    } else {
      throw std::invalid_argument("unknown argument '" + name + "'");
    }
  }
  if (!options.help && options.bootstrap_file.empty()) {
    throw std::invalid_argument("--bootstrap-file is required");
  }
  return options;
}

std::string sandbox_usage(std::string_view program) {
  std::string usage = "Usage: ";
  usage += program;
  usage += R"( --bootstrap-file PATH [--topic NAME[:PARTITIONS]]... [--brokers N]
        [--registry-port PORT] [--registry-url-file PATH] [--pid-file PATH] [--kafka-debug CONTEXTS]

A Kafka-protocol broker on 127.0.0.1 (librdkafka's mock cluster) with a Confluent-compatible schema
registry and fault-injection endpoints on one HTTP port. For tests and demos, never production.

  --bootstrap-file PATH     write the bootstrap servers "127.0.0.1:PORT[,...]" here when ready (required)
  --topic NAME[:N]          create topic NAME with N partitions (default 1); repeatable
  --brokers N               mock brokers, ids 1..N, 1 to 32 (default 1)
  --registry-port PORT      HTTP port of the registry and admin endpoints (default 0: any free port)
  --registry-url-file PATH  write "http://127.0.0.1:PORT" here when ready
  --pid-file PATH           write the process id here at start
  --kafka-debug CONTEXTS    librdkafka debug contexts for the mock cluster's handle, e.g. "mock"

Ready means every topic exists and the HTTP server listens. Then the registry URL file is written,
then the bootstrap file (each via rename, so never half-written), and both are printed on stdout.
SIGTERM or SIGINT shuts down, removes the three files and exits 0.

What the mock broker does (librdkafka 2.0.2):
  - Retention: each partition keeps at most 5 MiB (5242880 bytes) of record batches and at most
    100000 record batches (batches, not messages); beyond that the oldest batches are dropped and
    the log start offset moves up. Size benchmark topics with enough partitions.
  - Any Metadata request naming an unknown topic creates it with 4 partitions, whatever the
    client's allow.auto.create.topics says: the mock speaks Metadata v0-v2, which has no such flag.
    So producers, consumers, kcat -L -t and list_topics(topic) all create topics. To test a
    missing topic, use POST /admin/topics/{name}/missing (below).
  - Broker ports are picked by the kernel and cannot be fixed. Replication factor is
    min(3, brokers); each partition's leader is a random replica.
  - Consumer groups work (JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch);
    the first join of a group waits 3 s, like group.initial.rebalance.delay.ms.
  - Idempotent producers get a producer id, but only transactional producers' sequence numbers
    are checked: a retried batch of a plain idempotent producer is not de-duplicated.
  - Transactional producers are accepted, but no transaction markers are written and the last
    stable offset is the log end: read_committed consumers see aborted messages too.
  - A broker set down (admin endpoint) drops its connections and refuses new ones; its partitions
    get no new leader, exactly like a broker that is unreachable.
  - No CreateTopics, DeleteRecords, DescribeGroups or ListGroups: create topics with
    --topic or the admin endpoint below.

Schema registry (in memory; the same paths also answer under /apis/ccompat/v6):
  POST /subjects/{subject}/versions   {"schema": "...", "schemaType": "AVRO"|"JSON"} -> {"id": N}
  POST /subjects/{subject}            look a schema up -> {"subject","version","id","schema"}
  GET  /subjects   /subjects/{subject}/versions   /subjects/{subject}/versions/{n|latest}[/schema]
  GET  /schemas/ids/{id}[/schema]

Admin:
  POST /admin/brokers/{id|all}/down   POST /admin/brokers/{id|all}/up
  POST /admin/topics/{name}?partitions=N             create a topic (default 1 partition)
  POST /admin/topics/{name}/missing[?partitions=N]   Metadata reports it as UNKNOWN_TOPIC_OR_PART
  POST /admin/topics/{name}/present                  Metadata reports it normally again
  POST /admin/registry/down?seconds=S   registry endpoints answer 503 for S seconds (0: up now)
  POST /admin/registry/up               GET /admin/health -> {"ok":true}
)";
  return usage;
}

void write_file_atomically(const std::string &path, const std::string &content) {
  const std::string temporary = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "cannot create " + temporary);

  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      ::unlink(temporary.c_str());
      throw std::system_error(error, std::generic_category(), "cannot write " + temporary);
    }
    written += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::system_error(error, std::generic_category(), "cannot write " + temporary);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    throw std::system_error(error, std::generic_category(), "cannot rename to " + path);
  }
}

}  // namespace streamrec
