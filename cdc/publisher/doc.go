// Package rabbit publishes cdc events to RabbitMQ with publisher confirms.
// In: cdc.Messages. Out: persistent messages on the topic exchange, routed to the quorum queue.
// Owns: one connection + confirm channel per session, the in-flight window and the topology.
package publisher
