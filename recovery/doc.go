// Package recovery decides what happens when a worker exits (restart,
// back off, give up) and owns replaceSlot, the one primitive behind rolling
// reload, memory-limit restarts and scale changes.
//
// Each app has one Supervisor: one goroutine that owns every worker of the
// app, takes commands on a channel and events (exits, readiness, timers)
// on another. Nothing else touches worker state.
//
// Invariant: during a replacement, ready workers never drop below N,
// because an old worker is stopped only after its replacement is ready; a
// replacement that fails is discarded and the old worker keeps serving.
//
// All timing goes through an injected Clock.
package recovery
