// Package consumer feeds the indexer from RabbitMQ.
// In: deliveries of the change queue, batched by count, bytes and time under a bounded
// prefetch. Out: retry messages to TTL tier queues that dead-letter back, parked messages
// with reason headers, and acks once those are confirmed. Owns: declaring the indexer's
// queue topology (names and arguments from package broker) and the reconnect loop.
package consumer
