// Private helpers shared by the Kafka implementations: config, error mapping, producer, reader.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafkacpp.h>

#include "cafes/persistence/journal.hpp"
#include "cafes/persistence/kafka_config.hpp"
#include "cafes/persistence/record.hpp"

namespace cafes::detail {

/// Returns a librdkafka config with cafes's base settings plus `overrides`, then cfg.extra.
expected<std::unique_ptr<RdKafka::Conf>> make_conf(const kafka_config& cfg,
                                                   const std::map<std::string, std::string>& overrides);

/// Returns true for a property whose value is a secret (a password, a key): never shown.
bool secret_property(std::string_view key);

/// Sets one property on `conf`, or returns invalid_argument naming it (and its value, unless
/// it is a secret).
expected<void> set(RdKafka::Conf& conf, const std::string& key, const std::string& value);

/// Maps a librdkafka error code to a cafes error with `context`.
error from_kafka(RdKafka::ErrorCode code, const std::string& context);

/// Maps a librdkafka Error object (transactions) to a cafes error with `context`.
error from_kafka(const RdKafka::Error& e, const std::string& context);

/// Copies a consumed message into a record.
record to_record(const rd_kafka_message_t* m);

/// Produces `r` to its topic and partition with `opaque`; owns nothing on failure.
RdKafka::ErrorCode produce(RdKafka::Producer& p, const record& r, void* opaque);

/// The error and log callback of one librdkafka client: its log lines and errors go to the
/// logger "cafes.kafka" (headed by its client.id and `role`), and a fatal error
/// (rd_kafka_fatal_error) raises `fatal`.
class client_events final : public RdKafka::EventCb {
 public:
  explicit client_events(std::string role) : role_(std::move(role)) {}
  void event_cb(RdKafka::Event& e) override;
  /// Returns true once the client failed fatally: it must be replaced.
  /// (The handle's fatal_error() says which error, for example ERR__FENCED.)
  bool fatal() const noexcept { return fatal_.load(); }
  /// Forgets a fatal error: the client was replaced.
  void reset() noexcept { fatal_ = false; }
  /// Names the client in its log lines: "client.id (role)".
  void set_client(std::string id) {
    std::lock_guard guard{mtx_};
    client_ = std::move(id);
  }
  /// Returns the name that heads the client's log lines.
  std::string name() const;

 private:
  std::string role_;
  mutable std::mutex mtx_;
  std::string client_;
  std::atomic<bool> fatal_{false};
};

/// Registers `ev` as the event (error and log) callback of `conf`.
expected<void> set_events(RdKafka::Conf& conf, client_events& ev);

/// An idempotent producer whose delivery reports complete whole batches through callbacks,
/// served by a poll thread of its own (never a CAF worker). When its librdkafka producer
/// fails fatally, the poll thread replaces it: what was in flight fails as unknown (it may
/// have been written), and later sends go to the new producer.
class async_producer {
 public:
  /// Creates the producer and learns the leaders of `topics`, the topics it will write, now
  /// (one metadata round trip; errors are ignored). librdkafka learns a topic first named in
  /// a produce call only at its next topic scan, up to a second later, and the first
  /// message waits for that.
  static expected<std::unique_ptr<async_producer>> make(const kafka_config& cfg,
                                                        std::vector<std::string> topics = {});
  ~async_producer();

  /// Sends records (topic and partition set) and calls `cb` once with all positions or the
  /// first error. Never reports success unless every record was acknowledged.
  void send(std::vector<record> recs, append_callback cb);

  /// Returns false while the producer is fatal and not replaced yet.
  bool healthy() const noexcept;

  /// Raises a fabricated fatal error in the current producer (tests).
  void inject_fatal(const std::string& reason);

 private:
  struct batch;
  struct item;
  struct client;
  async_producer() = default;
  /// Makes a librdkafka producer that knows topics_; with `wait_for_leaders`, it returns once
  /// it learnt their leaders (a metadata round trip, bounded by the request timeout).
  expected<std::unique_ptr<client>> make_client(bool wait_for_leaders);
  void replace_if_fatal();

  kafka_config cfg_;
  std::vector<std::string> topics_; // learnt by each client when it is made
  mutable std::shared_mutex mtx_; // shared: send; exclusive: replacing the client
  std::unique_ptr<client> c_;
  std::atomic<bool> stop_{false};
  std::thread poller_;
};

/// Returns the partition count of `topic` from the brokers' metadata, or topic_missing.
expected<std::int32_t> partition_count(RdKafka::Handle& h, const std::string& topic, std::chrono::milliseconds timeout);

/// Returns the high watermark of topic/p, asking again after a transient error (a leader
/// moving, a topic just created) until `deadline`; `what` names the asker in the error.
expected<std::int64_t> high_watermark_until(RdKafka::Handle& h, const std::string& topic, std::int32_t p,
                                            std::chrono::steady_clock::time_point deadline, const std::string& what);

/// Where a partition read stopped.
struct read_position {
  offset next{0};
  bool end = false;
};

/// Called for each consumed message; an error stops the read.
using message_fn = std::function<expected<void>(const rd_kafka_message_t*)>;

/// Returns a view of a consumed message (valid while the message lives).
record_view view_of(const rd_kafka_message_t* m, std::string_view topic);

/// A chunk of raw records of one partition.
struct raw_chunk {
  std::vector<record> records;
  offset next{0};
  bool end = false;
};

/// Reads ranges of one partition at a time with a (group-less) consumer. Not thread-safe.
class partition_reader {
 public:
  static expected<std::unique_ptr<partition_reader>> make(const kafka_config& cfg, bool read_committed);
  ~partition_reader();

  /// Reads at most `max` records of topic/p from `from` (or RdKafka::Topic::OFFSET_BEGINNING).
  /// Stops early at the end of the partition: the end offset asked for when the read starts
  /// (a range found empty is not fetched at all), or the end the broker reports, whichever
  /// comes first. Fails with timeout when nothing arrives within the request timeout and the
  /// end was not reached.
  expected<raw_chunk> read(const std::string& topic, partition_id p, std::int64_t from, std::size_t max);

  /// Reads like read(), but hands each message to `on_message` in place (no copies).
  expected<read_position> read_messages(const std::string& topic, partition_id p, std::int64_t from,
                                        std::size_t max, const message_fn& on_message);

  /// Reads every record of topic/p from the beginning to the end, chunk by chunk.
  expected<void> read_all(const std::string& topic, partition_id p,
                          const std::function<void(record&&)>& f);

  /// Returns the high watermark of topic/p.
  expected<offset> high_watermark(const std::string& topic, partition_id p);

  /// Connects to the brokers and learns `topic`'s leaders now (a watermark query; errors are
  /// ignored), so that the first read, often on the way to serving a partition just taken
  /// over, does not pay for it: about 0.5 s on a fresh consumer.
  void warm(const std::string& topic);

 private:
  partition_reader() = default;
  void stop_current();

  std::unique_ptr<RdKafka::Consumer> c_;
  std::unique_ptr<RdKafka::Topic> topic_;
  std::chrono::milliseconds timeout_{0};
  std::int32_t part_ = -1;
  std::int64_t next_ = -1;
  std::int64_t end_ = -1; // the end offset asked for when the current read started; -1: unknown
};

} // namespace cafes::detail
