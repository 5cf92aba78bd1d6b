package balancer

import (
	"errors"
	"fmt"
	"os"
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

// Set is the sockets of one app, as its workers receive them.
type Set struct {
	// App is the app's name.
	App string
	// Mode is the balance mode the sockets were bound for.
	Mode config.Balance

	reg   *Registry
	socks []*Socket
}

// Bind binds every listen address of app, or none: on error, sockets bound
// so far are closed. An app with no addresses gets an empty Set. Binding an
// app twice is an error.
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
	if mode != config.BalanceShared {
		return nil, fmt.Errorf("app %s: balance %q is not supported by this version", app.Name, mode)
	}
	set := &Set{App: app.Name, Mode: mode, reg: r}
	for _, l := range app.Listen {
		s, err := bindSocket(l, false)
		if err != nil {
			for _, b := range set.socks {
				b.close()
			}
			return nil, err
		}
		s.Name = l.Name
		if s.Name == "" {
			s.Name = app.Name
		}
		set.socks = append(set.socks, s)
	}
	r.sets[app.Name] = set
	return set, nil
}

// Files returns the files and LISTEN_FDNAMES entries that the worker in
// slot gets. In shared mode every slot gets the same sockets.
func (s *Set) Files(slot int) ([]*os.File, []string) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	files := make([]*os.File, len(s.socks))
	names := make([]string, len(s.socks))
	for i, k := range s.socks {
		files[i], names[i] = k.file, k.Name
	}
	return files, names
}

// Port is the first TCP port of the set (the worker's PORT), or 0.
func (s *Set) Port() int {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	for _, k := range s.socks {
		if p := k.Port(); p != 0 {
			return p
		}
	}
	return 0
}

// Len is the number of sockets.
func (s *Set) Len() int { return len(s.socks) }

// String lists the bound addresses: "127.0.0.1:8080, unix:/run/a.sock".
func (s *Set) String() string {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	addrs := make([]string, len(s.socks))
	for i, k := range s.socks {
		addrs[i] = k.Addr()
	}
	return strings.Join(addrs, ", ")
}

// Pause stops every socket of the set from accepting, so new connections
// are refused at once (used when the app has no worker that will come
// back). It returns how many queued connections were reset (-1 for unknown).
func (s *Set) Pause() (int, error) {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	total := 0
	var errs []error
	for _, k := range s.socks {
		n, err := k.pause()
		if n > 0 {
			total += n
		}
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// Resume undoes Pause; call it before a worker that will get the sockets
// starts.
func (s *Set) Resume() error {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	var errs []error
	for _, k := range s.socks {
		errs = append(errs, k.resume())
	}
	return errors.Join(errs...)
}

// Paused reports whether any socket of the set is paused.
func (s *Set) Paused() bool {
	s.reg.mu.Lock()
	defer s.reg.mu.Unlock()
	for _, k := range s.socks {
		if k.paused {
			return true
		}
	}
	return false
}

// Close closes every socket of every app (unix socket files are removed).
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for name, set := range r.sets {
		for _, k := range set.socks {
			errs = append(errs, k.close())
		}
		delete(r.sets, name)
	}
	return errors.Join(errs...)
}
