// Package publisher publishes cdc messages to RabbitMQ with publisher confirms.
// In: cdc.Messages. Out: persistent messages on the topic exchange, routed to the quorum queue;
// failures as *broker.Error. Owns: one connection + confirm channel per session and the
// in-flight window; it declares the topology package broker defines.
package publisher
