package metrics

// The names of Kappa's metrics. Every one carries the label app (the
// application ID); the others are listed with each. docs/metrics.md
// describes them all.
const (
	// Instance: one series per app instance.
	CommitsTotal        = "kappa_commits_total"           // counter
	CommitDuration      = "kappa_commit_duration_seconds" // histogram
	RebalancesTotal     = "kappa_rebalances_total"        // counter
	TasksByState        = "kappa_tasks"                   // gauge; state
	RecordCacheBytes    = "kappa_record_cache_bytes"      // gauge
	RecordCacheMaxBytes = "kappa_record_cache_max_bytes"  // gauge

	// Per global table.
	GlobalReadErrors = "kappa_global_table_read_errors_total" // counter; table
	GlobalStaleness  = "kappa_global_table_stale_seconds"     // gauge; table

	// Per task, and per topic where it applies.
	RecordsConsumed     = "kappa_records_consumed_total"         // counter; task, topic
	RecordsProcessed    = "kappa_records_processed_total"        // counter; task, topic
	RecordsProduced     = "kappa_records_produced_total"         // counter; task, topic
	ConsumerLag         = "kappa_consumer_lag_records"           // gauge; task, topic, partition
	RecordsDeadLettered = "kappa_records_dead_lettered_total"    // counter; task, reason
	LateRecordsDropped  = "kappa_late_records_dropped_total"     // counter; task, node
	RecordsDropped      = "kappa_records_dropped_total"          // counter; task
	RecordsMispartition = "kappa_records_mispartitioned_total"   // counter; task
	ProcessBatch        = "kappa_process_batch_duration_seconds" // histogram; task
	EndToEndLatency     = "kappa_end_to_end_latency_seconds"     // histogram; task
	PunctuationDuration = "kappa_punctuation_duration_seconds"   // histogram; task

	// Per store of a task.
	RestoreRemaining    = "kappa_restore_records_remaining"   // gauge; task, store
	RecordsRestored     = "kappa_restored_records_total"      // counter; task, store
	StoreCacheHits      = "kappa_store_cache_hits_total"      // counter; task, store
	StoreCacheMisses    = "kappa_store_cache_misses_total"    // counter; task, store
	StoreCacheEvictions = "kappa_store_cache_evictions_total" // counter; task, store
)

// Label names.
const (
	LabelApp       = "app"
	LabelTask      = "task"
	LabelTable     = "table"
	LabelTopic     = "topic"
	LabelPartition = "partition"
	LabelStore     = "store"
	LabelNode      = "node"
	LabelReason    = "reason"
	LabelState     = "state"
)

// Reasons of RecordsDeadLettered: the first three are the values of the
// dead-letter header kappa.error.kind (processor.HeaderKind); ReasonResult
// is a result that was not the current record's (a change flushed from a
// store's cache, a final window result, a join's non-match) whose
// forwarding failed (processor.Task.ForwardFailed).
const (
	ReasonDecode  = "decode"
	ReasonPanic   = "panic"
	ReasonProcess = "process"
	ReasonResult  = "result"
)
