package config

import (
	"errors"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// credential reads uid and gid (names or numbers) into App.Credential.
// A uid without gid takes the user's primary group; a gid without uid
// keeps the master's uid. A number with no entry in the user or group
// database is used as it is, as container images often need; a name must
// exist.
func (a *appDecoder) credential() {
	up, hasUID := a.keys["uid"]
	gp, hasGID := a.keys["gid"]
	if !hasUID && !hasGID {
		return
	}
	cred := &syscall.Credential{
		Uid: uint32(os.Getuid()),
		Gid: uint32(os.Getgid()),
		// Only root may set supplementary groups; anyone else keeps theirs.
		NoSetGroups: os.Geteuid() != 0,
	}
	var written []string
	ok := true
	primary := ""
	if hasUID {
		s, u, good := a.lookupUser(up)
		written = append(written, s)
		if good {
			cred.Uid = u.uid
			primary = u.gid
			if !cred.NoSetGroups {
				cred.Groups = u.groups
			}
		}
		ok = ok && good
	}
	if hasGID {
		s, gid, good := a.lookupGroup(gp)
		written = append(written, s)
		if good {
			cred.Gid = gid
		}
		ok = ok && good
	} else if ok {
		gid, err := strconv.ParseUint(primary, 10, 32)
		if err != nil {
			a.fail(up.key, up.name, "user "+quote(written[0])+" has no entry in the user database to take a primary group from", "set gid: too")
			ok = false
		} else {
			cred.Gid = uint32(gid)
		}
	}
	if !ok {
		return
	}
	a.app.Credential = cred
	a.app.User = strings.Join(written, ":")
}

// account is a resolved user.
type account struct {
	uid    uint32
	gid    string // primary group, "" when the user database has no entry
	groups []uint32
}

// lookupUser resolves uid: a user name, or a number.
func (a *appDecoder) lookupUser(p pair) (written string, acct account, ok bool) {
	s, err := nodeString(p.val)
	if err != nil || strings.TrimSpace(s) == "" {
		a.fail(p.key, p.name, "must be a user name or a numeric uid (got "+describe(p.val)+")", "")
		return s, acct, false
	}
	s = strings.TrimSpace(s)
	var u *user.User
	if isInteger(s) {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 1<<32-1 {
			a.fail(p.key, p.name, "must be a uid from 0 to 4294967294 (got "+s+")", "")
			return s, acct, false
		}
		acct.uid = uint32(n)
		if u, err = user.LookupId(s); err != nil {
			var unknown user.UnknownUserIdError
			if !errors.As(err, &unknown) {
				a.fail(p.key, p.name, "cannot look up uid "+s+": "+err.Error(), "")
				return s, acct, false
			}
			return s, acct, true // a bare number works without a passwd entry
		}
	} else {
		if u, err = user.Lookup(s); err != nil {
			var unknown user.UnknownUserError
			if errors.As(err, &unknown) {
				a.fail(p.key, p.name, "no user "+quote(s)+" on this machine", "")
			} else {
				a.fail(p.key, p.name, "cannot look up user "+quote(s)+": "+err.Error(), "")
			}
			return s, acct, false
		}
		n, err := strconv.ParseUint(u.Uid, 10, 32)
		if err != nil {
			a.fail(p.key, p.name, "user "+quote(s)+" has a uid launch cannot use ("+u.Uid+")", "")
			return s, acct, false
		}
		acct.uid = uint32(n)
	}
	acct.gid = u.Gid
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if n, err := strconv.ParseUint(id, 10, 32); err == nil {
				acct.groups = append(acct.groups, uint32(n))
			}
		}
	}
	return s, acct, true
}

// lookupGroup resolves gid: a group name, or a number.
func (a *appDecoder) lookupGroup(p pair) (written string, gid uint32, ok bool) {
	s, err := nodeString(p.val)
	if err != nil || strings.TrimSpace(s) == "" {
		a.fail(p.key, p.name, "must be a group name or a numeric gid (got "+describe(p.val)+")", "")
		return s, 0, false
	}
	s = strings.TrimSpace(s)
	if isInteger(s) {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 1<<32-1 {
			a.fail(p.key, p.name, "must be a gid from 0 to 4294967294 (got "+s+")", "")
			return s, 0, false
		}
		return s, uint32(n), true
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		var unknown user.UnknownGroupError
		if errors.As(err, &unknown) {
			a.fail(p.key, p.name, "no group "+quote(s)+" on this machine", "")
		} else {
			a.fail(p.key, p.name, "cannot look up group "+quote(s)+": "+err.Error(), "")
		}
		return s, 0, false
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		a.fail(p.key, p.name, "group "+quote(s)+" has a gid launch cannot use ("+g.Gid+")", "")
		return s, 0, false
	}
	return s, uint32(n), true
}
