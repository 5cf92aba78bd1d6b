// Package balancer owns the master's listening sockets: it binds every
// `listen` address once, before any worker starts, keeps the sockets for the
// master's whole life, and hands them out as files (with their
// LISTEN_FDNAMES) for the workers of each slot.
//
// Invariant: a socket is bound exactly once and closed only by Registry.Close
// (or a pause/resume that re-binds the same address); a worker crash or a
// reload never closes it, so connections wait in its queue instead of being
// refused.
//
// balancer imports only config; it never imports workers.
package balancer
