package balancer

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/launch-go/launch/config"
)

// Registry holds every listening socket of a master. Its methods may be
// called from several goroutines.
type Registry struct {
	mu   sync.Mutex
	sets map[string]*Set // by app name
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{sets: map[string]*Set{}} }

// Set is the sockets of one app, as its workers receive them. In shared
// mode every slot gets the same sockets; in reuseport mode each slot has
// its own SO_REUSEPORT sockets, bound when the slot first asks for them
// and kept until the slot is closed, so a replacement worker inherits its
// predecessor's accept queue.
type Set struct {
	// App is the app's name.
	App string
	// Mode is the balance mode the sockets were bound for.
	Mode config.Balance

	reg     *Registry
	listens []config.Listen   // with Name set; reuseport: port resolved
	socks   []*Socket         // shared mode
	slots   map[int][]*Socket // reuseport mode, by slot
}

// Bind binds every listen address of app, or none: on error, sockets bound
// so far are closed. An app with no addresses gets an empty Set. Binding an
// app twice is an error. In reuseport mode each address is first bound
// once without SO_REUSEPORT, so a listener already on the port (even a
// stale one of the same user, which a reuseport bind would silently join)
// is an error; then slot 0's sockets are bound.
func (r *Registry) Bind(app *config.App) (*Set, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sets[app.Name]; dup {
		return nil, fmt.Errorf("app %s: sockets already bound", app.Name)
	}
	mode := app.Balance
	if mode == "" {
		mode = config.BalanceShared
	}
	if mode != config.BalanceShared && mode != config.BalanceReusePort && mode != config.BalanceProxy {
		return nil, fmt.Errorf("app %s: balance %q is not supported by this version", app.Name, mode)
	}
	set := &Set{App: app.Name, Mode: mode, reg: r, slots: map[int][]*Socket{}}
	for _, l := range app.Listen {
		if l.Name == "" {
			l.Name = app.Name
		}
		if mode == config.BalanceReusePort {
			if l.Network == config.Unix {
				return nil, fmt.Errorf("app %s: %s: balance reuseport needs TCP addresses", app.Name, l)
			}
			probe, err := bindSocket(l, false)
			if err != nil {
				return nil, err
			}
			l.Address = probe.Addr() // the port, resolved once for every slot
			probe.close()
		}
		set.listens = append(set.listens, l)
	}
	var err error
	if mode == config.BalanceShared || mode == config.BalanceProxy {
		set.socks, err = bindAll(set.listens, false)
	} else if len(set.listens) > 0 {
		set.slots[0], err = bindAll(set.listens, true)
	}
	if err != nil {
		return nil, err
	}
	r.sets[app.Name] = set
	return set, nil
}

// bindAll binds every address, or none.
func bindAll(listens []config.Listen, reuseport bool) ([]*Socket, error) {
	var socks []*Socket
	for _, l := range listens {
		s, err := bindSocket(l, reuseport)
		if err != nil {
			for _, b := range socks {
				b.close()
			}
			return nil, err
		}
		s.Name = l.Name
		socks = append(socks, s)
	}
	return socks, nil
}

// PerSlot reports whether each slot has its own sockets (reuseport).
func (s *Set) PerSlot() bool { return s.Mode == config.BalanceReusePort }

// socketsLocked returns the sockets slot uses; slot < 0 means every socket
// of the set. Shared mode ignores slot.
func (s *Set) socketsLocked(slot int) []*Socket {
	if !s.PerSlot() {
		return s.socks
	}
	if slot >= 0 {
		return s.slots[slot]
	}
	var all []*Socket
	for _, socks := range s.slots {
		all = append(all, socks...)
	}
	return all
}

