"""The project's common package: contracts, envelope, topics, settings, Kafka and database
helpers used by every service."""
