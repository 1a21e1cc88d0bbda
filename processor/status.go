package processor

// TaskStatus is a snapshot of one task of this member.
type TaskStatus struct {
	ID TaskID
	// Ready is false while the task's stores restore; it processes nothing
	// until then. It is State == TaskRunning.
	Ready bool
	// State is the task's life-cycle state.
	State TaskState
	// Processed, DeadLetters, Dropped and Late (records outside every open
	// window) count input records; Produced
	// counts output records.
	Processed, DeadLetters, Produced, Dropped, Late int64
	// Restored counts changelog records applied by restores so far, and
	// RestoreTarget the records those restores set out to read (the
	// changelogs' end offsets minus the offsets stored with the local
	// data). While a restore runs, Restored/RestoreTarget is its progress.
	Restored, RestoreTarget int64
	// Mispartitioned counts the records of the task's co-partitioned
	// inputs (the external topics of joins) that were not in the
	// partition Kappa's partitioner (KeyPartition, murmur2) gives their
	// key, since the task started on this instance. A join misses matches
	// for them. Records without a key are not counted. The producer of
	// such a topic used another partitioner; see docs/joins.md.
	Mispartitioned int64
}

// Status returns a snapshot of the task's counters; Ready is left false.
// It may be called from any goroutine.
func (t *Task) Status() TaskStatus {
	s := t.Stats()
	return TaskStatus{
		ID: t.ID, Processed: s.Processed.Load(), DeadLetters: s.DeadLetters.Load(),
		Produced: s.Produced.Load(), Dropped: s.Dropped.Load(), Late: s.Late.Load(),
		Restored: s.Restored.Load(), RestoreTarget: s.RestoreTotal.Load(),
	}
}

// TaskState is where a task is in its life cycle on this instance, as in
// Kafka Streams: Created when it is assigned, Restoring while its stores
// catch up with their changelogs (its inputs are paused), Running while it
// processes, Suspended when its commit was fenced and it waits to be
// closed, Closed once closed. A task without stores goes from Created to
// Running at once. A Standby task is a warm copy of another instance's
// task (kappa.StandbyReplicas): its stores follow their changelogs, and it
// processes nothing.
type TaskState int32

const (
	TaskCreated TaskState = iota
	TaskRestoring
	TaskRunning
	TaskSuspended
	TaskClosed
	TaskStandby
)

// String returns the state's name in lower case.
func (s TaskState) String() string {
	switch s {
	case TaskCreated:
		return "created"
	case TaskRestoring:
		return "restoring"
	case TaskRunning:
		return "running"
	case TaskSuspended:
		return "suspended"
	case TaskClosed:
		return "closed"
	case TaskStandby:
		return "standby"
	}
	return "unknown"
}