// Files returns the files and LISTEN_FDNAMES entries that the worker in
// slot gets. In shared mode every slot gets the same sockets; in reuseport
// mode a slot's sockets are bound on its first call.
func (s *Set) Files(slot int) ([]*os.File, []string, error) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	socks := s.socketsLocked(slot)
	if s.PerSlot() && socks == nil && len(s.listens) > 0 {
		var err error
		socks, err = bindAll(s.listens, true)
		if err != nil {
			return nil, nil, fmt.Errorf("socket for instance %d: %w", slot, err)
		}
		s.slots[slot] = socks
	}
	files := make([]*os.File, len(socks))
	names := make([]string, len(socks))
	for i, k := range socks {
		files[i], names[i] = k.file, k.Name
	}
	return files, names, nil
}

// Port is the first TCP port of the set (the worker's PORT), or 0.
func (s *Set) Port() int {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	for _, k := range s.socketsLocked(-1) {
		if p := k.Port(); p != 0 {
			return p
		}
	}
	return 0
}

// Len is the number of addresses.
func (s *Set) Len() int {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	return len(s.listens)
}

// Sockets is the number of sockets held now (in reuseport mode, one per
// address per slot).
func (s *Set) Sockets() int {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	return len(s.socketsLocked(-1))
}

// String lists the addresses: "127.0.0.1:8080, unix:/run/a.sock".
func (s *Set) String() string {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	addrs := make([]string, len(s.listens))
	for i, l := range s.listens {
		addrs[i] = l.String()
		if !s.PerSlot() && i < len(s.socks) {
			addrs[i] = s.socks[i].Addr()
		}
	}
	return strings.Join(addrs, ", ")
}

// Pause stops slot's sockets (slot < 0: every socket; shared mode: the
// shared sockets whatever the slot) from taking new connections, so they
// are refused or, in reuseport mode, go to the other slots' sockets.
// Connections already queued are reset, or migrate to another socket of
// the group where net.ipv4.tcp_migrate_req is on; Pause returns how many
// were queued (-1 for unknown).
func (s *Set) Pause(slot int) (int, error) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	total := 0
	var errs []error
	for _, k := range s.socketsLocked(slot) {
		n, err := k.pause()
		if n > 0 {
			total += n
		}
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// Resume undoes Pause; call it before a worker that gets the sockets starts.
func (s *Set) Resume(slot int) error {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	var errs []error
	for _, k := range s.socketsLocked(slot) {
		errs = append(errs, k.resume())
	}
	return errors.Join(errs...)
}

// Paused reports whether any of slot's sockets is paused.
func (s *Set) Paused(slot int) bool {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	for _, k := range s.socketsLocked(slot) {
		if k.paused {
			return true
		}
	}
	return false
}

// CloseSlot closes a removed slot's own sockets (reuseport mode; shared
// sockets live as long as the set). Pause the slot and stop its worker
// first, so no connection is left in the queue that closes.
func (s *Set) CloseSlot(slot int) error {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	if !s.PerSlot() || slot < 0 {
		return nil
	}
	var errs []error
	for _, k := range s.slots[slot] {
		errs = append(errs, k.close())
	}
	delete(s.slots, slot)
	return errors.Join(errs...)
}

// Close closes every socket of every app (unix socket files are removed).
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, set := range r.sets {
		for _, k := range set.socketsLocked(-1) {
			errs = append(errs, k.close())
		}
		delete(r.sets, name)
	}
	return errors.Join(errs...)
}

// Close closes every socket of the set and forgets the app, so its
// addresses may be bound again (an app removed by a reload). Stop its
// workers first.
func (s *Set) Close() error {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	var errs []error
	for _, k := range s.socketsLocked(-1) {
		errs = append(errs, k.close())
	}
	s.socks, s.slots = nil, map[int][]*Socket{}
	if s.reg.sets[s.App] == s {
		delete(s.reg.sets, s.App)
	}
	return errors.Join(errs...)
}

