#include "tools/sandbox_broker/mock_cluster.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <stdexcept>
#include <vector>

namespace streamrec {

void MockKafkaCluster::HandleDeleter::operator()(rd_kafka_s *handle) const { rd_kafka_destroy(handle); }

void MockKafkaCluster::ClusterDeleter::operator()(rd_kafka_mock_cluster_s *cluster) const {
  rd_kafka_mock_cluster_destroy(cluster);
}

MockKafkaCluster::MockKafkaCluster(int brokers, const std::string &kafka_debug) : brokers_(brokers) {
  char error[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  // The handle only hosts the mock; it never produces. Errors only, unless debugging was asked
  // for: otherwise it warns that it has no bootstrap.servers, which is the point.
  const char *log_level = kafka_debug.empty() ? "3" : "7";
  if (rd_kafka_conf_set(conf, "log_level", log_level, error, sizeof error) != RD_KAFKA_CONF_OK ||
      (!kafka_debug.empty() &&
       rd_kafka_conf_set(conf, "debug", kafka_debug.c_str(), error, sizeof error) != RD_KAFKA_CONF_OK)) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("librdkafka configuration: ") + error);
  }
  handle_.reset(rd_kafka_new(RD_KAFKA_PRODUCER, conf, error, sizeof error));
  if (!handle_) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes ownership only on success
    throw std::runtime_error(std::string("cannot create the mock cluster's handle: ") + error);
  }
  cluster_.reset(rd_kafka_mock_cluster_new(handle_.get(), brokers));
  if (!cluster_) throw std::runtime_error("cannot create the mock Kafka cluster");
}

MockKafkaCluster::~MockKafkaCluster() = default;

std::string MockKafkaCluster::bootstrap_servers() const { return rd_kafka_mock_cluster_bootstraps(cluster_.get()); }

AdminResult MockKafkaCluster::set_broker_up(int32_t broker_id, bool up) {
  if (broker_id != -1 && (broker_id < 1 || broker_id > brokers_)) {
    return {AdminStatus::not_found,
            "No broker " + std::to_string(broker_id) + ": the sandbox has brokers 1 to " + std::to_string(brokers_)};
  }
  const rd_kafka_resp_err_t err = up ? rd_kafka_mock_broker_set_up(cluster_.get(), broker_id)
                                     : rd_kafka_mock_broker_set_down(cluster_.get(), broker_id);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  return {AdminStatus::failed, rd_kafka_err2str(err)};
}

AdminResult MockKafkaCluster::create_topic(const std::string &name, int partitions) {
  // The mock uses min(3, brokers) replicas whatever is passed here; pass the same for clarity.
  const int replication_factor = std::min(3, brokers_);
  const rd_kafka_resp_err_t err =
      rd_kafka_mock_topic_create(cluster_.get(), name.c_str(), partitions, replication_factor);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return {};
  if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
    return {AdminStatus::already_exists, "Topic '" + name + "' already exists"};
  }
  return {AdminStatus::failed, std::string("cannot create topic '") + name + "': " + rd_kafka_err2str(err)};
}

AdminResult MockKafkaCluster::set_topic_missing(const std::string &name, bool missing, int partitions) {
  // rd_kafka_mock_topic_set_error would auto-create an absent topic with 4 partitions; create it
  // first so the caller's partition count holds.
  AdminResult created = create_topic(name, partitions);
  if (created.status != AdminStatus::ok && created.status != AdminStatus::already_exists) return created;
  // The mock reports a topic with this error as absent from Metadata (no partitions); Produce and
  // Fetch on partitions a client already knows keep working.
  rd_kafka_mock_topic_set_error(cluster_.get(), name.c_str(),
                                missing ? RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART : RD_KAFKA_RESP_ERR_NO_ERROR);
  return {};
}

// Kafka protocol ApiKey of Produce requests (rdkafka_mock.h takes the number).
constexpr int16_t kProduceApiKey = 0;

AdminResult MockKafkaCluster::fail_produce_requests(int count, int error) {
  std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count), static_cast<rd_kafka_resp_err_t>(error));
  rd_kafka_mock_push_request_errors_array(cluster_.get(), kProduceApiKey, errors.size(), errors.data());
  return {};
}

}  // namespace streamrec
