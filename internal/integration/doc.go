// Package integration holds Kappa's end-to-end tests: apps built with the
// public API (kappa, stream, processor) run against an embedded broker
// started in the test, or as OS processes that the smoke tests kill and
// restart. It has no code of its own; the tests crash an app in process
// through internal/crash.
package integration