// Relisten is a pending change of a shared set's addresses (a reload whose
// app file changed `listen`): the new addresses are bound before anything
// changes, addresses that stay keep their socket (and its queue), and the
// master's copy of removed ones is closed only after the workers that
// used them are gone.
type Relisten struct {
	set     *Set
	listens []config.Listen
	socks   []*Socket
	added   []*Socket
	removed []*Socket
	// what the set had, for Revert
	oldListens []config.Listen
	oldSocks   []*Socket
	oldNames   []string
}

// PrepareListen binds app's addresses that the set does not hold yet.
// Nothing changes for the set's workers until Commit; on error nothing was
// bound. Only shared sets can change addresses.
func (s *Set) PrepareListen(app *config.App) (*Relisten, error) {
	if s.PerSlot() {
		return nil, fmt.Errorf("app %s: listen cannot change in balance reuseport", app.Name)
	}
	s.reg.mu.Lock()
	old, oldSocks := s.listens, s.socks
	s.reg.mu.Unlock()
	r := &Relisten{set: s, oldListens: old, oldSocks: oldSocks}
	for _, k := range oldSocks {
		r.oldNames = append(r.oldNames, k.Name)
	}
	kept := map[int]bool{}
	for _, l := range app.Listen {
		if l.Name == "" {
			l.Name = app.Name
		}
		i := slices.IndexFunc(old, func(o config.Listen) bool { return o.Network == l.Network && o.Address == l.Address })
		if i >= 0 && !kept[i] {
			kept[i] = true
			k := oldSocks[i]
			r.listens = append(r.listens, l)
			r.socks = append(r.socks, k)
			continue
		}
		k, err := bindSocket(l, false)
		if err != nil {
			r.Abort()
			return nil, err
		}
		k.Name = l.Name
		r.added = append(r.added, k)
		r.listens = append(r.listens, l)
		r.socks = append(r.socks, k)
	}
	for i, k := range oldSocks {
		if !kept[i] {
			r.removed = append(r.removed, k)
		}
	}
	return r, nil
}

// Commit makes the set hand out the new sockets (names included) from now
// on.
func (r *Relisten) Commit() {
	r.set.reg.mu.Lock()
	defer r.set.reg.mu.Unlock()
	for i, k := range r.socks {
		k.Name = r.listens[i].Name
	}
	r.set.listens, r.set.socks = r.listens, r.socks
	r.set.syncPauseLocked()
}

// syncPauseLocked pauses every socket of a set in which one is paused (an
// app with no worker to come back: stopped, or all errored), so an address
// a reload added or put back refuses connections like the others instead
// of queueing them for nobody.
func (s *Set) syncPauseLocked() {
	paused := false
	for _, k := range s.socks {
		paused = paused || k.paused
	}
	if !paused {
		return
	}
	for _, k := range s.socks {
		k.pause()
	}
}

// Revert undoes a Commit whose roll failed: the set hands out its old
// sockets again (the old workers still serve them), and the master's
// copies of the added ones close (new workers that inherited them keep
// serving them until they stop).
func (r *Relisten) Revert() {
	r.set.reg.mu.Lock()
	r.set.listens, r.set.socks = r.oldListens, r.oldSocks
	for i, k := range r.oldSocks {
		k.Name = r.oldNames[i]
	}
	r.set.syncPauseLocked()
	r.set.reg.mu.Unlock()
	r.Abort()
	r.removed = nil
}

// Abort closes the sockets bound for a change that will not happen (or,
// after Revert, the master's copies of them).
func (r *Relisten) Abort() {
	for _, k := range r.added {
		k.close()
	}
	r.added = nil
}

// Removed lists the addresses the change drops.
func (r *Relisten) Removed() []string {
	var out []string
	for _, k := range r.removed {
		out = append(out, k.Addr())
	}
	return out
}

// CloseRemoved closes the master's copy of the removed addresses' sockets;
// call it when no worker that inherited them runs any more.
func (r *Relisten) CloseRemoved() error {
	var errs []error
	for _, k := range r.removed {
		errs = append(errs, k.close())
	}
	r.removed = nil
	return errors.Join(errs...)
}
