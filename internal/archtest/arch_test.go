// Package archtest checks that imports flow one way (style.md §1):
// cmd/launch → recovery → workers → config; balancer → config only;
// bench imports no internals.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/launch-go/launch/"

// allowed lists, for each package, the module packages it may import
// (directly or not), with the reason.
var allowed = map[string]struct {
	deps   []string
	reason string
}{
	"config":         {nil, "the app file model is the bottom layer"},
	"balancer":       {[]string{"config", "balancer/proxy"}, "sockets are handed out as files, or served by the proxy engine; balancer never knows about workers"},
	"balancer/proxy": {nil, "the proxy engine forwards bytes to addresses; it knows no app file, process or socket registry"},
	"workers":        {[]string{"config"}, "processes know nothing of restart policy or sockets' owner"},
	"recovery":       {[]string{"workers", "config"}, "recovery drives workers; it sees sockets only through its Sockets interface"},
	"bench":          {nil, "the load generator measures launch from outside, as a user would"},
}

func TestImportDirections(t *testing.T) {
	for pkg, rule := range allowed {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "../../"+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			rel, ok := strings.CutPrefix(dep, module)
			if !ok || rel == pkg {
				continue
			}
			ok = false
			for _, a := range rule.deps {
				if rel == a {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s imports %s: not allowed (%s)", pkg, rel, rule.reason)
			}
		}
	}
}
