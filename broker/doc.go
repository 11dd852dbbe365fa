// Package broker is the RabbitMQ contract between cdc (publisher) and the indexer (consumer).
// In: queue names and delivery limits from configuration, and the errors amqp091-go returns.
// Out: the queue arguments and retry-tier names both sides declare, and *Error (Classify).
// Owns: the topology's names, defaults and arguments, and the one classification of broker errors.
package broker
