// Package runner runs a topology as one member of a consumer group: it
// polls the inputs, buffers them per task, runs the tasks on a worker
// pool, restores their stores from the changelogs, and commits, at least
// once or in transactions (exactly once). Package kappa's App is its only
// user; it is internal so that its configuration and life cycle stay out
// of the public API.
//
// The parts, each with one job, follow Kafka Streams: runtime.go (the poll
// loop, status, shutdown), config.go (configuration and defaults),
// collector.go (the record collector), partition_group.go (a task's
// buffered inputs), task_manager.go (the task life cycle on assignment,
// revocation and loss), commit.go (the commit path), txn.go
// (transactions), changelog_reader.go (restores and global tables), and
// balancer.go (the task assignor).
package runner
