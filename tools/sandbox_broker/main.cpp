// streamrec-sandbox: a Kafka-protocol broker (librdkafka's mock cluster) plus a Confluent-compatible
// schema registry on 127.0.0.1, for tests, benchmarks and demos. See --help.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <exception>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/sandbox_broker/http_server.h"
#include "tools/sandbox_broker/mock_cluster.h"
#include "tools/sandbox_broker/sandbox_options.h"
#include "tools/sandbox_broker/sandbox_router.h"
#include "tools/sandbox_broker/schema_registry.h"

namespace streamrec {
namespace {

// The files announce readiness, so stale ones from an earlier run must never outlive this one.
void remove_announcement_files(const SandboxOptions &options) {
  for (const std::string *path : {&options.bootstrap_file, &options.registry_url_file, &options.pid_file}) {
    if (!path->empty()) ::unlink(path->c_str());
  }
}

int run_sandbox(const SandboxOptions &options, const sigset_t &stop_signals) {
  if (!options.pid_file.empty()) {
    write_file_atomically(options.pid_file, std::to_string(::getpid()) + "\n");
  }

  MockKafkaCluster cluster(options.brokers, options.kafka_debug);
  for (const SandboxTopic &topic : options.topics) {
    const AdminResult created = cluster.create_topic(topic.name, topic.partitions);
    if (created.status != AdminStatus::ok) throw std::runtime_error(created.message);
  }
  SchemaRegistry registry;
  SandboxRouter router(registry, cluster);
  HttpServer server(router, static_cast<uint16_t>(options.registry_port));

  const std::string bootstrap = cluster.bootstrap_servers();
  const std::string registry_url = "http://127.0.0.1:" + std::to_string(server.port());
  // The bootstrap file goes last: a harness that waits for it finds everything ready.
  if (!options.registry_url_file.empty()) {
    write_file_atomically(options.registry_url_file, registry_url);
  }
  write_file_atomically(options.bootstrap_file, bootstrap);
  std::cout << "bootstrap.servers=" << bootstrap << "\n"
            << "schema.registry.url=" << registry_url << std::endl;

  int received = 0;
  if (sigwait(&stop_signals, &received) != 0) throw std::runtime_error("sigwait failed");
  std::cerr << "streamrec-sandbox: " << (received == SIGINT ? "SIGINT" : "SIGTERM") << ", shutting down" << std::endl;
  return 0;  // server, router, registry and cluster close here, in that order
}

}  // namespace
}  // namespace streamrec

int main(int argc, char **argv) {
  using namespace streamrec;
  const std::string program = argc > 0 ? argv[0] : "streamrec-sandbox";

  SandboxOptions options;
  try {
    options = parse_sandbox_options(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::invalid_argument &e) {
    std::cerr << program << ": " << e.what() << "\n" << sandbox_usage(program);
    return 2;
  }
  if (options.help) {
    std::cout << sandbox_usage(program);
    return 0;
  }

  // Blocked before any thread exists, so librdkafka's and libmicrohttpd's threads inherit the
  // mask and the main thread alone takes the signal in sigwait, without polling.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client that hangs up must not kill the broker

  remove_announcement_files(options);
  int status = 1;
  try {
    status = run_sandbox(options, stop_signals);
  } catch (const std::exception &e) {
    std::cerr << program << ": " << e.what() << std::endl;
  }
  remove_announcement_files(options);
  return status;
}
