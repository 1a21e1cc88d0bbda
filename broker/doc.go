// Package broker connects Kappa to Kafka: connections to clusters, and the
// topic administration a topology needs. The embedded single-node broker
// for development and tests is in package
// github.com/kappa-streams/kappa/broker/embedded, apart, so that an app
// that dials a cluster does not link it.
//
// # External clusters
//
// [Connect] dials a cluster with optional TLS and SASL (PLAIN, SCRAM-SHA-256,
// SCRAM-SHA-512) and checks that it answers, so a wrong address or credential
// fails at startup rather than on the first record.
//
// # Topics
//
// [Admin] lists, describes and creates topics. [Admin.EnsureTopics] creates
// what is missing and reports a [*TopicMismatchError] for an existing topic
// whose partition count or cleanup policy is not what the topology needs.
package broker
