// Owns librdkafka's mock Kafka cluster (rdkafka_mock.h) and the client handle it needs.
#pragma once

#include <memory>
#include <string>

#include "tools/sandbox_broker/sandbox_router.h"

struct rd_kafka_s;
struct rd_kafka_mock_cluster_s;

namespace streamrec {

// The mock cluster runs on its own thread and takes commands through an op queue, waiting for
// each reply (rd_kafka_op_req), so these methods may be called from any thread.
class MockKafkaCluster final : public ClusterControl {
 public:
  // Brokers listen on 127.0.0.1 at kernel-chosen ports. Throws std::runtime_error.
  MockKafkaCluster(int brokers, const std::string &kafka_debug);
  ~MockKafkaCluster() override;
  MockKafkaCluster(const MockKafkaCluster &) = delete;
  MockKafkaCluster &operator=(const MockKafkaCluster &) = delete;

  // "127.0.0.1:PORT[,127.0.0.1:PORT...]"
  std::string bootstrap_servers() const;

  AdminResult set_broker_up(int32_t broker_id, bool up) override;
  AdminResult create_topic(const std::string &name, int partitions) override;
  AdminResult set_topic_missing(const std::string &name, bool missing, int partitions) override;
  AdminResult fail_produce_requests(int count, int error) override;

 private:
  struct HandleDeleter {
    void operator()(rd_kafka_s *handle) const;
  };
  struct ClusterDeleter {
    void operator()(rd_kafka_mock_cluster_s *cluster) const;
  };

  // Declared in this order so the cluster goes before the handle it was created on.
  std::unique_ptr<rd_kafka_s, HandleDeleter> handle_;
  std::unique_ptr<rd_kafka_mock_cluster_s, ClusterDeleter> cluster_;
  int brokers_;
};

}  // namespace streamrec
